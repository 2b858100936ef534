"""The model families: one entry per family, the one list every layer reads (training, batch scoring, the
pyfunc wrapper, experiments; the API and the dashboard once rewired).

An entry says what the family is at serve time: its name, its registered model name, the inputs its
champion needs, its scorer and the columns that scorer writes, what its MLflow pyfunc model answers, the
validation metrics its training reports (and whether higher is better) and the metric the champion/challenger
guard compares. Adding a family: a file under ``models/`` (the estimator), ``pipelines/`` (its trainer),
``scoring/`` (its scorer), and one entry here.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import pandas as pd

from csforecast.scoring import blend, churn, health, survival

__all__ = ["Family", "FAMILIES", "names", "get", "by_pyfunc_output", "fallback_of"]


def feature_names(estimator) -> list[str]:
    """The snapshot columns a fitted estimator needs (its ``feature_names_in_``)."""
    return [str(c) for c in estimator.feature_names_in_]


def fallback_of(estimator) -> str | None:
    """What a served model is when it is a small-book fallback (its ``fallback_``, in words), else None."""
    return getattr(estimator, "fallback_", None) or None


def flagged(scorer: Callable[[object, pd.DataFrame], pd.DataFrame], name: str
            ) -> Callable[[object, pd.DataFrame], pd.DataFrame]:
    """``scorer`` with a ``<name>_fallback`` column: :func:`fallback_of` the estimator on every row (a text
    column, missing for a full model), so score sets and account responses say when a fallback scored."""
    def score(estimator, snapshot: pd.DataFrame) -> pd.DataFrame:
        out = scorer(estimator, snapshot)
        # one element repeated: pandas validates a list of n strings element by element
        out[f"{name}_fallback"] = pd.array([fallback_of(estimator)], dtype="string").repeat(len(out))
        return out
    score.__doc__ = scorer.__doc__
    return score


@dataclass(frozen=True)
class Family:
    """One model family.

    name : the family's name (``churn``); model_name : its registered model (``csforecast-churn``);
    inputs : estimator -> the snapshot columns its champion needs; scorer : (estimator, snapshot rows) ->
    a frame of ``outputs`` with the rows' index; pyfunc : (estimator, X) -> what the MLflow pyfunc model
    answers (``pyfunc_output`` names it in models registered before this registry existed); metrics :
    validation metric -> True if higher is better, False if lower, None if neither; guard_metric (one of
    ``metrics``), guard_label : what the champion/challenger guard compares and how its message names it;
    history : (estimator, weekly snapshot rows) -> the family's weekly history, or None; reads : the score
    columns of earlier families its scorer reads (batch scoring joins them to the rows); serve : (the scored
    frame) -> the scored frame, applied after every family scored (the blend makes its probability the served
    one where a CSM call exists), or None.
    """

    name: str
    model_name: str
    scorer: Callable[[object, pd.DataFrame], pd.DataFrame]
    outputs: tuple[str, ...]
    pyfunc: Callable[[object, pd.DataFrame], pd.DataFrame]
    pyfunc_output: str
    metrics: Mapping[str, bool | None]
    guard_metric: str
    guard_label: str
    inputs: Callable[[object], list[str]] = feature_names
    history: Callable[[object, pd.DataFrame], pd.DataFrame] | None = None
    description: str = field(default="")
    reads: tuple[str, ...] = ()
    serve: Callable[[pd.DataFrame], pd.DataFrame] | None = None

    @property
    def guard_higher_is_better(self) -> bool:
        return bool(self.metrics[self.guard_metric])


FAMILIES: dict[str, Family] = {f.name: f for f in (
    Family(name="churn", model_name="csforecast-churn", scorer=flagged(churn.score_churn, "churn"),
           outputs=(*churn.OUTPUTS, "churn_fallback"),
           pyfunc=churn.pyfunc_frame, pyfunc_output="churn_probability",
           metrics={"auc": True, "pr_auc": True, "log_loss": False, "brier": False, "ece": False,
                    "calibration_slope": None, "top_decile_lift": True},
           guard_metric="log_loss", guard_label="log loss",
           description="calibrated probability of churn at the next renewal, with its drivers"),
    Family(name="survival", model_name="csforecast-survival", scorer=survival.score_survival,
           outputs=survival.OUTPUTS, pyfunc=survival.pyfunc_frame, pyfunc_output="survival", serve=survival.serve,
           metrics={"c_index": True, "integrated_brier": False, "calibration_error_90": False,
                    "calibration_error_180": False, "calibration_error_365": False},
           guard_metric="c_index", guard_label="C-index",
           description="time to churn: survival probabilities, expected lifetime, renewal survival"),
    Family(name="health", model_name="csforecast-health", scorer=flagged(health.score_health, "health"),
           outputs=(*health.OUTPUTS, "health_fallback"),
           pyfunc=health.pyfunc_frame, pyfunc_output="health_score",
           metrics={"auc": True, "auc_equal_weight": True, "auc_textbook": True},
           guard_metric="auc", guard_label="AUC", history=health.health_history,
           description="learned 0-100 health score with component contributions and risk triggers"),
    Family(name="blend", model_name="csforecast-blend", scorer=blend.score_blend, outputs=blend.OUTPUTS,
           pyfunc=blend.pyfunc_frame, pyfunc_output="blend_probability",
           metrics={"log_loss_blend": False, "log_loss_model": False, "log_loss_csm": False, "auc_blend": True,
                    "auc_model": True, "auc_csm": True, "ece_blend": False, "n_calls": None},
           guard_metric="log_loss_blend", guard_label="blend log loss", reads=blend.READS, serve=blend.serve,
           description="churn model blended with the CSM's renewal call (per-CSM bias partially pooled)"),
)}


def names() -> tuple[str, ...]:
    """Family names in training and scoring order (churn first: survival compares with it)."""
    return tuple(FAMILIES)


def get(name: str) -> Family:
    """The family called ``name`` (KeyError naming the known ones otherwise)."""
    try:
        return FAMILIES[name]
    except KeyError:
        raise KeyError(f"unknown model family {name!r}; known: {', '.join(FAMILIES)}") from None


def by_pyfunc_output(output: str) -> Family:
    """The family whose pyfunc answered ``output`` (models registered before this registry stored that)."""
    for f in FAMILIES.values():
        if f.pyfunc_output == output:
            return f
    raise KeyError(f"no model family answers {output!r}")
