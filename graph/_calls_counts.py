"""
What the call forecast counts in session logs, and how it reads one session.

:class:`CallCounts` holds the counts learned from every training session: which calls
follow which contexts, the argument sets of each call, the values of each argument (and
the phrase index that finds them in text), which earlier call's argument an argument
copies, the anchor day relative dates count from. :class:`SessionView` is one session's
turns as the forecast reads them: each text scanned once for known values, the latest
value of every earlier call's argument.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from ._calls_text import (
    MAX_TEXT,
    PhraseIndex,
    normalized_mentions,
    token_ends,
    tokenize,
    value_format,
)

__all__ = [
    "START",
    "Call",
    "CallCounts",
    "Key",
    "SessionView",
    "TextScan",
    "calls_of",
    "mention",
    "turns_of",
]

#: One argument of one call: ``(call name, argument name)``.
Key: TypeAlias = "tuple[str, str]"
#: A call as the logs record it: its name and its complete arguments.
Call: TypeAlias = "tuple[str, dict[str, str]]"

#: The context of the first turn (no previous turn).
START = ""
#: How many earlier calls an argument's value is compared with, when learning which
#: earlier argument it copies.
_MAX_FLOW_CALLS = 12


def turns_of(session: Any) -> list[Mapping[str, Any]]:
    """
    Return the turn mappings of a session mapping or sequence, skipping what is not one.
    """
    turns = session.get("turns") if isinstance(session, Mapping) else session
    if isinstance(turns, (str, bytes)) or not isinstance(turns, Iterable):
        return []
    return [turn for turn in turns if isinstance(turn, Mapping)]


def calls_of(turn: Mapping[str, Any]) -> list[tuple[str, dict[str, str], bool]]:
    """
    Return a turn's well-formed ``tool_calls`` as ``(name, args, read_only)``; malformed
    calls and arguments (not strings) are skipped.
    """
    raw = turn.get("tool_calls")
    if not isinstance(raw, (list, tuple)):
        return []
    out: list[tuple[str, dict[str, str], bool]] = []
    for call in raw:
        if not isinstance(call, Mapping):
            continue
        name, args = call.get("name"), call.get("args")
        if not isinstance(name, str) or not name:
            continue
        if not isinstance(args, Mapping):
            args = {}
        clean = {a: v for a, v in args.items() if isinstance(a, str) and isinstance(v, str)}
        out.append((name, clean, call.get("read_only") is True))
    return out


def _text(turn: Mapping[str, Any] | None, field_name: str) -> str:
    value = turn.get(field_name) if turn is not None else None
    return value if isinstance(value, str) else ""


@dataclass(slots=True)
class TextScan:
    """
    One text, scanned: the last mention of each known argument value, by key id.
    """

    low: str
    found: dict[int, tuple[int, str]]
    norm: dict[str, list[tuple[str, str, int]]] = field(default_factory=dict)


class CallCounts:
    """
    The counts the call forecast learns from sessions, added to session by session.
    """

    def __init__(self) -> None:
        self.n_sessions = 0
        self.names: dict[str, list[float]] = {}  # name -> [calls, read-only calls]
        self.patterns: dict[str, dict[tuple[str, ...], float]] = {}
        self.values: dict[Key, dict[str, float]] = {}
        self.flow: dict[Key, dict[Key, float]] = {}
        self.contexts: dict[tuple[str, ...], list[Any]] = {}  # ctx -> [turns, {name: n}]
        self.dates: dict[str, float] = {}  # anchor votes
        self.hours: dict[int, float] = {}  # hour of day of time values
        self.index = PhraseIndex()
        self.key_ids: dict[Key, int] = {}
        self.keys: list[Key] = []
        self.phrase_keys: list[dict[int, str]] = []
        self._derived: dict[Any, Any] = {}
        #: What the forecast worked out from these counts (emptied when they change).
        self.memo: dict[Any, Any] = {}

    # -- learning -------------------------------------------------------------------

    def add(self, session: Any) -> None:
        """
        Count one session.
        """
        self.n_sessions += 1
        self._derived.clear()
        self.memo.clear()
        prev_state: str = START
        prev_calls: tuple[str, ...] = ()
        seen: list[Call] = []
        for turn in turns_of(session):
            calls = calls_of(turn)
            state = turn.get("state")
            names = tuple(sorted({name for name, _, _ in calls}))
            ctxs = [("p", prev_state, *prev_calls), ("p", prev_state), ("*",)]
            if isinstance(state, str):
                ctxs.append(("s", state))
            for ctx in ctxs:
                entry = self.contexts.setdefault(ctx, [0.0, {}])
                entry[0] += 1.0
                for name in names:
                    entry[1][name] = entry[1].get(name, 0.0) + 1.0
            for name, args, read_only in calls:
                self._add_call(name, args, read_only, seen, _text(turn, "text"))
            seen.extend((name, args) for name, args, _ in calls)
            del seen[:-_MAX_FLOW_CALLS]
            prev_state = state if isinstance(state, str) else START
            prev_calls = names

    def _add_call(
        self, name: str, args: dict[str, str], read_only: bool, seen: list[Call], text: str
    ) -> None:
        entry = self.names.setdefault(name, [0.0, 0.0])
        entry[0] += 1.0
        entry[1] += float(read_only)
        pats = self.patterns.setdefault(name, {})
        pattern = tuple(sorted(args))
        pats[pattern] = pats.get(pattern, 0.0) + 1.0
        for arg, value in args.items():
            key = (name, arg)
            vals = self.values.setdefault(key, {})
            if value not in vals:
                self._index_value(key, value)
            vals[value] = vals.get(value, 0.0) + 1.0
            flows = self.flow.setdefault(key, {})
            for earlier, earlier_args in seen:
                for other, other_value in earlier_args.items():
                    if other_value == value:
                        src = (earlier, other)
                        flows[src] = flows.get(src, 0.0) + 1.0
            self._vote_anchor(value, text)

    def _index_value(self, key: Key, value: str) -> None:
        kid = self.key_ids.get(key)
        if kid is None:
            kid = self.key_ids[key] = len(self.keys)
            self.keys.append(key)
        pid = self.index.add(tokenize(value))
        if pid < 0:
            return
        while len(self.phrase_keys) <= pid:
            self.phrase_keys.append({})
        self.phrase_keys[pid].setdefault(kid, value)

    def _vote_anchor(self, value: str, text: str) -> None:
        if len(value) == 10 and value[4] == "-" and value[7] == "-":
            low = text.lower()
            try:
                day = dt.date.fromisoformat(value)
            except ValueError:
                return
            if "day after tomorrow" in low:
                day -= dt.timedelta(days=2)
            elif "tomorrow" in low:
                day -= dt.timedelta(days=1)
            elif "today" not in low and "tonight" not in low:
                return
            iso = day.isoformat()
            self.dates[iso] = self.dates.get(iso, 0.0) + 1.0
        elif len(value) == 5 and value[2] == ":" and value[:2].isdigit():
            hour = int(value[:2])
            self.hours[hour] = self.hours.get(hour, 0.0) + 1.0

    # -- what the counts say --------------------------------------------------------

    def anchor(self) -> dt.date | None:
        """
        Return the day "today" meant in most training calls, or None if none said.
        """
        if not self.dates:
            return None
        return dt.date.fromisoformat(max(self.dates, key=lambda d: (self.dates[d], d)))

    def pm_hours(self) -> frozenset[int]:
        """
        Return the hours 1 to 11 that time values more often meant in the afternoon.
        """
        got = self._derived.get("pm")
        if got is None:
            hours = self.hours
            got = frozenset(h for h in range(1, 12) if hours.get(h + 12, 0) > hours.get(h, 0))
            self._derived["pm"] = got
        return frozenset(got)

    def key_info(self, key: Key) -> tuple[float, str, str | None, int]:
        """
        Return an argument's presence rate in its call, its most frequent value, its
        value format (see :func:`value_format`) and its key id (-1 if never valued).
        """
        info = self._derived.get(key)
        if info is None:
            vals = self.values.get(key, {})
            pats = self.patterns.get(key[0], {})
            total = sum(pats.values())
            present = sum(n for pat, n in pats.items() if key[1] in pat)
            top = max(vals, key=lambda v: (vals[v], v)) if vals else ""
            info = (
                present / total if total else 0.0,
                top,
                value_format(vals),
                self.key_ids.get(key, -1),
            )
            self._derived[key] = info
        return info

    def arg_names(self, name: str) -> list[str]:
        """
        Return every argument a call was seen with, most frequent first.
        """
        got = self._derived.get(("args", name))
        if got is None:
            counts: dict[str, float] = {}
            for pat, n in self.patterns.get(name, {}).items():
                for arg in pat:
                    counts[arg] = counts.get(arg, 0.0) + n
            got = sorted(counts, key=lambda a: (-counts[a], a))
            self._derived[("args", name)] = got
        return list(got)

    def flows(self, key: Key, top: int = 4) -> list[Key]:
        """
        Return the earlier call arguments this argument most often copied.
        """
        got = self._derived.get(("flow", key))
        if got is None:
            counts = self.flow.get(key, {})
            got = sorted((s for s, n in counts.items() if n >= 2), key=lambda s: -counts[s])
            got = got[:top]
            self._derived[("flow", key)] = got
        return list(got)

    # -- saving ---------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        """
        Return the counts as JSON-ready data.
        """
        return {
            "n_sessions": self.n_sessions,
            "names": self.names,
            "patterns": {
                n: [[list(p), c] for p, c in ps.items()] for n, ps in self.patterns.items()
            },
            "values": [[list(k), v] for k, v in self.values.items()],
            "flow": [[list(k), [[list(s), c] for s, c in f.items()]] for k, f in self.flow.items()],
            "contexts": [[list(c), e] for c, e in self.contexts.items()],
            "dates": self.dates,
            "hours": {str(h): n for h, n in self.hours.items()},
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CallCounts:
        """
        Rebuild counts from :meth:`to_json` output (errors: KeyError, TypeError, ValueError).
        """
        counts = cls()
        counts.n_sessions = int(data["n_sessions"])
        counts.names = {str(n): [float(x) for x in e] for n, e in data["names"].items()}
        counts.patterns = {
            str(n): {tuple(map(str, p)): float(c) for p, c in ps}
            for n, ps in data["patterns"].items()
        }
        for (name, arg), vals in data["values"]:
            key = (str(name), str(arg))
            counts.values[key] = {str(v): float(c) for v, c in vals.items()}
            for value in counts.values[key]:
                counts._index_value(key, value)
        counts.flow = {
            (str(k[0]), str(k[1])): {(str(s[0]), str(s[1])): float(c) for s, c in f}
            for k, f in data["flow"]
        }
        counts.contexts = {
            tuple(map(str, c)): [float(e[0]), {str(n): float(x) for n, x in e[1].items()}]
            for c, e in data["contexts"]
        }
        counts.dates = {str(d): float(n) for d, n in data["dates"].items()}
        counts.hours = {int(h): float(n) for h, n in data["hours"].items()}
        return counts


class SessionView:
    """
    One session as the call forecast reads it, extended turn by turn.

    Each text is scanned once. The latest known value said of every argument is kept
    for the user's earlier requests and the agent's earlier replies, the last reply is
    kept apart, and so is the latest value of every earlier call's argument.

    Args:
        counts: The counts whose phrase index scans the texts.
        max_turns: Texts of at most this many latest turns are searched for
            normalized values (known values are kept from every turn).
    """

    def __init__(self, counts: CallCounts, max_turns: int) -> None:
        self.counts = counts
        self.max_turns = max_turns
        self.user: list[TextScan] = []
        self.agent: list[TextScan] = []
        self.user_seen: dict[int, tuple[int, int, str]] = {}  # kid -> (turn, end, value)
        self.agent_seen: dict[int, tuple[int, int, str]] = {}  # before the last reply
        self.flow_values: dict[Key, str] = {}
        self.last_args: dict[str, dict[str, str]] = {}
        self.prev_state = START
        self.prev_calls: tuple[str, ...] = ()
        self.n_turns = 0
        #: What the forecast worked out from the turns so far (emptied by add_turn).
        self.memo: dict[str, Any] = {}

    def scan(self, text: str) -> TextScan:
        """
        Scan one text for every known argument value.
        """
        low = text[-MAX_TEXT:].lower()
        toks, ends = token_ends(low)
        found: dict[int, tuple[int, str]] = {}
        if toks:
            phrase_keys = self.counts.phrase_keys
            for pid, after in self.counts.index.scan(toks):
                for kid, value in phrase_keys[pid].items():
                    found[kid] = (ends[after - 1], value)
        return TextScan(low, found)

    def add_turn(self, turn: Mapping[str, Any]) -> None:
        """
        Read a completed turn: its request, reply, state and calls.
        """
        n = self.n_turns
        self.memo.clear()
        if self.agent:
            for kid, (end, value) in self.agent[-1].found.items():
                self.agent_seen[kid] = (n - 1, end, value)
        user = self.scan(_text(turn, "text"))
        for kid, (end, value) in user.found.items():
            self.user_seen[kid] = (n, end, value)
        self.user.append(user)
        self.agent.append(self.scan(_text(turn, "system")))
        if len(self.user) > self.max_turns:
            del self.user[0], self.agent[0]
        calls = calls_of(turn)
        for name, args, _ in calls:
            self.last_args[name] = args
            for arg, value in args.items():
                self.flow_values[(name, arg)] = value
        state = turn.get("state")
        self.prev_state = state if isinstance(state, str) else START
        self.prev_calls = tuple(sorted({name for name, _, _ in calls}))
        self.n_turns += 1

    def said_before(
        self, kid: int, fmt: str | None, anchor: dt.date | None, *, agent: bool
    ) -> tuple[str, str] | None:
        """
        Return the latest ``(value, how)`` said of an argument in the user's earlier
        requests (or the agent's replies before the last one); ``how`` as in
        :func:`mention`.
        """
        seen = (self.agent_seen if agent else self.user_seen).get(kid)
        if fmt is not None:
            scans = self.agent[:-1] if agent else self.user
            first = self.n_turns - len(self.user)
            for back in range(len(scans) - 1, -1, -1):
                turn_no = first + back
                if seen is not None and seen[0] > turn_no:
                    break
                got = mention(scans[back], -1, fmt, self.counts, anchor)
                if got is not None:
                    if seen is not None and seen[0] == turn_no and seen[1] >= got[0]:
                        break
                    return got[1], got[2]
        return (seen[2], "") if seen is not None else None


def mention(
    scan: TextScan, kid: int, fmt: str | None, counts: CallCounts, anchor: dt.date | None
) -> tuple[int, str, str] | None:
    """
    Return the last ``(end, value, how)`` a text says for an argument: a known value
    (``how`` is ``""``) or a normalized one (``how`` is the rule's name).
    """
    best: tuple[int, str, str] | None = None
    hit = scan.found.get(kid)
    if hit is not None:
        best = (hit[0], hit[1], "")
    if fmt is not None and scan.low:
        norm = scan.norm.get(fmt)
        if norm is None:
            norm = scan.norm[fmt] = normalized_mentions(scan.low, fmt, anchor, counts.pm_hours())
        if norm and (best is None or norm[-1][2] > best[0]):
            value, rule, end = norm[-1]
            best = (end, value, rule)
    return best
