"""
The outcomes writer of ``preload serve`` (``server.outcomes_dir``), in one process on a
virtual clock: it saves each tenant's experiment outcomes every interval, and a tenant
whose file cannot be written spares the others.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import anyio
import pytest

from preload import DictSource, EngineConfig, PreloadEngine
from preload.experiments import read_outcomes
from preload.learning import NullForecaster
from preload.replay import VirtualClockLoop
from preload.server._outcomes import OutcomesWriter

pytest.importorskip("fastapi")

EXPERIMENT = {
    "experiments": {
        "name": "budget",
        "arms": {"control": {}, "small": {"overlay": {"budget": {"total_tokens": 4000}}}},
    }
}


def test_outcomes_are_saved_every_interval_by_tenant(tmp_path: Path) -> None:
    """
    Every ``every_s`` the writer saves the outcomes so far of each tenant that runs an
    experiment (a tenant without one gets no file); a tenant whose folder cannot be
    made is logged and skipped, and the next save tries it again.
    """
    (tmp_path / "bad").write_text("a file where the tenant's folder would go", encoding="utf-8")
    saved: list[list[str]] = []

    async def main() -> None:
        sources = {"kb": DictSource({"k": "an item"})}
        experiment = EngineConfig.from_dict(EXPERIMENT)
        async with (
            PreloadEngine(experiment, sources=sources, forecaster=NullForecaster()) as acme,
            PreloadEngine(EngineConfig(), sources=sources, forecaster=NullForecaster()) as beta,
            PreloadEngine(experiment, sources=sources, forecaster=NullForecaster()) as bad,
        ):
            gates: dict[str, Any] = {
                name: SimpleNamespace(engine=engine)
                for name, engine in (("acme", acme), ("beta", beta), ("bad", bad))
            }
            writer = OutcomesWriter(tmp_path, gates, every_s=60)
            for engine in (acme, beta, bad):
                await engine.handle(session_id="s1", text="hi", needs=["k"])
            async with anyio.create_task_group() as tg:
                tg.start_soon(writer.run)
                for session in ("s2", "s3"):
                    began = anyio.current_time()
                    await writer.next_save()
                    assert 60 == pytest.approx(anyio.current_time() - began, abs=1)
                    saved.append([o.session_id for o in read_outcomes(writer.path_of("acme"))])
                    await acme.handle(session_id=session, text="hi", needs=["k"])
                tg.cancel_scope.cancel()
            assert not writer.path_of("beta").exists()
            assert not (tmp_path / "bad").is_dir()

    anyio.run(main, backend_options={"loop_factory": VirtualClockLoop})
    assert [["s1"], ["s1", "s2"]] == saved
