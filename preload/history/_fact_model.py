"""
The fitted fact model: how likely the next tool call is to need a stated fact.

Each fact has the features of :data:`FEATURES` (who stated it, its kind, its age,
whether it was repeated, answered a question or accepted, its length and form), and a
logistic model over them (:data:`WEIGHTS` and :data:`BIAS`, fit on the SGD and STAR
train splits by ``simulations/fit_fact_prior.py``) gives its likelihood.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Collection, Mapping
from dataclasses import dataclass, fields
from operator import attrgetter
from typing import Any

from ._facts import Fact

__all__ = ["FEATURES", "Scorer", "StandingFact", "feature_rows", "likelihoods"]

#: The kinds of facts, in the order of their features.
KINDS = (
    "name",
    "time",
    "date",
    "number",
    "choice",
    "word",
    "phrase",
    "answer",
    "reply",
    "sentence",
)

#: The names of the features the fact model knows of a standing fact: who stated it
#: and its kind (one of them is 1), then its age in exchanges, further mentions,
#: whether the agent echoed the user (or the other way round), whether the user
#: stated it answering a question, its length, its form, and how many standing
#: facts hold it and it holds. :attr:`StandingFact.features` follows this order.
#:
#: .. versionadded:: 0.2
FEATURES = (
    *(f"{role}:{kind}" for role in ("user", "agent") for kind in KINDS),
    "age 0",
    "age <= 2",
    "age <= 5",
    "log(1 + age)",
    "mentions",
    "echoed",
    "answered",
    "log words",
    "one word",
    "capitalized",
    "digit",
    "log(1 + inside)",
    "log holds",
    "superseded",
    "accepted",
    "log(1 + utterance words)",
    "share of the utterance",
    "answered x share",
)
_SLOT = {name: i for i, name in enumerate(FEATURES[: 2 * len(KINDS)])}
_NUMERIC = 2 * len(KINDS)

#: The weights of :data:`FEATURES` and the intercept of the logistic model of how
#: likely a fact is to be needed by the next tool call. Printed by
#: ``python -m simulations.fit_fact_prior`` (the first 3000 sessions of the SGD and
#: STAR train splits, each corpus weighing the same); never fit on dev.
BIAS = -2.377
WEIGHTS = (
    2.032,  # user:name
    2.235,  # user:time
    1.470,  # user:date
    2.959,  # user:number
    -1.129,  # user:choice
    -1.175,  # user:word
    -0.803,  # user:phrase
    -1.965,  # user:answer
    -1.721,  # user:reply
    -2.261,  # user:sentence
    0.967,  # agent:name
    0.666,  # agent:time
    -0.798,  # agent:date
    0.865,  # agent:number
    -0.696,  # agent:choice
    -1.294,  # agent:word
    -1.681,  # agent:phrase
    0.000,  # agent:answer
    0.000,  # agent:reply
    0.000,  # agent:sentence
    0.110,  # age 0
    -0.125,  # age <= 2
    0.171,  # age <= 5
    -1.097,  # log(1 + age)
    0.248,  # mentions
    0.276,  # echoed
    -0.119,  # answered
    -0.661,  # log words
    -0.727,  # one word
    0.686,  # capitalized
    0.009,  # digit
    -0.247,  # log(1 + inside)
    -0.370,  # log holds
    -0.480,  # superseded
    0.389,  # accepted
    0.152,  # log(1 + utterance words)
    0.444,  # share of the utterance
    1.517,  # answered x share
)


@dataclass(frozen=True, slots=True, kw_only=True)
class StandingFact:
    """
    A fact of a conversation's ledger as the fact model sees it.

    Attributes:
        key: The fact's normalized text, its key in the ledger.
        fact: The fact.
        holds: The keys of the standing facts this one holds, its own included.
        features: The values of :data:`FEATURES`, in that order.

    .. versionadded:: 0.2
    """

    key: str
    fact: Fact
    holds: frozenset[str]
    features: tuple[float, ...]


def feature_rows(
    facts: Mapping[str, Fact],
    covers: Mapping[str, Collection[str]],
    last: int,
    *,
    inside: Mapping[str, int] | None = None,
) -> dict[str, list[float]]:
    """
    The :data:`FEATURES` of each standing fact, by key.

    Args:
        facts: The standing facts by key.
        covers: The keys each fact holds (its own included).
        last: The index of the last exchange.
        inside: How many other facts hold each fact, if kept up to date (else counted
            from ``covers``).
    """
    standing = list(facts)
    if inside is None:
        counted: dict[str, int] = {}
        for key in standing:
            for sub in covers[key]:
                if sub != key:
                    counted[sub] = counted.get(sub, 0) + 1
        inside = counted
    rows: dict[str, list[float]] = {}
    for key in standing:
        fact = facts[key]
        age = last - fact.turn
        words = key.count(" ") + 1
        row = [0.0] * len(FEATURES)
        row[_SLOT.get(f"{fact.role}:{fact.kind}", 0)] = 1.0
        row[_NUMERIC:] = [
            float(age == 0),
            float(age <= 2),
            float(age <= 5),
            math.log1p(age),
            float(min(fact.mentions - 1, 3)),
            float(fact.echoed),
            float(fact.answered),
            math.log(words),
            float(words == 1),
            float(fact.text[:1].isupper()),
            float(any(c.isdigit() for c in key)),
            math.log1p(inside.get(key, 0)),
            math.log(len(covers[key])),
            float(fact.superseded_by is not None),
            float(fact.accepted),
            math.log1p(fact.said_in),
            min(1.0, words / max(1, fact.said_in)),
            float(fact.answered) * min(1.0, words / max(1, fact.said_in)),
        ]
        rows[key] = row
    return rows


def likelihoods(rows: Mapping[str, list[float]]) -> dict[str, float]:
    """
    How likely each fact is to be needed next: the logistic model of its feature row.
    """
    worth: dict[str, float] = {}
    for key, row in rows.items():
        z = BIAS + sum(w * x for w, x in zip(WEIGHTS, row, strict=True))
        worth[key] = 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, z))))
    return worth


class Scorer:
    """
    :func:`likelihoods` of :func:`feature_rows`, the same to the last bit, kept from
    one exchange to the next: the products of a fact's features and their weights that
    do not change with its age are kept until what they are made of changes (a field
    of the fact, how many facts it holds or is held by); a history's facts are scored
    after every exchange.
    """

    __slots__ = ("_ages", "_kept")

    def __init__(self) -> None:
        # key -> (the fact's fields, inside, holds, the products of the features after
        # the age): strings and numbers, which the garbage collector stops tracking (a
        # session's history costs its passes nothing more), the products packed
        self._kept: dict[str, tuple[tuple[Any, ...], int, int, array[float]]] = {}
        self._ages: dict[int, tuple[float, ...]] = {}  # age -> its features' products

    def worth(
        self,
        facts: Mapping[str, Fact],
        covers: Mapping[str, Collection[str]],
        inside: Mapping[str, int],
        last: int,
    ) -> dict[str, float]:
        """
        How likely each fact is to be needed next, by key, in the order of ``facts``.
        """
        kept, ages = self._kept, self._ages
        worth: dict[str, float] = {}
        exp = math.exp
        for key, fact in facts.items():
            held, holds = inside.get(key, 0), len(covers[key])
            fields_now = _fields_of(fact)
            entry = kept.get(key)
            if entry is None or entry[2] != holds or entry[1] != held or entry[0] != fields_now:
                entry = kept[key] = (
                    fields_now,
                    held,
                    holds,
                    array("d", _steady(key, fact, held, holds)),
                )
            age = last - fact.turn
            by_age = ages.get(age)
            if by_age is None:
                by_age = ages[age] = _by_age(age)
            # The nonzero products in the order of FEATURES: a zero adds nothing to
            # the sum, so it equals likelihoods()'s sum over the whole row.
            slot = WEIGHTS[_SLOT.get(f"{fact.role}:{fact.kind}", 0)]
            products = [slot, *by_age, *entry[3]] if slot != 0.0 else [*by_age, *entry[3]]
            z = BIAS + sum(products)
            worth[key] = 1.0 / (1.0 + exp(-max(-30.0, min(30.0, z))))
        return worth

    def keep(self, keys: Collection[str]) -> None:
        """
        Forget the products kept for facts other than ``keys`` (forgotten by the
        history), and those of the ages.
        """
        self._kept = {k: v for k, v in self._kept.items() if k in keys}
        self._ages.clear()


#: Every field of a fact, as a tuple: what its kept products are checked against.
_fields_of = attrgetter(*(f.name for f in fields(Fact)))

#: The weights of the age features, and of the features after them (in order).
_AGE_WEIGHTS = WEIGHTS[_NUMERIC : _NUMERIC + 4]
_STEADY_WEIGHTS = WEIGHTS[_NUMERIC + 4 :]


def _nonzero_products(weights: tuple[float, ...], row: tuple[float, ...]) -> tuple[float, ...]:
    """
    Each weight times its feature, in order, the zeros left out (they add nothing to
    :func:`likelihoods`' sum). Computed for every fact after every exchange: one list
    comprehension, not generators.
    """
    return tuple([p for w, x in zip(weights, row, strict=True) if (p := w * x) != 0.0])


def _by_age(age: int) -> tuple[float, ...]:
    """
    The nonzero products of the age features ("age 0" to "log(1 + age)").
    """
    row = (float(age == 0), float(age <= 2), float(age <= 5), math.log1p(age))
    return _nonzero_products(_AGE_WEIGHTS, row)


def _steady(key: str, fact: Fact, held: int, holds: int) -> tuple[float, ...]:
    """
    The nonzero products of the features after the age ("mentions" on), in order.
    """
    words = key.count(" ") + 1
    share = min(1.0, words / max(1, fact.said_in))
    row = (
        float(min(fact.mentions - 1, 3)),
        float(fact.echoed),
        float(fact.answered),
        math.log(words),
        float(words == 1),
        float(fact.text[:1].isupper()),
        float(any(c.isdigit() for c in key)),
        math.log1p(held),
        math.log(holds),
        float(fact.superseded_by is not None),
        float(fact.accepted),
        math.log1p(fact.said_in),
        share,
        float(fact.answered) * share,
    )
    return _nonzero_products(_STEADY_WEIGHTS, row)
