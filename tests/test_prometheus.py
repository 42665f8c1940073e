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
