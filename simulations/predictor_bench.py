"""
Benchmark of next-state and next-needs forecasts: ours against the predictors a user
could pick instead (most-frequent, order-1/2/3 Markov dict counts with backoff, ``vlmc``
and ``cpt`` from PyPI), trained on one split and measured on another.

Run ``python -m simulations.predictor_bench`` (both corpora under ../shared/data, or
``--data DIR``, and two generated sequence-only sets), or ``--train F --dev F`` for one
pair of files;
``--json PATH`` writes the results. The peers ``vlmc`` and ``cpt`` are only imported
here (install the ``bench`` extra).

Rows: ``markov1..3`` are fixed: plain counts of their order with backoff, nothing
tuned. ``ours-seq`` is ``FollowUpPredictor`` with its defaults and no text (it chooses
its own order, blending, discount and, when the log drifts, time decay on the train
file); ``ours+text`` the same with the turns' words; ``ours-seq-nodecay`` (not in the
default list) never decays (``half_life=None``). The generated sets (``varorder``: after
most of its 30 states the next depends on the current state alone, after a few on the
last 2 or the last 4 states, so that no fixed order fits; ``drift``: an order-2 source
whose transitions change as sessions go by, dev after train) test that the search finds
the order the source has, and carry no needs (their need columns are blank); the top-3
of the source itself on dev, the ceiling, is printed with each.

Every predictor is fit and measured in its own spawned process, so its peak memory
(``ru_maxrss`` during fit, over the process's size after loading the data) is its own.
Settings of the peers (vlmc) are chosen on a split of the *train* file only.
"""

from __future__ import annotations

import argparse
import gc
import json
import multiprocessing as mp
import os
import random
import resource
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from simulations._data import CORPORA, add_data_arguments, corpus_folders

REPO = Path(__file__).resolve().parents[1]
K = 3
WIDE = 10
#: Warm runs timed of the fit with the search and of one fit (the fastest kept).
TIMING_RUNS = 5

Turns = list[dict[str, Any]]


# -- data ---------------------------------------------------------------------------------


def load_sessions(path: Path) -> list[dict[str, Any]]:
    """Read a session log (JSONL)."""
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def states(session: dict[str, Any]) -> list[str]:
    """The states of a session's turns."""
    return [str(t["state"]) for t in session["turns"] if "state" in t]


def split_train(sessions: list[Any], every: int = 7) -> tuple[list[Any], list[Any]]:
    """Deterministic train/held-out split of the train file (for choosing settings)."""
    fit = [s for i, s in enumerate(sessions) if i % every != 3]
    held = [s for i, s in enumerate(sessions) if i % every == 3]
    return fit, held


def display(path: Path) -> str:
    """The path as seen from the repository, e.g. ../shared/data/sgd/sessions-dev.jsonl."""
    return os.path.relpath(path, REPO)


# -- peers --------------------------------------------------------------------------------


class MostFrequent:
    """The globally most frequent next states."""

    def fit(self, seqs: list[list[str]]) -> None:
        """Count next states."""
        c: Counter[str] = Counter(s for seq in seqs for s in seq[1:])
        total = sum(c.values())
        self.top = [(s, n / total) for s, n in c.most_common(WIDE)]

    def predict(self, history: Sequence[Any], k: int) -> list[tuple[str, float]]:
        """Same answer every time."""
        return self.top[:k]


class DictMarkov:
    """Order-n Markov chain over plain dict counts with backoff to shorter contexts."""

    def __init__(self, order: int) -> None:
        self.order = order

    def fit(self, seqs: list[list[str]]) -> None:
        """Count transitions for every context length 0..order."""
        counts: dict[tuple[str, ...], Counter[str]] = {}
        for seq in seqs:
            padded = ["<s>", *seq]
            for i in range(1, len(padded)):
                for n in range(min(self.order, i) + 1):
                    counts.setdefault(tuple(padded[i - n : i]), Counter())[padded[i]] += 1
        self.tables = {
            ctx: [(s, n / sum(c.values())) for s, n in c.most_common(WIDE)]
            for ctx, c in counts.items()
        }

    def predict(self, history: Sequence[str], k: int) -> list[tuple[str, float]]:
        """The longest seen context's top states, filled from shorter contexts."""
        padded = ["<s>", *history]
        out: list[tuple[str, float]] = []
        seen: set[str] = set()
        scale = 1.0
        for n in range(min(self.order, len(padded)), -1, -1):
            table = self.tables.get(tuple(padded[len(padded) - n :]) if n else ())
            if not table:
                continue
            for s, p in table:
                if s not in seen:
                    out.append((s, p * scale))
                    seen.add(s)
            if len(out) >= k:
                break
            scale *= 1e-3
        return out[:k]


class VLMCPeer:
    """``vlmc`` (Rust, Bayesian context tree); symbols are ints, rows padded with a start."""

    def __init__(self, depth: int, beta: float) -> None:
        self.depth, self.beta = depth, beta

    def fit(self, seqs: list[list[str]]) -> None:
        """Fit a BCT tree (BIC cannot be configured for large alphabets in vlmc 0.3)."""
        import vlmc

        self.ids: dict[str, int] = {"<s>": 0}
        for seq in seqs:
            for s in seq:
                self.ids.setdefault(s, len(self.ids))
        self.unk = len(self.ids)
        self.names = [*self.ids, "<unk>"]
        self.model = vlmc.VLMC(
            alphabet_size=self.unk + 1, max_depth=self.depth, method="bct", beta=self.beta
        )
        pad = [0] * self.depth
        self.model.fit([pad + [self.ids[s] for s in seq] for seq in seqs])

    def predict(self, history: Sequence[str], k: int) -> list[tuple[str, float]]:
        """Top states from the selected context's distribution."""
        import numpy as np

        row = [0] * self.depth + [self.ids.get(s, self.unk) for s in history]
        p = np.asarray(self.model.predict_proba(row))
        top = np.argpartition(-p, k)[:k]
        top = top[np.argsort(-p[top])]
        return [(self.names[i], float(p[i])) for i in top]


class CPTPeer:
    """``cpt`` (Compact Prediction Tree+); a ranking without probabilities."""

    def fit(self, seqs: list[list[str]]) -> None:
        """Build the tree."""
        from cpt.cpt import Cpt

        self.model = Cpt()
        self.model.fit(seqs)

    def predict(self, history: Sequence[str], k: int) -> list[tuple[str, float]]:
        """Rank weights 1/(r+1) stand in for probabilities."""
        out = self.model.predict_k([list(history)], k, multithreading=False)[0]
        return [(s, 1.0 / (r + 1)) for r, s in enumerate(out) if s is not None]


class Ours:
    """graph.FollowUpPredictor; ``text`` feeds it the turn mappings instead of states."""

    def __init__(self, text: bool, **params: Any) -> None:
        self.text, self.params = text, params

    def fit_sessions(self, sessions: list[dict[str, Any]]) -> None:
        """Fit on sessions (turn mappings when text is on)."""
        from graph import FollowUpPredictor

        self.model = FollowUpPredictor(text=self.text, **self.params)
        self.model.fit(sessions if self.text else [states(s) for s in sessions])

    def chosen(self) -> dict[str, Any]:
        """The order, blending, discount and decay the fit used."""
        m = self.model
        return {
            "order": m.order_,
            "method": m.method_,
            "discount": m.discount_,
            "half_life": m.half_life_,
        }

    def predict(self, history: Sequence[Any], k: int) -> list[tuple[str, float]]:
        """Forecast from the turns (or states) so far."""
        return self.model.predict_proba(history, k=k)


# -- measuring ----------------------------------------------------------------------------


def rss_mb() -> float:
    """Current resident set size in MB."""
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def reset_peak() -> None:
    """Reset the kernel's peak-RSS mark (Linux ``clear_refs`` 5), if allowed."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        pass


def maxrss_mb() -> float:
    """Peak resident set size of this process in MB (VmHWM since the last reset)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def make(name: str, settings: dict[str, Any]) -> Any:
    """Build a predictor by name."""
    if name == "most-frequent":
        return MostFrequent()
    if name.startswith("markov"):
        return DictMarkov(int(name[-1]))
    if name == "vlmc":
        return VLMCPeer(settings.get("depth", 3), settings.get("beta", 0.5))
    if name == "cpt":
        return CPTPeer()
    if name in ("ours-seq", "ours+text"):
        return Ours(name == "ours+text", **settings)
    if name == "ours-seq-nodecay":
        return Ours(False, half_life=None, **settings)
    raise ValueError(name)


def run_one(job: dict[str, Any]) -> dict[str, Any]:
    """Fit one predictor and measure it (runs in a fresh process)."""
    from graph import NeedsForecaster, NeedsModel

    train = load_sessions(Path(job["train"]))
    dev = load_sessions(Path(job["dev"]))
    name = job["name"]
    model = make(name, job.get("settings", {}))
    text = name == "ours+text"
    gc.collect()
    base = rss_mb()
    reset_peak()
    t0 = time.perf_counter()
    if isinstance(model, Ours):
        model.fit_sessions(train)
    else:
        model.fit([states(s) for s in train])
    fit_s = time.perf_counter() - t0
    gc.collect()
    peak = max(maxrss_mb() - base, 0.0)
    retained = rss_mb() - base

    extra: dict[str, Any] = {}
    if isinstance(model, Ours):
        extra = single_fit(model, train)
    needs = NeedsModel().fit(train) if job.get("needs", True) else None
    forecaster = None
    needs_fit_s = 0.0
    if name in ("ours-seq", "ours+text", "ours-seq-nodecay") and needs is not None:
        from graph import FollowUpPredictor

        t0 = time.perf_counter()
        forecaster = NeedsForecaster(predictor=FollowUpPredictor(text=text, **model.params)).fit(
            train if text else [_strip_text(s) for s in train]
        )
        needs_fit_s = time.perf_counter() - t0

    cases: list[tuple[Any, Any, str, bool, set[str]]] = []
    for s in dev:
        turns = s["turns"] if text else _strip_text(s)["turns"]
        st = states(s)
        for i in range(1, len(st)):
            hist = turns[:i] if text else st[:i]
            needs_next = set(turns[i].get("needs", ()))
            cases.append((hist, turns[:i], st[i], st[i] != st[i - 1], needs_next))
    h1 = h3 = c1 = c3 = nchg = 0
    need_hit = need_true = need_pred = 0
    for hist, turns_so_far, target, changed, target_needs in cases:
        dist = model.predict(hist, WIDE)
        names = [s for s, _ in dist]
        hit1, hit3 = names[:1] == [target], target in names[:K]
        h1 += hit1
        h3 += hit3
        if changed:
            nchg += 1
            c1 += hit1
            c3 += hit3
        if needs is None:
            continue
        if forecaster is not None:
            top = [n for n, _ in forecaster.predict_proba(turns_so_far, k=5)]
        else:
            total = sum(p for _, p in dist) or 1.0
            top = [n for n, _ in needs.predict_proba([(s, p / total) for s, p in dist], k=5)]
        need_hit += len(target_needs & set(top))
        need_true += len(target_needs)
        need_pred += len(top)

    # Speed: k=3 over every dev history, timed alone.
    histories = [c[0] for c in cases]
    t0 = time.perf_counter()
    reps = 0
    while True:
        for hist in histories:
            model.predict(hist, K)
        reps += 1
        elapsed = time.perf_counter() - t0
        if elapsed > 1.0 or reps >= 3:
            break
    n = len(cases)
    return {
        "name": name,
        "settings": job.get("settings", {}),
        "top1": h1 / n,
        "top3": h3 / n,
        "change_top1": c1 / max(nchg, 1),
        "change_top3": c3 / max(nchg, 1),
        "need_recall5": need_hit / need_true if need_true else None,
        "need_precision5": need_hit / need_pred if need_pred else None,
        "fit_s": fit_s,
        "needs_fit_s": needs_fit_s,
        "pred_per_s": reps * len(histories) / elapsed,
        "peak_mb": peak,
        "retained_mb": retained,
        "turns": n,
        "change_turns": nchg,
        **extra,
    }


def single_fit(model: Ours, train: list[dict[str, Any]]) -> dict[str, Any]:
    """
    What the search chose, and the search's cost: the time of the fit with the search
    against one fit with everything given at the chosen order and decay (Kneser-Ney,
    discount 0.75: a fit without any search), on the same data in the same process.
    Both are timed warm, alternately, and the fastest of :data:`TIMING_RUNS` of each is
    kept (the machine is shared; the first fit of the process, the table's ``fit_s``,
    also pays for warming up), in CPU time (``time.process_time``: what other
    processes on a shared machine do not inflate; both fits run on one thread) and
    wall-clock time. With text, one run of each (a text fit takes most of a minute).
    """
    from graph import FollowUpPredictor

    chosen = model.chosen()
    data = train if model.text else [states(s) for s in train]
    runs = 1 if model.text else TIMING_RUNS
    best = {"search": [float("inf")] * 2, "single": [float("inf")] * 2}

    def timed(kind: str, fit: Callable[[], Any]) -> None:
        gc.collect()
        cpu, wall = time.process_time(), time.perf_counter()
        fit()
        took = (time.process_time() - cpu, time.perf_counter() - wall)
        best[kind] = [min(a, b) for a, b in zip(best[kind], took, strict=True)]

    for _ in range(runs):
        timed("search", lambda: FollowUpPredictor(text=model.text, **model.params).fit(data))
        timed(
            "single",
            lambda: FollowUpPredictor(
                order=chosen["order"],
                method="kn",
                discount=0.75,
                half_life=chosen["half_life"],
                text=model.text,
            ).fit(data),
        )
    return {
        "chosen": chosen,
        "search_fit_cpu_s": best["search"][0],
        "single_fit_cpu_s": best["single"][0],
        "search_fit_s": best["search"][1],
        "single_fit_s": best["single"][1],
    }


def _strip_text(session: dict[str, Any]) -> dict[str, Any]:
    """The session without request and reply text (states and needs only)."""
    return {
        **session,
        "turns": [
            {k: v for k, v in t.items() if k not in ("text", "system")} for t in session["turns"]
        ],
    }


# -- choosing settings on the train file only ----------------------------------------------


def choose(train: Path) -> dict[str, dict[str, Any]]:
    """Pick vlmc's settings on a held-out part of the train file (ours tunes itself)."""
    sessions = load_sessions(train)
    fit, held = split_train(sessions)
    fit_states = [states(s) for s in fit]
    cases = [(st[:i], st[i]) for st in (states(s) for s in held) for i in range(1, len(st))]

    def score(model: Any) -> float:
        hits = sum(t in [s for s, _ in model.predict(h, K)] for h, t in cases)
        return hits / max(len(cases), 1)

    best_v: tuple[float, dict[str, Any]] = (-1.0, {})
    for depth in (2, 3, 4):
        for beta in (0.5, 0.9):
            peer = VLMCPeer(depth, beta)
            peer.fit(fit_states)
            best_v = max(best_v, (score(peer), {"depth": depth, "beta": beta}), key=lambda x: x[0])
    print(f"  chosen on train split: vlmc {best_v[1]} (top3 {best_v[0]:.3f})")
    return {"vlmc": best_v[1]}


# -- the generated sequence-only sets ------------------------------------------------------


#: The variable-order source: states, how many look back further than one state, and
#: the weights of each state's usual successors.
VAR_STATES = 30
VAR_LONG = (4, 4)  # states that look back 2, and states that look back 4
VAR_WEIGHTS = (0.3, 0.22, 0.16, 0.13, 0.11, 0.08)
#: How often a state that looks back goes to the state its longer context determines.
VAR_DETERMINED = 0.75


def _variable_source() -> tuple[list[int], dict[int, list[int]]]:
    """
    How far each state of the variable-order source looks back, and its successors.
    """
    world = random.Random(5)  # the source: the same for train and dev
    shuffled = list(range(VAR_STATES))
    world.shuffle(shuffled)
    depth = [1] * VAR_STATES
    n_two, n_four = VAR_LONG
    for s in shuffled[:n_two]:
        depth[s] = 2
    for s in shuffled[n_two : n_two + n_four]:
        depth[s] = 4
    succ = {s: world.sample(range(VAR_STATES), len(VAR_WEIGHTS)) for s in range(VAR_STATES)}
    return depth, succ


def _variable_dist(
    seq: list[int], depth: list[int], succ: dict[int, list[int]]
) -> dict[int, float]:
    """
    The source's distribution of the state after ``seq``.
    """
    last = seq[-1]
    p: dict[int, float] = {}
    share = 1.0
    if depth[last] > 1 and len(seq) >= depth[last]:
        fixed = random.Random(repr(tuple(seq[-depth[last] :]))).randrange(VAR_STATES)
        p[fixed] = VAR_DETERMINED
        share = 1.0 - VAR_DETERMINED
    for s, w in zip(succ[last], VAR_WEIGHTS, strict=True):
        p[s] = p.get(s, 0.0) + share * w
    return p


def variable_order(n_sessions: int, seed: int) -> list[list[str]]:
    """
    Sessions of 7 to 17 states from a source of 30 states whose memory depends on the
    state: after most states (22) the next one follows the current state alone (one
    of its 6 usual successors, weighted 0.30 down to 0.08); after 4 states it is, 75 %
    of the time, a fixed function of the last 2 states, and after 4 others of the last
    4 (else one of the usual successors). No fixed order fits: order 1 misses the long
    contexts, orders 3 and 4 split the short ones into contexts too rare to count well.
    """
    depth, succ = _variable_source()
    rng = random.Random(seed)  # the sessions
    out = []
    for _ in range(n_sessions):
        seq = [rng.randrange(VAR_STATES)]
        for _ in range(rng.randint(6, 16)):
            p = _variable_dist(seq, depth, succ)
            seq.append(rng.choices(list(p), weights=list(p.values()))[0])
        out.append([f"v{s}" for s in seq])
    return out


def variable_order_oracle(dev: list[list[str]]) -> float:
    """
    The top-3 hit rate of the variable-order source itself on ``dev`` (its three
    likeliest next states, ties by name): the ceiling of any forecast.
    """
    depth, succ = _variable_source()
    return _oracle_rate(dev, lambda _, seq: _variable_dist([int(s[1:]) for s in seq], depth, succ))


def _drift_tables(n_sessions: int) -> list[dict[tuple[int, int], int]]:
    """
    The drifting source's table at each session (the changes :func:`drifting` makes).
    """
    n = 17
    world = random.Random(7)
    table = {(a, b): world.randrange(n) for a in range(n) for b in range(n)}
    contexts = sorted(table)
    out = []
    for i in range(n_sessions):
        if i and i % 500 == 0:
            table = dict(table)
            for ctx in world.sample(contexts, len(contexts) // 10):
                table[ctx] = world.randrange(n)
        out.append(table)
    return out


def drifting_oracle(dev: list[list[str]], start: int) -> float:
    """
    The top-3 hit rate on ``dev`` (sessions ``start ..``) of the drifting source with
    the table of each session's time: the ceiling, which no forecast fit on the
    sessions before ``start`` can know.
    """
    tables = _drift_tables(start + len(dev))

    def dist(i: int, seq: list[str]) -> dict[int, float]:
        p = dict.fromkeys(range(17), 0.25 / 17)
        if len(seq) >= 2:
            p[tables[start + i][(int(seq[-2][1:]), int(seq[-1][1:]))]] += 0.75
        return p

    return _oracle_rate(dev, dist)


def _oracle_rate(dev: list[list[str]], dist: Callable[[int, list[str]], dict[int, float]]) -> float:
    """
    The top-3 hit rate of the distributions ``dist(session index, history)``.
    """
    hits = total = 0
    for i, seq in enumerate(dev):
        for j in range(1, len(seq)):
            p = dist(i, seq[:j])
            top = sorted(p, key=lambda s: (-p[s], s))[:K]
            hits += int(seq[j][1:]) in top
            total += 1
    return hits / max(total, 1)


def drifting(n_sessions: int, seed: int, start: int) -> list[list[str]]:
    """
    Sessions of 17 states (as many as a web clickstream's page categories) from an
    order-2 source, 75 % a fixed function of the last two states, else uniform; every
    500 sessions a tenth of the two-state contexts get a new next state. Sessions
    ``start .. start + n_sessions`` of that one history (dev follows train).
    """
    n = 17
    world = random.Random(7)
    table = {(a, b): world.randrange(n) for a in range(n) for b in range(n)}
    contexts = sorted(table)
    rng = random.Random(seed)
    out = []
    for i in range(start + n_sessions):
        if i and i % 500 == 0:
            for ctx in world.sample(contexts, len(contexts) // 10):
                table[ctx] = world.randrange(n)
        seq = [rng.randrange(n), rng.randrange(n)]
        for _ in range(rng.randint(3, 12)):
            ctx = (seq[-2], seq[-1])
            seq.append(table[ctx] if rng.random() < 0.75 else rng.randrange(n))
        if i >= start:
            out.append([f"p{s}" for s in seq])
    return out


def write_generated(folder: Path) -> list[tuple[str, Path, Path, str]]:
    """
    Write the generated sets as session logs (states only) and say what they are,
    with the top-3 hit rate of the source itself on dev (the ceiling).
    """
    var_dev = variable_order(1000, 1002)
    drift_dev = drifting(1000, 11, 6000)
    sets = {
        "varorder": (
            variable_order(4000, 1001),
            var_dev,
            (
                "variable-order source (30 states: 22 look back 1, 4 look back 2, 4 look "
                "back 4), 4000 train / 1000 dev sessions; the source itself: top3 "
                f"{variable_order_oracle(var_dev) * 100:.1f}"
            ),
        ),
        "drift": (
            drifting(6000, 11, 0),
            drift_dev,
            (
                "drifting order-2 source (17 states), sessions 0-5999 train / 6000-6999 "
                "dev; the source itself, knowing its changes: top3 "
                f"{drifting_oracle(drift_dev, 6000) * 100:.1f}"
            ),
        ),
    }
    out = []
    for name, (train, dev, what) in sets.items():
        paths = []
        for split, seqs in (("train", train), ("dev", dev)):
            path = folder / f"{name}-{split}.jsonl"
            with open(path, "w", encoding="utf-8") as fh:
                for i, seq in enumerate(seqs):
                    turns = [{"t": 20.0 * j, "state": s} for j, s in enumerate(seq)]
                    fh.write(json.dumps({"session_id": f"{split}{i}", "turns": turns}) + "\n")
            paths.append(path)
        out.append((name, paths[0], paths[1], what))
    return out


# -- the 1M-sequence fit ---------------------------------------------------------------------


def generated(job: dict[str, Any]) -> dict[str, Any]:
    """
    Fit ours (defaults: with the search) on N generated sequences in one call; report
    time, peak memory, edges and what the search chose.
    """
    from graph import FollowUpPredictor

    n, n_states, cap = job["n"], job["states"], job["max_edges"]
    rng = random.Random(0)
    succ = {s: rng.sample(range(n_states), 5) for s in range(n_states)}
    names = [f"g{i}" for i in range(n_states)]

    def chunk(size: int) -> list[list[str]]:
        out = []
        for _ in range(size):
            cur = rng.randrange(n_states)
            seq = [names[cur]]
            for _ in range(rng.randint(1, 14)):
                cur = succ[cur][min(int(rng.expovariate(1.0)), 4)]
                seq.append(names[cur])
            out.append(seq)
        return out

    t0 = time.perf_counter()
    data = chunk(n)
    gen_s = time.perf_counter() - t0
    model = FollowUpPredictor(max_edges=cap, text=False)
    gc.collect()
    base = rss_mb()
    reset_peak()
    t0 = time.perf_counter()
    model.fit(data)
    fit_s = time.perf_counter() - t0
    return {
        "sequences": n,
        "transitions": model.counts_.n_transitions,
        "fit_s": fit_s,
        "generate_s": gen_s,
        "edges": model.graph_.n_edges,
        "max_edges": cap,
        "peak_mb": max(maxrss_mb() - base, 0.0),
        "chosen": {"order": model.order_, "method": model.method_, "discount": model.discount_},
    }


# -- main ------------------------------------------------------------------------------------

NAMES = (
    "most-frequent", "markov1", "markov2", "markov3", "vlmc", "cpt", "ours-seq", "ours+text",
)  # fmt: skip


def in_process(
    fn: Callable[[dict[str, Any]], dict[str, Any]], job: dict[str, Any]
) -> dict[str, Any]:
    """Run ``fn(job)`` in a fresh spawned process."""
    ctx = mp.get_context("spawn")
    with ctx.Pool(1) as pool:
        return pool.apply(fn, (job,))


def print_table(corpus: str, rows: list[dict[str, Any]]) -> None:
    """Print one data set's results."""
    head = (
        f"{'predictor':<18}{'top1':>7}{'top3':>7}{'chg1':>7}{'chg3':>7}{'nR@5':>7}"
        f"{'nP@5':>7}{'fit_s':>8}{'pred/s':>10}{'peakMB':>8}"
    )
    print(f"\n[{corpus}]")
    print(head)
    for r in rows:
        recall = "" if r["need_recall5"] is None else f"{r['need_recall5']:.3f}"
        precision = "" if r["need_precision5"] is None else f"{r['need_precision5']:.3f}"
        print(
            f"{r['name']:<18}{r['top1'] * 100:>7.1f}{r['top3'] * 100:>7.1f}"
            f"{r['change_top1'] * 100:>7.1f}{r['change_top3'] * 100:>7.1f}"
            f"{recall:>7}{precision:>7}{r['fit_s']:>8.2f}"
            f"{r['pred_per_s']:>10.0f}{r['peak_mb']:>8.1f}"
        )
    fixed = [r["top3"] for r in rows if r["name"] in ("markov1", "markov2", "markov3")]
    for r in rows:
        if "chosen" not in r:
            continue
        c = r["chosen"]
        disc = f" D={c['discount']:g}" if c["method"] in ("kn", "ad") else ""
        if c.get("half_life"):
            disc += f", half-life {c['half_life']:g} turns"
        margin = (
            f"; top3 {(r['top3'] - max(fixed)) * 100:+.1f} vs best fixed order" if fixed else ""
        )
        cpu = r["search_fit_cpu_s"] / max(r["single_fit_cpu_s"], 1e-9)
        wall = r["search_fit_s"] / max(r["single_fit_s"], 1e-9)
        print(
            f"  {r['name']} chose order {c['order']} {c['method']}{disc}; fit "
            f"{r['search_fit_cpu_s']:.3f}s CPU with the search vs "
            f"{r['single_fit_cpu_s']:.3f}s for one fit at that order: x{cpu:.2f} "
            f"(wall clock x{wall:.2f}; warm){margin}"
        )


def run_set(corpus: str, train: Path, dev: Path, names: list[str], needs: bool) -> dict[str, Any]:
    """Fit and measure every predictor on one train/dev pair and print the table."""
    settings = choose(train) if "vlmc" in names else {}
    rows = []
    for name in names:
        job = {
            "name": name,
            "train": str(train),
            "dev": str(dev),
            "settings": settings.get(name, {}),
            "needs": needs,
        }
        rows.append(in_process(run_one, job))
        r = rows[-1]
        print(f"  {name}: top3 {r['top3'] * 100:.1f} fit {r['fit_s']:.1f}s", flush=True)
    print_table(corpus, rows)
    return {"train": display(train), "dev": display(dev), "settings": settings, "predictors": rows}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--train", type=Path, help="train session log (default: both corpora)")
    ap.add_argument("--dev", type=Path, help="evaluation session log")
    add_data_arguments(ap)
    ap.add_argument("--json", type=Path, help="write the results here")
    ap.add_argument("--predictors", default=",".join(NAMES), help="comma-separated subset")
    ap.add_argument(
        "--generated",
        type=int,
        default=1_000_000,
        help="generated sequences for the fit-time/memory run (0 to skip)",
    )
    ap.add_argument("--max-edges", type=int, default=200_000, help="edge cap in that run")
    ap.add_argument("--no-sets", action="store_true", help="skip the generated sequence-only sets")
    ap.add_argument(
        "--sets-only", action="store_true", help="only the generated sequence-only sets"
    )
    args = ap.parse_args(argv)
    if (args.train is None) != (args.dev is None):
        ap.error("--train and --dev go together")
    pairs = (
        [(args.train.stem, args.train, args.dev)]
        if args.train
        else [
            (c, folder / "sessions-train.jsonl", folder / "sessions-dev.jsonl")
            for c, folder in corpus_folders(args.data, ",".join(CORPORA))
        ]
    )
    names = [n for n in args.predictors.split(",") if n]
    results: dict[str, Any] = {"corpora": {}}
    for corpus, train, dev in [] if args.sets_only else pairs:
        print(f"{corpus}: train {display(train)} -> dev {display(dev)}")
        results["corpora"][corpus] = run_set(corpus, train, dev, names, needs=True)
    if not args.train and not args.no_sets:
        with tempfile.TemporaryDirectory() as tmp:
            for corpus, train, dev, what in write_generated(Path(tmp)):
                print(f"\n{corpus}: generated here, {what} (written to a temporary folder)")
                results["corpora"][corpus] = {
                    **run_set(corpus, train, dev, names, needs=False),
                    "train": what,
                    "dev": what,
                }
    if args.generated:
        job = {"n": args.generated, "states": 300, "max_edges": args.max_edges}
        gen = in_process(generated, job)
        c = gen["chosen"]
        print(
            f"\n[generated] {gen['sequences']} sequences, {gen['transitions']} transitions, "
            f"one fit with the search: {gen['fit_s']:.1f}s (generation {gen['generate_s']:.1f}s "
            f"apart), peak {gen['peak_mb']:.0f} MB, {gen['edges']} edges (cap "
            f"{gen['max_edges']}); chose order {c['order']} {c['method']}"
        )
        results["generated"] = gen
    if args.json:
        args.json.write_text(json.dumps(results, indent=2), encoding="utf-8")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
