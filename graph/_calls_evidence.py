"""
What the call forecast learned to trust: :class:`Evidence` holds, for each argument of
each tool, how often each source of a value (said in the request, in the agent's last
reply, in earlier texts, copied from another call, given by a result, the default) had
one, how often the argument was then given and how often that value was right; and
which words around a value said in a text go with the argument's right values.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, TypeAlias

from ._aging import halve
from ._calls_cues import CueCounts, CueWeights
from ._calls_view import arg_words

if TYPE_CHECKING:
    from ._calls_turns import Key

__all__ = ["AGAIN", "FROM_REQUEST", "Cand", "Evidence", "said_kind", "source_kind"]

#: A candidate value of one argument: ``(source kind, value, evidence)``.
Cand: TypeAlias = "tuple[str, str, str]"
#: What each source is taken to be worth before held-out sessions say: precision when
#: the argument is given, and how often the argument is given when the source has a value.
_PRIOR: dict[str, tuple[float, float]] = {
    "user:now": (0.6, 0.6),
    "user:span": (0.3, 0.3),
    "user:cued": (0.6, 0.6),
    "user:whole": (0.5, 0.5),
    "agent:last": (0.5, 0.4),
    "user:past": (0.4, 0.4),
    "agent:past": (0.2, 0.2),
    "call": (0.5, 0.4),
    "next": (0.3, 0.3),
    "result": (0.2, 0.2),
    "default": (0.3, 0.3),
    "same": (0.5, 0.5),
}
#: The mark of a source's kind for a tool called again in the same turn: its rates are
#: counted apart, and smoothed towards the same source's at a turn's first call.
AGAIN = "@again"
#: The sources whose values the request itself said: a call built on one is "fresh".
FROM_REQUEST = frozenset({"user:now", "user:span", "user:cued", "user:whole"})


def source_kind(kind: str) -> str:
    """
    The source a candidate's kind belongs to (its prior): ``call:<name>.<arg>`` is a
    ``call``, ``user:now/alias`` (said as an alias, or normalized) is ``user:now``.
    """
    kind = kind.removesuffix(AGAIN)
    return "call" if kind.startswith("call:") else kind.partition("/")[0]


def said_kind(kind: str, how: str) -> str:
    """
    A text source's kind, told apart by how the value was said (verbatim, as an alias,
    normalized by a rule): each has its own precision and rate of being given.
    """
    return f"{kind}/{how}" if how else kind


class Evidence:
    """
    The trust the forecast puts in each source of each argument's value, and in the
    words around a value, counted on held-out turns and smoothed towards priors by
    ``prior_weight`` pseudo-counts.

    Attributes:
        sources: ``{(name, arg): {source: [available, given, right]}}``.
        cues: ``{(name, arg): CueCounts}`` (read as ``{word: [right, wrong]}``): the
            words around the values a text said, beside the argument's right value or
            a wrong one.
    """

    __slots__ = ("_cue_w", "_word_cues", "cues", "prior_weight", "sources")

    def __init__(self, prior_weight: float) -> None:
        self.prior_weight = prior_weight
        self.sources: dict[Key, dict[str, list[float]]] = {}
        self.cues: dict[Key, CueCounts] = {}
        # the cue counts of every argument whose name has a word, and each key's weights
        self._word_cues: dict[str, CueCounts] = {}
        self._cue_w: dict[Key, CueWeights] = {}

    def count(self, key: Key, options: list[Cand], truth: str | None) -> None:
        """
        Count each source that had a value for the argument, whether the argument was
        given (``truth``, its value in the call, None when it was not) and whether the
        source's value was right. The default counts only where it is the only source.
        """
        stats = self.sources.setdefault(key, {})
        for kind, value, _ in options:
            if kind == "default" and len(options) > 1:
                continue
            entry = stats.setdefault(kind, [0.0, 0.0, 0.0])
            entry[0] += 1.0
            if truth is not None:
                entry[1] += 1.0
                entry[2] += float(truth == value)

    def prune_cues(self) -> None:
        """
        Drop the cue counts of words seen beside an argument's values once (their
        weights, about 1.1 either way, rest on one mention): learning online, the cues
        would otherwise keep every word ever said beside every argument. In place:
        the arguments' :class:`CueWeights` read the same counts.
        """
        for per_arg in (*self.cues.values(), *self._word_cues.values()):
            per_arg.prune(2.0)

    def vocabulary(self) -> int:
        """
        How many cue counts (a word beside an argument's values, or beside those of the
        arguments whose names have a word) these counts hold.
        """
        return sum(len(per_arg) for per_arg in (*self.cues.values(), *self._word_cues.values()))

    def age(self) -> None:
        """
        Drop the cue words seen once (:meth:`prune_cues`), then halve every count (see
        :meth:`CallCounts.age`), in place.
        """
        self.prune_cues()
        halve(self.sources)
        for per_arg in (*self.cues.values(), *self._word_cues.values()):
            per_arg.halve()

    def cues_of(self, key: Key) -> CueWeights:
        """
        Return the argument's cue weights (kept: they read the counts as they grow).
        """
        got = self._cue_w.get(key)
        if got is None:
            pooled = [self._word_cues.setdefault(w, CueCounts()) for w in arg_words(key[1])]
            got = self._cue_w[key] = CueWeights(self.cues.setdefault(key, CueCounts()), pooled)
        return got

    def said_logit(self, key: Key, side: str, how: str, presence: float) -> float:
        """
        Return the log-odds that a value a text (``side``: the request, earlier requests
        or replies) says this way (verbatim, as an alias, normalized) is the argument's
        value in the call.
        """
        right, given = self.source(key, said_kind(side, how), presence)
        p = min(max(right * given, 0.01), 0.99)
        return math.log(p / (1.0 - p))

    def source(self, key: Key, kind: str, presence: float) -> tuple[float, float]:
        """
        Return a source's precision for an argument and how often the argument is given
        when the source has a value, smoothed towards the priors (for the default, the
        argument's presence rate; for the others, at least that).
        """
        m = self.prior_weight
        if kind.endswith(AGAIN):  # towards the same source's rates at a first call
            prior_right, prior_given = self.source(key, kind.removesuffix(AGAIN), presence)
        else:
            prior_right, prior_given = _PRIOR[source_kind(kind)]
            prior_given = presence if kind == "default" else max(presence, prior_given)
        entry = self.sources.get(key, {}).get(kind)
        if entry is None:
            return prior_right, prior_given
        avail, given, right = entry
        return (right + m * prior_right) / (given + m), (given + m * prior_given) / (avail + m)
