"""
The mixer of :class:`NeedsForecaster`: a logistic regression that turns a candidate
need's feature row (:data:`FEATURES`) into P(need used next turn), with its own
weights for needs used this turn, the turn before and earlier in the session.
"""

from __future__ import annotations

from typing import Any, TypeAlias

import numpy as np
from sklearn.linear_model import LogisticRegression

from ._needs_features import FEATURES

__all__ = ["N_DESIGN", "Mixer", "fit_mixer", "mix"]

#: ``(coefficients, intercept)`` of a fitted mixer, on the raw :func:`_design` inputs.
Mixer: TypeAlias = "tuple[tuple[float, ...], float]"

_CURRENT, _PREVIOUS, _EARLIER = (
    FEATURES.index(name) for name in ("persist", "persist_prev", "persist_earlier")
)
#: The features that are probabilities or rates: the mixer also sees their logs.
_LOGGED = [
    i
    for i, name in enumerate(FEATURES)
    if not name.startswith(("persist", "bias_", "dwell", "assoc_lift"))
]
#: Width of :func:`_design`: the features and the logs of :data:`_LOGGED`, in all and
#: in three regimes.
N_DESIGN = (len(FEATURES) + len(_LOGGED)) * 4
#: Share of the negative rows (needs the next turn did not use) that train the mixer;
#: they are weighted back up, so the fit is that of all rows at a fraction of the cost
#: (there are about 50 negatives to a positive; on SGD 0.1 and 0.3 fit equally well).
_NEGATIVE_SHARE = 0.1


def _design(feats: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """
    The mixer's inputs for candidate rows of :data:`FEATURES`: each feature and the
    log of each probability among them (:data:`_LOGGED`), once for every candidate and
    again for each regime it is in (used this turn; used the turn before but not this
    one; used earlier in the session only), so persisting, returning and new needs
    each weigh the evidence their own way.
    """
    base = np.hstack([feats, np.log(feats[:, _LOGGED] + 1e-4)])
    current = feats[:, _CURRENT] > 0
    previous = (feats[:, _PREVIOUS] > 0) & ~current
    earlier = (feats[:, _EARLIER] > 0) & ~current & ~previous
    return np.hstack(
        [base, base * current[:, None], base * previous[:, None], base * earlier[:, None]]
    )


def fit_mixer(rows: np.ndarray[Any, np.dtype[np.float64]], labels: list[int], C: float) -> Mixer:
    """
    Fit the logistic mixer on standardized :func:`_design` inputs (a share of the
    negatives, weighted back) and return its coefficients on the raw inputs.

    Args:
        rows: Feature rows of candidate needs.
        labels: 1 where the next turn used the need, else 0.
        C: Inverse regularisation.

    Returns:
        The mixer.
    """
    y = np.asarray(labels)
    keep = (y == 1) | (np.random.default_rng(0).random(len(y)) < _NEGATIVE_SHARE)
    x = _design(rows[keep])
    y = y[keep]
    weight = np.where(y == 1, 1.0, 1.0 / _NEGATIVE_SHARE)
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale == 0.0] = 1.0
    lr = LogisticRegression(C=C, max_iter=2000)
    lr.fit((x - mean) / scale, y, sample_weight=weight)
    coef = lr.coef_[0] / scale
    intercept = float(lr.intercept_[0] - coef @ mean)
    return tuple(float(c) for c in coef), intercept


def mix(
    feats: np.ndarray[Any, np.dtype[np.float64]], mixer: Mixer | None
) -> np.ndarray[Any, np.dtype[np.float64]]:
    """
    Return P(need used next turn) for each feature row: the mixer's, or without one
    the mean of the expected use under the forecast and whether the previous turn
    used the need.

    Args:
        feats: Feature rows of candidate needs.
        mixer: A fitted mixer, or None.

    Returns:
        One probability per row.
    """
    if mixer is None:
        p: np.ndarray[Any, np.dtype[np.float64]] = 0.5 * feats[:, 0] + 0.5 * feats[:, 2]
        return p
    z = _design(feats) @ np.asarray(mixer[0], dtype=np.float64) + mixer[1]
    out: np.ndarray[Any, np.dtype[np.float64]] = 1.0 / (1.0 + np.exp(-np.clip(z, -50.0, 50.0)))
    return out
