"""
``GET /metrics``: every tenant's engine (labelled ``tenant``), the API's request
times, the event loop's lag and the garbage collector's pauses, in Prometheus' text
format.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from .._prometheus import PrometheusCollector

if TYPE_CHECKING:
    from ._app import _Server
    from ._monitor import Reservoir

__all__ = ["render"]


class _ServerCollector:
    """
    The server's own families: request times and loop lag, as summaries of the recent
    observations (quantiles 0.5, 0.95, 0.99), and the loop's largest lag; the sessions
    held, the tenants' engines, the collector's pauses, the changes followed, the keys,
    and the files followed.
    """

    def __init__(self, server: _Server) -> None:
        self.server = server

    def collect(self) -> Iterator[Any]:
        yield from self._times()
        yield from self._sessions()
        yield from self._tenants()
        yield from self._collections()
        yield from self._follower()
        yield from self._keys()

    def _times(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily, SummaryMetricFamily

        yield _summary(
            SummaryMetricFamily,
            "preload_http_request_seconds",
            "Time to serve an API request, from its arrival to its response's start.",
            self.server.timings,
        )
        yield _summary(
            SummaryMetricFamily,
            "preload_loop_lag_seconds",
            "How long a task that yields waits for the event loop (sampled every 10 ms).",
            self.server.monitor.lags,
        )
        yield GaugeMetricFamily(
            "preload_loop_lag_max_seconds",
            "The largest lag among the recent ones.",
            value=self.server.monitor.lags.maximum(),
        )

    def _sessions(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        remembered = GaugeMetricFamily(
            "preload_sessions_remembered",
            "Sessions whose state this replica holds (at most server.max_sessions).",
            labels=["tenant"],
        )
        unleased = CounterMetricFamily(
            "preload_changes_unleased",
            "Changes to sessions served from this replica's copy as last written and "
            "written without the lease (one round trip to the store).",
            labels=["tenant"],
        )
        conflicts = CounterMetricFamily(
            "preload_change_conflicts",
            "Of those, the ones the store refused (the session had changed, or another "
            "held its lease), then served again under the lease.",
            labels=["tenant"],
        )
        for tenant, gate in self.server.gates.items():
            remembered.add_metric([tenant], gate.engine.sessions_remembered)
            unleased.add_metric([tenant], gate.unleased)
            conflicts.add_metric([tenant], gate.conflicts)
        yield from (remembered, unleased, conflicts)

    def _tenants(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        tenants = self.server.tenants
        yield GaugeMetricFamily(
            "preload_tenants_open",
            "Tenants whose engine is open in this replica (the others' metrics are not "
            "reported; an engine opened again counts from zero).",
            value=len(tenants.gates),
        )
        yield CounterMetricFamily(
            "preload_tenant_engines_opened",
            "Tenants' engines opened (at start, or at a tenant's first request with "
            "server.max_open_tenants).",
            value=tenants.opened,
        )
        yield CounterMetricFamily(
            "preload_tenant_engines_closed",
            "Tenants' engines closed (to make room for another with "
            "server.max_open_tenants, or as the server stops).",
            value=tenants.closed,
        )

    def _collections(self) -> Iterator[Any]:
        from prometheus_client.core import (
            CounterMetricFamily,
            GaugeMetricFamily,
            SummaryMetricFamily,
        )

        yield _summary(
            SummaryMetricFamily,
            "preload_gc_pause_seconds",
            "How long each garbage collection stopped every thread.",
            self.server.gc_pauses,
        )
        yield GaugeMetricFamily(
            "preload_gc_pause_max_seconds",
            "The longest garbage collection among the recent ones.",
            value=self.server.gc_pauses.maximum(),
        )
        yield CounterMetricFamily(
            "preload_gc_forced",
            "Garbage collections run while requests were in flight (the server never "
            "idle long enough to collect between them).",
            value=self.server.collector.forced,
        )

    def _follower(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily

        follower = self.server.follower
        if follower is not None:
            yield CounterMetricFamily(
                "preload_changes_received",
                "Writes to sessions announced by the store (this replica's own included).",
                value=follower.received,
            )
            yield CounterMetricFamily(
                "preload_changes_followed",
                "Writes other replicas made that this replica took into its copies of "
                "their sessions (their history recorded in the background).",
                value=follower.followed,
            )

    def _keys(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        yield GaugeMetricFamily(
            "preload_keys", "API keys this replica accepts.", value=len(self.server.keys)
        )
        followed = (
            ("keys", "the keys file", "server.keys_reload_s", self.server.keys_watcher),
            ("models", "the model files", "server.models_reload_s", self.server.models_watcher),
        )
        for name, files, key, watcher in followed:
            if watcher is None:
                continue
            yield CounterMetricFamily(
                f"preload_{name}_reloads",
                f"Changes to {files} read and taken while serving ({key}).",
                value=watcher.reloads,
            )
            yield CounterMetricFamily(
                f"preload_{name}_reload_failures",
                f"Changes to {files} that did not read: what was read before stayed, and "
                "the log names the problem.",
                value=watcher.failures,
            )


def _summary(kind: Any, name: str, doc: str, reservoir: Reservoir) -> Any:
    quantiles = reservoir.quantiles()
    family = kind(name, doc, labels=["quantile"])
    for q, value in quantiles.items():
        family.samples.append(_sample(name, q, value))
    family.samples.append(_sample(name + "_count", None, float(reservoir.count)))
    family.samples.append(_sample(name + "_sum", None, reservoir.total))
    return family


def _sample(name: str, q: float | None, value: float) -> Any:
    from prometheus_client.samples import Sample

    return Sample(name, {} if q is None else {"quantile": str(q)}, value)


def render(server: _Server) -> tuple[bytes, str]:
    """
    The metrics page and its content type.
    """
    from prometheus_client import (
        CONTENT_TYPE_LATEST,
        CollectorRegistry,
        ProcessCollector,
        generate_latest,
    )

    registry = CollectorRegistry(auto_describe=False)
    ProcessCollector(registry=registry)  # process_cpu_seconds_total, memory, open files
    registry.register(
        PrometheusCollector(
            lambda: {tenant: gate.engine.metrics() for tenant, gate in server.gates.items()},
            label="tenant",
            calls=lambda: {t: gate.engine.call_statistics() for t, gate in server.gates.items()},
            arms=lambda: {t: gate.engine.arm_statistics() for t, gate in server.gates.items()},
        )
    )
    registry.register(_ServerCollector(server))
    return generate_latest(registry), CONTENT_TYPE_LATEST
