"""
A Prometheus exporter for the engine's metrics (the optional ``prometheus`` extra).

:class:`PrometheusCollector` reads one frozen snapshot per scrape (from
``engine.metrics()`` or any callable that returns a
:class:`~preload.MetricsSnapshot`) and turns it into Prometheus families: counters
for what happened, gauges for what is, a histogram for load latency. Nothing is
copied into Prometheus' own mutable metrics, so there is no second source of truth.

    from prometheus_client import REGISTRY, start_http_server
    REGISTRY.register(PrometheusCollector(engine.metrics))
    start_http_server(9100)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._metrics import MetricsSnapshot
    from .calls import CallStatistics
    from .experiments import ArmStatistics

__all__ = ["PrometheusCollector"]

#: Snapshot fields exported as counters (Prometheus adds ``_total``).
COUNTERS = {
    "requests": "Requests served.",
    "hits": "Needed items that were warm in the cache.",
    "partial_hits": "Needed items whose preload was in flight; the request waited for it.",
    "misses": "Needed items loaded on demand.",
    "missing": "Needed items no source has.",
    "loads": "Source calls on the request path.",
    "preloads": "Source calls in the background.",
    "preloads_used": "Preloads used by the session that caused them.",
    "wasted": "Preloads never used by the session that caused them.",
    "preloads_lost": "Preloads their session needed after they had left the cache.",
    "rejected": "Preloads the value-aware cache refused: worth less than what they would evict.",
    "deferred": "Preloads started just in time rather than at once.",
    "ttl_skipped": "Preloads left out because their TTL would end before their use.",
    "evicted_unused": "Preloaded cache entries evicted or expired before anyone read them.",
    "shed": "Preloads dropped from a full queue.",
    "cancelled": "Preloads dropped or stopped because nobody wanted them any more.",
    "failures": "Loads that failed after their retries.",
    "timeouts": "Loads or requests that ran out of time.",
    "retries": "Load attempts repeated after a failure.",
    "cooldowns": "Times a failing source was put to rest.",
    "cooldown_skips": "Loads not attempted because their source was cooling down.",
    "remote_loads": "Loads satisfied by a value another replica stored.",
    "remote_hits": "Needed items warm because another replica stored them.",
    "lease_waits": "Loads that waited for another replica holding the lease.",
    "learner_drops": "Turns the background learner never saw (its queue was full).",
    "history_catch_ups": "Exchanges a request recorded in its history itself, on its path.",
    "replies_truncated": "Replies cut to limits.max_reply_chars before joining the history.",
    "retrieved": "Items found by searching, for requests without known needs.",
    "feedback": "Window items judged by feedback on what the answer used.",
    "feedback_ignored": "Feedback on no known window, or on keys not in it.",
    "evictions": "Cache entries evicted to stay within bounds.",
    "backend_errors": "Failed calls to the shared cache backend.",
    "tokens": "Context tokens assembled.",
}

#: Call statistics exported as counters (``calls=``).
CALL_COUNTERS = {
    "calls": "Tool calls the agent made through the engine.",
    "read_only_calls": "Of those, calls of read-only tools.",
    "call_hits": "Read-only calls whose result was warm when asked.",
    "call_joins": "Read-only calls that joined a call in flight.",
    "call_misses": "Read-only calls run when asked.",
    "call_failures": "Calls that failed or ran out of time.",
    "speculative": "Calls run ahead of the agent.",
    "speculative_used": "Calls run ahead that the session then made.",
    "speculative_used_after_reply": "Of those, the ones run after the previous reply.",
    "speculative_used_at_request": "Of those, the ones run as the request arrived.",
    "speculative_used_after_call": "Of those, the ones run after one of the request's calls.",
    "speculative_wasted": "Calls run ahead that the session never made.",
    "speculative_skipped": "Calls not run ahead: over the per-step, per-source, per-call or fleet-wide budget.",
    "speculative_skipped_step": "Of those, held back by the step's budget (calls.max_per_turn).",
    "speculative_skipped_source": (
        "Of those, held back by the source's limit (calls.max_in_flight_per_source)."
    ),
    "speculative_skipped_slow": (
        "Of those held back by the source's limit, while it was lowered for the source's "
        "slowness (calls.source_slowdown)."
    ),
    "speculative_skipped_allowance": (
        "Of those, held back by the allowance per read-only call (calls.max_per_call)."
    ),
    "speculative_skipped_fleet": (
        "Of those, held back by the replicas' shared limit (calls.fleet_max_in_flight_per_source)."
    ),
}

#: Call statistics exported as gauges (``calls=``).
CALL_GAUGES = {
    "learned_word_counts": (
        "Word counts the call predictor's models held after its latest learning "
        "(bounded by calls.max_vocabulary; a shared model's not counted)."
    ),
    "source_limit": (
        "The lowest of the call sources' limits of calls run ahead at once now "
        "(calls.max_in_flight_per_source, lowered while a source is slow)."
    ),
}

#: Experiment arm counts exported as counters (``arms=``), labelled ``arm``.
ARM_COUNTERS = {
    "sessions": "Sessions of the experiment arm whose first turn this engine served.",
    "requests": "Requests the arm served.",
    "hits": "Needed items warm in the arm's requests.",
    "partial_hits": "Needed items whose preload was in flight in the arm's requests.",
    "misses": "Needed items loaded on demand in the arm's requests.",
    "tokens": "Context tokens the arm assembled.",
    "needs": "Known needs of the arm's requests.",
    "needs_in_window": "Of those, the needs its windows held.",
    "wait_s": "Seconds the arm's requests waited for their context.",
    "feedback_items": "Window items of the arm judged by feedback.",
    "feedback_used": "Of those, the items the answers used.",
    "scores": "Task scores given to the arm's sessions by feedback.",
    "score_sum": "The sum of those scores.",
}

#: Snapshot fields exported as gauges.
GAUGES = {
    "queued": "Preloads waiting for a worker.",
    "in_flight": "Loads running now.",
    "cache_entries": "Entries in the cache.",
    "cache_bytes": "Bytes in the cache.",
    "backend_up": "1 while the shared cache backend answers, 0 while serving from memory.",
}


class PrometheusCollector:
    """
    A custom collector over the engine's metric snapshots.

    Args:
        snapshot: Returns the current snapshot (``engine.metrics``), or with ``label``
            a mapping of the label's values to snapshots (one engine per tenant).
        prefix: The prefix of every metric name.
        label: The name of the label that tells the snapshots of a mapping apart.
        calls: Returns the call statistics (``engine.call_statistics``), or with
            ``label`` a mapping of them, exported as counters too.
        arms: Returns the experiment arms' counts (``engine.arm_statistics``), or
            with ``label`` a mapping of them, exported as ``<prefix>_arm_<count>``
            counters with an ``arm`` label.

    Raises:
        ImportError: prometheus-client is not installed (``pip install 'preload[prometheus]'``).

    .. versionadded:: 0.1
    .. versionchanged:: 0.4
       ``label`` and ``calls``.
    .. versionchanged:: 0.6
       ``arms``.
    """

    def __init__(
        self,
        snapshot: Callable[[], MetricsSnapshot | Mapping[str, MetricsSnapshot]],
        *,
        prefix: str = "preload",
        label: str | None = None,
        calls: Callable[[], CallStatistics | Mapping[str, CallStatistics]] | None = None,
        arms: Callable[[], Mapping[str, ArmStatistics] | Mapping[str, Mapping[str, ArmStatistics]]]
        | None = None,
    ) -> None:
        import prometheus_client  # noqa: F401 (fail early when the extra is missing)

        self.snapshot = snapshot
        self.prefix = prefix
        self.label = label
        self.calls = calls
        self.arms = arms

    def collect(self) -> Iterator[Any]:
        """
        The metric families of one snapshot (or one per label value).
        """
        from prometheus_client.core import (
            CounterMetricFamily,
            GaugeMetricFamily,
            HistogramMetricFamily,
        )

        taken = self.snapshot()
        if self.label is None:
            assert not isinstance(taken, Mapping)
            snaps: dict[str, MetricsSnapshot] = {"": taken}
            labels: list[str] = []
        else:
            assert isinstance(taken, Mapping)
            snaps, labels = dict(taken), [self.label]
        for name, doc in COUNTERS.items():
            yield self._family(CounterMetricFamily, name, doc, labels, snaps, name)
        for name, doc in GAUGES.items():
            yield self._family(GaugeMetricFamily, name, doc, labels, snaps, name)
        histogram = HistogramMetricFamily(
            f"{self.prefix}_load_latency_seconds",
            "Latency of successful source loads.",
            labels=labels,
        )
        for value, snap in snaps.items():
            buckets: list[tuple[str, float]] = []
            total = 0
            for bound, count in snap.load_latency_buckets:
                total += count
                buckets.append(("+Inf" if math.isinf(bound) else repr(bound), total))
            histogram.add_metric(
                [value] if labels else [],
                buckets or [("+Inf", 0)],
                sum_value=snap.load_latency_sum,
            )
        yield histogram
        if self.calls is not None:
            yield from self._calls(CounterMetricFamily, GaugeMetricFamily, labels)
        if self.arms is not None:
            yield from self._arms(CounterMetricFamily, labels)

    def _arms(self, family: Any, labels: list[str]) -> Iterator[Any]:
        """
        The experiment arms' counter families, labelled by arm.
        """
        assert self.arms is not None
        taken: Any = self.arms()
        by_label: dict[str, Mapping[str, ArmStatistics]] = dict(taken) if labels else {"": taken}
        for name, doc in ARM_COUNTERS.items():
            counter = family(f"{self.prefix}_arm_{name}", doc, labels=[*labels, "arm"])
            for value, arms in by_label.items():
                for arm, stats in arms.items():
                    counter.add_metric([value, arm] if labels else [arm], getattr(stats, name))
            yield counter

    def _calls(self, family: Any, gauges: Any, labels: list[str]) -> Iterator[Any]:
        """
        The call counters' and gauges' families.
        """
        assert self.calls is not None
        taken = self.calls()
        stats = dict(taken) if isinstance(taken, Mapping) else {"": taken}
        for name, doc in CALL_COUNTERS.items():
            field = name.removeprefix("speculative_") if "used_" in name else name
            yield self._family(family, name, doc, labels, stats, field)
        for name, doc in CALL_GAUGES.items():
            yield self._family(gauges, name, doc, labels, stats, name)

    def _family(
        self,
        family: Any,
        name: str,
        doc: str,
        labels: list[str],
        stats: Mapping[str, Any],
        field: str,
    ) -> Any:
        """
        The family ``<prefix>_<name>`` with each statistics' ``field``, one sample a
        label value (one unlabelled sample without a label).
        """
        metric = family(f"{self.prefix}_{name}", doc, labels=labels)
        for value, snap in stats.items():
            metric.add_metric([value] if labels else [], float(getattr(snap, field)))
        return metric
