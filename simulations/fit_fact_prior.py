"""
Fit how likely a stated fact is to be needed: the logistic model behind
:meth:`preload.history.CompressedConversation.get_context`'s choice of facts.

    python -m simulations.fit_fact_prior [--data ../shared/data] [--corpora sgd,star]
        [--limit N] [--C 1.0]

Replays ``<data>/<corpus>/sessions-train.jsonl`` through
:class:`preload.history.CompressedConversation`. At every turn whose system made a
backend call, each standing fact (:meth:`~preload.history.CompressedConversation.standing_facts`)
is one example with the features of :data:`preload.history.FEATURES`; it is positive
when it is the shortest fact holding one of the call's parameter values that appeared
in earlier turns (the facts :mod:`simulations.budget_bench` counts: a longer fact
holding a shorter positive one only adds what the shorter one lacks). Each corpus
weighs the same. Prints the weights as the Python constants to paste into
``preload/history/_fact_model.py`` (the package never reads the data at run time).
Only the train splits are read; the benchmark evaluates on dev.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression

from preload import TiktokenCounter
from preload.history import FEATURES, CompressedConversation
from simulations._data import add_data_arguments, corpus_folders
from simulations.budget_bench import call_values, exchange, norm


def examples(
    sessions: list[dict[str, Any]], counter: TiktokenCounter
) -> tuple[list[list[float]], list[int]]:
    """
    The feature rows and labels of the standing facts at every call turn.
    """
    rows: list[list[float]] = []
    labels: list[int] = []
    for session in sessions:
        history = CompressedConversation(10**9, counter=counter)
        seen = " "
        for turn in session["turns"]:
            values = {
                norm(v)
                for call in turn.get("calls") or []
                for v in call_values(call)
                if norm(v).strip() and norm(v) in seen
            }
            if values and len(history):
                standing = history.standing_facts()
                padded = {fact.key: norm(fact.fact.text) for fact in standing}
                holds = {fact.key: fact.holds for fact in standing}
                positive: set[str] = set()
                for value in values:
                    holding = {key for key, text in padded.items() if value in text}
                    positive |= {
                        key
                        for key in holding
                        if not any(o != key and o in holding for o in holds[key])
                    }
                for fact in standing:
                    rows.append(list(fact.features))
                    labels.append(int(fact.key in positive))
            user, agent = exchange(turn)
            history.add_exchange(user, agent)
            seen += norm(user + " " + agent)
    return rows, labels


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    add_data_arguments(parser, corpora="sgd,star")
    parser.add_argument("--limit", type=int, default=3000)
    parser.add_argument("--C", type=float, default=1.0)
    args = parser.parse_args(argv)
    counter = TiktokenCounter()
    xs: list[list[float]] = []
    ys: list[int] = []
    weights: list[float] = []
    for corpus, folder in corpus_folders(args.data, args.corpora):
        path = folder / "sessions-train.jsonl"
        with path.open(encoding="utf-8") as fh:
            sessions = [json.loads(line) for _, line in zip(range(args.limit), fh, strict=False)]
        rows, labels = examples(sessions, counter)
        print(f"{corpus}: {len(sessions)} sessions, {len(rows)} facts, {sum(labels)} needed")
        xs += rows
        ys += labels
        weights += [1.0 / len(rows)] * len(rows)
    x = np.asarray(xs)
    y = np.asarray(ys)
    w = np.asarray(weights) * len(weights) / 2
    model = LogisticRegression(C=args.C, max_iter=2000)
    model.fit(x, y, sample_weight=w)
    print(f"BIAS = {model.intercept_[0]:.3f}")
    print("WEIGHTS = (")
    for name, coef in zip(FEATURES, model.coef_[0], strict=True):
        print(f"    {coef:.3f},  # {name}")
    print(")")


if __name__ == "__main__":
    main()
