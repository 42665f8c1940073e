"""
The optional Prometheus exporter over the engine's metric snapshots.
"""

from __future__ import annotations

import pytest

from preload import DictSource, EngineConfig, PreloadEngine, PrometheusCollector
from preload.learning import NullForecaster


async def test_metrics_export_to_prometheus(config: EngineConfig) -> None:
    """
    The optional exporter turns one snapshot into Prometheus counters, gauges and a
    load-latency histogram.
    """
    prometheus_client = pytest.importorskip("prometheus_client")
    source = DictSource({"service:Flights": "Flights: search and book flights."})
    async with PreloadEngine(
        config, sources={"kb": source}, forecaster=NullForecaster(), offload=False
    ) as engine:
        for _ in range(2):
            await engine.handle(session_id="s", text="fly", needs=["service:Flights"])
        registry = prometheus_client.CollectorRegistry()
        registry.register(PrometheusCollector(engine.metrics))
        text = prometheus_client.generate_latest(registry).decode()
    samples = {
        line.split(" ")[0]: float(line.split(" ")[1])
        for line in text.splitlines()
        if line and not line.startswith("#")
    }
    assert 1.0 == samples["preload_loads_total"]
    assert (1.0, 1.0) == (samples["preload_hits_total"], samples["preload_misses_total"])
    assert 2.0 == samples["preload_requests_total"]
    assert 1.0 == samples["preload_cache_entries"]
    assert 1.0 == samples["preload_backend_up"]
    assert 1.0 == samples['preload_load_latency_seconds_bucket{le="+Inf"}']
    assert 1.0 == samples["preload_load_latency_seconds_count"]
    for held_back in ("preloads_lost", "rejected", "deferred", "ttl_skipped"):
        assert 0.0 == samples[f"preload_{held_back}_total"]


async def test_engines_by_label_with_their_call_counters(config: EngineConfig) -> None:
    """
    With a label, one family holds every engine's samples (a server's tenants), and
    ``calls=`` adds the call counters.
    """
    prometheus_client = pytest.importorskip("prometheus_client")

    async def find(city: str) -> str:
        return f"hotels in {city}"

    engines = {}
    async with (
        PreloadEngine(config, sources={}, forecaster=NullForecaster(), offload=False) as a,
        PreloadEngine(config, sources={}, forecaster=NullForecaster(), offload=False) as b,
    ):
        engines = {"acme": a, "beta": b}
        a.tool(find, read_only=True)
        await a.handle(session_id="s", text="hotels?")
        for _ in range(2):
            await a.call("s", "find", {"city": "Oslo"})
        registry = prometheus_client.CollectorRegistry()
        registry.register(
            PrometheusCollector(
                lambda: {name: e.metrics() for name, e in engines.items()},
                label="tenant",
                calls=lambda: {name: e.call_statistics() for name, e in engines.items()},
            )
        )
        text = prometheus_client.generate_latest(registry).decode()
    samples = {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line and not line.startswith("#")
    }
    assert (1.0, 0.0) == (
        samples['preload_requests_total{tenant="acme"}'],
        samples['preload_requests_total{tenant="beta"}'],
    )
    assert (2.0, 1.0, 0.0) == (
        samples['preload_calls_total{tenant="acme"}'],
        samples['preload_call_hits_total{tenant="acme"}'],
        samples['preload_calls_total{tenant="beta"}'],
    )
    assert 0.0 == samples['preload_speculative_used_after_reply_total{tenant="acme"}']
    # a gauge: the source's limit of calls run ahead at once, not lowered (fast tools)
    limit = float(config.calls.max_in_flight_per_source)
    assert limit == samples['preload_source_limit{tenant="acme"}']
    assert 0.0 == samples['preload_speculative_skipped_slow_total{tenant="acme"}']
