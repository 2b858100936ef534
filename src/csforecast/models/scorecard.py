"""A health scorecard people can own (issue 17): Outcomes and Experience sub-scores, the experience/outcomes
2x2, five bands as well as three, and any weight set scored on the same rows as the learned weights.

Pure functions on the health model's 0-100 component scores (`HealthScoreModel.component_scores`);
definitions in docs/health.md ("The scorecard people can own").

* Outcomes = the mean of the available Outcomes components (deployment, adoption, engagement, value/ROI);
  Experience = the mean of the available Experience components (NPS, support, sentiment); 0-100, null when
  the pillar has no component.
* The 2x2 splits each pillar at ``cut`` (default 50): ``healthy`` (both >= cut), ``at_risk`` (both below),
  ``false_positive`` (good experience, poor outcomes: a happy customer who is not getting value, the cell CS
  books warn about), ``quiet_value`` (good outcomes, poor experience).
* A weight set {component: weight >= 0} scores an account as the weighted mean of its component scores
  (weights renormalised over the components the model has; a component it lacks is skipped and named).
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from csforecast.errors import InputError
from csforecast.jsonsafe import finite_float
from csforecast.metrics.calibration import rank_auc, top_decile_lift
from csforecast.models.health import COMPONENTS

__all__ = ["PILLARS", "FIVE_BANDS", "pillar_scores", "quadrant", "five_band_of", "weight_set_score",
           "weight_set_report", "check_weight_set", "learned_weights", "WeightSetError"]

PILLARS = ("Outcomes", "Experience")
FIVE_BANDS = ("critical", "poor", "fair", "good", "excellent")
QUADRANTS = ("healthy", "false_positive", "quiet_value", "at_risk")


def pillar_scores(components: pd.DataFrame) -> pd.DataFrame:
    """Per row: ``outcomes`` and ``experience``, the mean of the pillar's component scores present (NaN when the
    pillar has none)."""
    # pandas' row mean (sum of the present values / their count) on one float array: the same arithmetic
    # without a frame per pillar, which on a 1-row on-demand request cost more than the health model itself
    values = components.to_numpy(dtype=float)
    out = {}
    for pillar in PILLARS:
        idx = [j for j, c in enumerate(components.columns) if c in COMPONENTS and COMPONENTS[c][1] == pillar]
        if not idx:
            out[pillar.lower()] = np.full(len(components), np.nan)
            continue
        sub = values[:, idx]
        present = ~np.isnan(sub)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[pillar.lower()] = np.where(present, sub, 0.0).sum(axis=1) / present.sum(axis=1)
    return pd.DataFrame(out, index=components.index)


def quadrant(outcomes, experience, cut: float = 50.0) -> np.ndarray:
    """healthy | false_positive (experience >= cut > outcomes) | quiet_value | at_risk; ``unknown`` when a
    pillar is missing."""
    o, e = np.asarray(outcomes, dtype=float), np.asarray(experience, dtype=float)
    good_o, good_e = o >= cut, e >= cut
    q = np.where(good_o & good_e, "healthy", np.where(good_e, "false_positive",
                                                      np.where(good_o, "quiet_value", "at_risk")))
    return np.where(np.isnan(o) | np.isnan(e), "unknown", q).astype(object)


def five_band_of(score, cuts=(20.0, 40.0, 60.0, 80.0)) -> np.ndarray:
    """critical (< cuts[0]) | poor | fair | good | excellent (>= cuts[3]); ValueError unless 4 rising cuts."""
    c = [float(x) for x in cuts]
    if len(c) != 4 or any(b <= a for a, b in zip(c, c[1:])):
        raise ValueError(f"five bands need four rising cut-offs, not {list(cuts)!r}")
    s = np.asarray(score, dtype=float)
    return np.array(FIVE_BANDS, dtype=object)[np.searchsorted(c, s, side="right")]


def weight_set_score(components: pd.DataFrame, weights: Mapping[str, float]) -> tuple[np.ndarray, list[str]]:
    """(score, components the weights name that the model lacks). ValueError for a negative weight or no
    positive weight on a component the model has."""
    bad = {k: v for k, v in weights.items() if float(v) < 0}
    if bad:
        raise ValueError(f"scorecard weights must be >= 0: {bad}")
    used = {k: float(v) for k, v in weights.items() if k in components.columns and float(v) > 0}
    missing = sorted(k for k in weights if k not in components.columns)
    if not used:
        raise ValueError(f"the scorecard weights {dict(weights)} give no positive weight to a component the model "
                         f"scores ({', '.join(components.columns)})")
    w = pd.Series(used) / sum(used.values())
    return components[list(w.index)].to_numpy(dtype=float) @ w.to_numpy(), missing


class WeightSetError(InputError, ValueError):
    """A weight set that cannot be scored; ``field`` names the component at fault (None: the set as a whole)."""

    def __init__(self, message: str, field: str | None = None, value=None):
        super().__init__(message)
        self.field, self.value = field, value


def check_weight_set(weights: Mapping) -> dict[str, float]:
    """A weight set as {component: float}, or WeightSetError (a ValueError) naming the first bad field: a
    component not in `COMPONENTS`, a weight that is not a finite number >= 0, or no positive weight at all."""
    out = {}
    if not isinstance(weights, Mapping) or not weights:
        raise WeightSetError("give at least one component a weight > 0", None, weights)
    for k, v in weights.items():
        if k not in COMPONENTS:
            raise WeightSetError(f"unknown component {k!r} (known: {', '.join(COMPONENTS)})", str(k), v)
        try:
            w = float(v) if not isinstance(v, bool) else float("nan")
        except (TypeError, ValueError):
            w = float("nan")
        if not np.isfinite(w) or w < 0:
            raise WeightSetError(f"the weight of {k} must be a finite number >= 0, not {v!r}", k, v)
        out[k] = w
    if not any(w > 0 for w in out.values()):
        raise WeightSetError("give at least one component a weight > 0", None, dict(weights))
    return out


def learned_weights(estimator) -> dict[str, float]:
    """The health model's component weights as a weight set: each component's health weight (minus its churn
    log-odds coefficient) as a share of their sum; a dropped component weighs 0. The model's score is the
    logistic map of this weighted sum, so it ranks accounts as this weight set does (a component kept with the
    implausible sign, which the model scores against health, is shown as 0)."""
    w = -np.asarray(estimator.weights_, dtype=float)
    total = float(w[w > 0].sum())
    return {c: (float(max(x, 0.0)) / total if total > 0 else 0.0) for c, x in zip(estimator.components_, w)}


def weight_set_report(y, scores: Mapping[str, np.ndarray], cuts3=(40.0, 70.0), cuts5=(20.0, 40.0, 60.0, 80.0)
                      ) -> dict:
    """Per weight set, on the same rows: AUC for churn (of 100 - score), top-decile lift (churn rate among the
    lowest-scoring 10 % / overall), churn by three bands (red < cuts3[0] <= yellow < cuts3[1] <= green) and by
    five bands, each with its count."""
    y = np.asarray(y, dtype=int)
    out = {}
    for name, s in scores.items():
        s = np.asarray(s, dtype=float)
        risk = 100.0 - s
        b3 = np.where(s < cuts3[0], "red", np.where(s < cuts3[1], "yellow", "green"))
        b5 = five_band_of(s, cuts5)

        def by(bands, order):
            return {b: {"n": int((bands == b).sum()),
                        "churn_rate": float(y[bands == b].mean()) if (bands == b).any() else None} for b in order}

        out[name] = {"auc": finite_float(rank_auc(y, risk), 6) if len(np.unique(y)) == 2 else None,
                     "top_decile_lift": finite_float(top_decile_lift(y, risk / 100.0), 6) if y.sum() else None,
                     "bands3": by(b3, ("red", "yellow", "green")), "bands5": by(b5, FIVE_BANDS)}
    return out
