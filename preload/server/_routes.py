"""
The routes of the API under ``/v1``, and the probes: one function a route, each change
to a session served through its gate (:meth:`SessionGate.run`: one at a time, written
with a check that the session is as the replica knew it) and written back before the
answer leaves.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from .._errors import InputTooLargeError, UnknownToolError
from .._sessions import label_problem, name_problem
from ..engine._inputs import MAX_ID_CHARS
from ._export import session_log_chunks
from ._gate import Change, SessionGate
from ._keys import NAME_PATTERN
from ._monitor import server_timing
from ._outcomes import outcome_chunks
from ._store import StoreConflict, new_epoch

if TYPE_CHECKING:
    from ..window import Context
    from ._app import _Server

__all__ = ["ApiError", "router"]

router = APIRouter()


class RequestIn(BaseModel):
    """
    ``POST /v1/sessions/{id}/requests``.
    """

    model_config = ConfigDict(extra="forbid")

    text: str
    state: str | None = None
    needs: list[str] = Field(default_factory=list)
    user: str | None = None
    request_id: str | None = Field(default=None, max_length=MAX_ID_CHARS)


class ReplyIn(BaseModel):
    """
    ``POST /v1/sessions/{id}/replies``.
    """

    model_config = ConfigDict(extra="forbid")

    text: str


class FeedbackIn(BaseModel):
    """
    ``POST /v1/sessions/{id}/feedback``.
    """

    model_config = ConfigDict(extra="forbid")

    used: list[str] = Field(max_length=1_000)
    score: float | None = None


class CallIn(BaseModel):
    """
    ``POST /v1/sessions/{id}/calls``.
    """

    model_config = ConfigDict(extra="forbid")

    name: str
    args: dict[str, Any] = Field(default_factory=dict)
    call_id: str | None = Field(default=None, max_length=MAX_ID_CHARS)
    result: str | None = None  # the client ran the call: recorded, never run


class ApiError(Exception):
    """
    An error the API answers with its status, code and message.
    """

    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field


SessionId = Annotated[str, Path(pattern=NAME_PATTERN, description="The session's id.")]


def _server(request: Request) -> _Server:
    server: _Server = request.app.state.server
    return server


async def _gate(request: Request) -> AsyncIterator[SessionGate]:
    """
    The gate of the tenant whose key the request carries, its engine held open until
    the response is sent (opened first when ``server.max_open_tenants`` left it
    closed). A coroutine, so that FastAPI runs it on the loop rather than through its
    thread pool.

    Raises:
        ApiError: 401, no key or an unknown one.
    """
    server = _server(request)
    scheme, _, key = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not key:
        raise ApiError(401, "unauthorized", "send 'Authorization: Bearer <key>'")
    tenant = server.keys.tenant_of(key.strip())
    if tenant is None:
        raise ApiError(401, "unauthorized", "unknown API key")
    async with server.tenants.using(tenant) as gate:
        yield gate


Gate = Annotated[SessionGate, Depends(_gate)]


@router.post("/v1/sessions/{session_id}/requests")
async def post_request(session_id: SessionId, body: RequestIn, gate: Gate) -> Response:
    """
    Serve a request: its context within budget, from what is warm.
    """
    _check_names(body)
    began = time.perf_counter()
    times: list[float] = []  # when the (last) change began, when the engine served
    # served again (a retry, or after the store refused the write), it counts once
    request_id = body.request_id or f"~{uuid.uuid4().hex}"

    async def serve(change: Change) -> tuple[Context, int, bool]:
        times[:] = [time.perf_counter()]
        synced = change.synced
        last = synced.last or {}
        repeat = body.request_id is not None and last.get("request_id") == body.request_id
        if repeat:  # a retry of a turn the store accepted: serve it again, unwritten
            gate.rewind(session_id, synced.count - 1)
        ctx = await gate.engine.handle(
            session_id=session_id,
            text=body.text,
            state=body.state,
            needs=body.needs,
            user=body.user,
            request_id=request_id,
        )
        times.append(time.perf_counter())
        if not repeat:
            await _write(gate, change, session_id, body)
        return ctx, synced.count - 1 if repeat else synced.count, repeat

    ctx, turn, repeat = await gate.run(session_id, serve)
    written = time.perf_counter()
    leased, handled = times
    response = _json(_answer(session_id, ctx, turn=turn, repeat=repeat))
    response.headers["server-timing"] = server_timing(
        {"lease": leased - began, "handle": handled - leased, "write": written - handled}
    )
    return response


def _check_names(body: RequestIn) -> None:
    """
    Raises:
        ApiError: 422, a state, need or user the engine cannot take, named.
    """
    named = [("state", body.state), *((f"needs[{i}]", k) for i, k in enumerate(body.needs))]
    for where, name in named:
        problem = name_problem(where, name) if name is not None else None
        if problem is not None:
            raise ApiError(422, "invalid_request", problem, where.split("[")[0])
    problem = label_problem("user", body.user) if body.user is not None else None
    if problem is not None:
        raise ApiError(422, "invalid_request", problem, "user")


def _answer(session_id: str, ctx: Context, *, turn: int, repeat: bool) -> dict[str, Any]:
    """
    The answer to a request: its context as JSON.
    """
    return {
        "session_id": session_id,
        "turn": turn,
        "text": ctx.render(),
        "tokens": ctx.tokens,
        "budget": ctx.budget,
        "items": [
            {
                "key": item.key,
                "category": item.category,
                "level": item.level,
                "tokens": item.tokens,
                "reason": item.reason,
            }
            for item in ctx.items
        ],
        "explain": ctx.explain(),
        "waited_ms": ctx.waited_s * 1000,
        "hits": ctx.hits,
        "partial_hits": ctx.partial_hits,
        "misses": ctx.misses,
        "missing": list(ctx.missing),
        "speculated": list(ctx.speculated),
        "repeated": repeat,
    }


@router.post("/v1/sessions/{session_id}/replies", status_code=204)
async def post_reply(session_id: SessionId, body: ReplyIn, gate: Gate) -> Response:
    """
    Record the agent's reply to the session's last request.
    """
    limit = gate.engine.config.limits.max_reply_chars
    if len(body.text) > limit:
        raise InputTooLargeError(
            "reply text (characters)", len(body.text), limit, "limits.max_reply_chars", "text"
        )

    async def serve(change: Change) -> None:
        if not change.synced.count:
            raise _no_session(session_id)
        _check_unanswered(change, session_id)
        gate.engine.reply(session_id, body.text)
        await _rewrite(gate, change, session_id)

    await gate.run(session_id, serve)
    return Response(status_code=204)


@router.post("/v1/sessions/{session_id}/calls")
async def post_call(session_id: SessionId, body: CallIn, gate: Gate) -> dict[str, Any]:
    """
    Make a tool call for the session's current request, served from its speculative
    result when there is one; or, with ``result``, record a call the client made
    itself (a tool the server does not run), with what it returned.
    """
    if body.result is not None:
        limit = gate.engine.config.limits.max_reply_chars
        if len(body.result) > limit:
            raise InputTooLargeError(
                "call result (characters)",
                len(body.result),
                limit,
                "limits.max_reply_chars",
                "result",
            )
        if gate.engine.knows_tool(body.name):
            raise ApiError(
                422,
                "invalid_request",
                f"the server runs tool {body.name!r}: send the call without 'result'",
                "result",
            )

    async def serve(change: Change) -> tuple[str, bool]:
        if not change.synced.count:
            raise _no_session(session_id)
        if body.call_id is not None:  # a retry of a call this turn made: not run again
            try:
                done = gate.engine.repeated_call(session_id, body.call_id, body.name, body.args)
            except (TypeError, ValueError) as exc:
                raise ApiError(422, "invalid_request", str(exc), "call_id") from None
            if done is not None:
                return done, True
        if body.result is not None:
            return await _record(gate, change, session_id, body), False
        try:
            result = await gate.engine.call(session_id, body.name, body.args, call_id=body.call_id)
        except UnknownToolError as exc:
            raise ApiError(404, "unknown_tool", str(exc), "name") from None
        except (TypeError, ValueError) as exc:
            raise ApiError(422, "invalid_request", f"args: {exc}", "args") from None
        except TimeoutError as exc:
            raise ApiError(504, "tool_timeout", str(exc)) from None
        except Exception as exc:  # the tool's own failure
            raise ApiError(502, "tool_failed", f"{type(exc).__name__}: {exc}") from exc
        await _rewrite(gate, change, session_id)
        return result, False

    # under the lease: a write without it, refused after the tool ran, would run it again
    result, repeated = await gate.run(session_id, serve, leased=True)
    return {"name": body.name, "result": result, "repeated": repeated}


async def _record(gate: SessionGate, change: Change, session_id: str, body: CallIn) -> str:
    """
    Record the call the client made (``body.result``), and write the session; the
    result as recorded.
    """
    result = body.result or ""
    try:
        gate.engine.record_call(session_id, body.name, body.args, result, call_id=body.call_id)
    except (TypeError, ValueError) as exc:
        raise ApiError(422, "invalid_request", f"args: {exc}", "args") from None
    await _rewrite(gate, change, session_id)
    return result


@router.post("/v1/sessions/{session_id}/feedback", status_code=202)
async def post_feedback(session_id: SessionId, body: FeedbackIn, gate: Gate) -> Response:
    """
    Which items of the last window the answer used: the content-value predictor
    learns from it in the background. Feedback the replica cannot place (no window
    of that session here, keys not in it) is counted, never an error.
    """
    gate.engine.feedback(session_id, used=body.used, score=body.score)
    return Response(status_code=202)


#: A time of the export's window: seconds since the epoch.
EpochSeconds = Annotated[
    float | None, Query(ge=0, allow_inf_nan=False, description="Seconds since the epoch.")
]


@router.get("/v1/sessions")
async def export_sessions(
    gate: Gate, since: EpochSeconds = None, until: EpochSeconds = None
) -> StreamingResponse:
    """
    The tenant's stored sessions (every replica's, on a shared store) as a session
    log: one session a line, as ``preload train --sessions`` reads it, sent a page of
    the store's ids at a time so that requests are served meanwhile. With ``since``
    or ``until``, only the sessions whose last turn was served at or after ``since``
    and before ``until``, whole.

    Raises:
        ApiError: 422, ``until`` not after ``since`` (a time that is not a number of
            seconds at or after the epoch is FastAPI's 422, naming it too).
        StoreUnavailable: 503, before the first line; later, the stream is cut short.
    """
    if since is not None and until is not None and until <= since:
        raise ApiError(
            422, "invalid_request", f"until: {until} is not after since ({since})", "until"
        )
    return await _lines(session_log_chunks(gate.store, gate.tenant, since=since, until=until))


@router.get("/v1/sessions/{session_id}")
async def get_session(session_id: SessionId, gate: Gate) -> dict[str, Any]:
    """
    The session's turns as stored, oldest first: its last ``limits.max_session_turns``,
    the first of which is turn ``first_turn`` of the session (0 unless older ones went).
    """
    stored = await gate.store.read(gate.tenant, session_id)
    if not stored.count:
        raise _no_session(session_id)
    return {
        "session_id": session_id,
        "user": stored.user,
        "first_turn": stored.first,
        "turns": stored.turns,
    }


@router.delete("/v1/sessions/{session_id}", status_code=204)
async def delete_session(session_id: SessionId, gate: Gate) -> Response:
    """
    Forget the session everywhere.
    """

    async def serve(change: Change) -> bool:
        existed = await gate.store.delete(gate.tenant, session_id)
        gate.forget(session_id)
        return existed

    if not await gate.run(session_id, serve, leased=True):  # after changes under way
        raise _no_session(session_id)
    return Response(status_code=204)


@router.get("/v1/experiment/outcomes")
async def experiment_outcomes(gate: Gate) -> StreamingResponse:
    """
    The outcomes of the tenant's experiment sessions this replica served (those that
    ended, then the live ones so far), as an outcomes file holds them (JSONL), a few
    hundred at a time so that requests are served meanwhile. Each replica's, saved
    to a file of its own, are what ``preload report`` merges.

    Raises:
        ApiError: 404, the tenant's configuration runs no experiment.
    """
    engine = gate.engine
    if not engine.config.experiments.enabled:
        raise ApiError(
            404, "no_experiment", "this tenant's configuration has no [experiments] arms"
        )
    return await _lines(outcome_chunks(engine))


async def _lines(chunks: AsyncIterator[str]) -> StreamingResponse:
    """
    JSONL sent as ``chunks`` come, the first one worked out before the status is
    sent: what fails then (the store, say) is an error answer, not a body cut short.
    """
    first = await anext(chunks, "")

    async def body() -> AsyncIterator[str]:
        if first:
            yield first
        async for chunk in chunks:
            yield chunk

    return StreamingResponse(body(), media_type="application/x-ndjson")


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """
    The process is up.
    """
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(request: Request) -> dict[str, str]:
    """
    The process can serve: its session store answers.
    """
    await _server(request).store.ping()
    return {"status": "ready"}


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    """
    Prometheus metrics: every tenant's engine, request times, event-loop lag.
    """
    from ._metrics import render

    body, content_type = render(_server(request))
    return Response(body, media_type=content_type)


async def _write(gate: SessionGate, change: Change, session_id: str, body: RequestIn) -> None:
    """
    Store the turn the engine just added after the stored ones; when the store
    refuses, take it back from the engine too.
    """
    count = change.synced.count
    turn = gate.engine.turns_of(session_id, count)[0]
    turn["request_id"] = body.request_id
    epoch = change.synced.epoch or new_epoch()
    try:
        version = await change.held.append(turn, expected=count, epoch=epoch, user=body.user)
    except BaseException as exc:
        gate.rewind(session_id, count)
        gate.failed(change, session_id, exc)
        raise
    gate.remember(session_id, epoch, count + 1, version, body.request_id)


async def _rewrite(gate: SessionGate, change: Change, session_id: str) -> None:
    """
    Store the engine's last turn of the session in place of the stored one.
    """
    synced = change.synced
    turn = gate.engine.turns_of(session_id, synced.count - 1)[0]
    request_id = turn["request_id"] = (synced.last or {}).get("request_id")
    try:
        version = await change.held.update_last(turn, count=synced.count, epoch=synced.epoch)
    except BaseException as exc:
        gate.failed(change, session_id, exc)  # the engine's copy is ahead
        raise
    gate.remember(session_id, synced.epoch, synced.count, version, request_id)


def _check_unanswered(change: Change, session_id: str) -> None:
    """
    Raises:
        StoreConflict: The change is served from the copy as known here, whose last
            turn is answered: the request a reply is for was most likely served by
            another replica a moment ago, so the change is served again under the
            lease, from the store (where it may, too, replace a reply).
    """
    if change.unleased and (change.synced.last or {}).get("system") is not None:
        raise StoreConflict(session_id)


def _json(answer: dict[str, Any]) -> Response:
    """
    The answer as JSON, encoded at once: the context holds only JSON types, so
    FastAPI's generic encoder (a walk of every value) is skipped.
    """
    body = json.dumps(answer, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return Response(body.encode(), media_type="application/json")


def _no_session(session_id: str) -> ApiError:
    return ApiError(404, "no_session", f"no session {session_id!r}")
