"""The editable scorecard at serve time (issue 17, docs/health.md "The scorecard people can own"): any weight
set scored on the served health model's own validation rows, beside the learned and configured weights.

* The health training run logs ``SCORECARD_ARTIFACT``: per validation row the component scores (0-100), the
  churn label ``y`` and the model's and the equal-weight scorecard's scores (`reference_frame`). The server
  reads it back (`champion_reference`), so it scores weight sets without importing training code.
* A CS leader's weight set is saved in ``CSFORECAST_HOME/scorecard.json`` (`SavedWeights`, written atomically)
  and reported beside the others until replaced.
* `scorecard_report`: per weight set its weights and `models.scorecard.weight_set_report` metrics (AUC,
  top-decile lift, churn by three and five bands) on the same rows.
"""
from __future__ import annotations

import json
import os
import uuid
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from csforecast.models.health import COMPONENTS
from csforecast.models.scorecard import check_weight_set, learned_weights, weight_set_report, weight_set_score

__all__ = ["SCORECARD_ARTIFACT", "LABEL", "MODEL_SCORE", "EQUAL_SCORE", "reference_frame", "champion_reference",
           "SavedWeights", "scorecard_report", "evaluate_weights"]

SCORECARD_ARTIFACT = "scorecard_reference.parquet"
LABEL, MODEL_SCORE, EQUAL_SCORE = "y", "score_model", "score_equal_weight"


def reference_frame(components: pd.DataFrame, y, model_score, equal_score) -> pd.DataFrame:
    """What a health run logs as ``SCORECARD_ARTIFACT``: one row per validation row, its component scores, the
    label and the two scores the model was compared on."""
    out = components.reset_index(drop=True).astype(float).copy()
    out[LABEL] = np.asarray(y, dtype=int)
    out[MODEL_SCORE] = np.asarray(model_score, dtype=float)
    out[EQUAL_SCORE] = np.asarray(equal_score, dtype=float)
    return out


def champion_reference(run_id: str | None) -> pd.DataFrame | None:
    """The scorecard reference logged with a health model version's run (read once per process by
    ``tracking.runs.run_table``); None for a version trained before it existed or when ``run_id`` is None.
    MLflow errors propagate."""
    from csforecast.tracking.runs import run_table

    return None if run_id is None else run_table(run_id, SCORECARD_ARTIFACT)


class SavedWeights:
    """The weight set a person saved on the dashboard: ``{"weights", "saved_at", "saved_by"}`` in one JSON
    file, replaced atomically (a temporary file, then a rename), so a reader sees the old set or the new one."""

    def __init__(self, home: Path):
        self.path = Path(home) / "scorecard.json"

    def load(self) -> dict | None:
        """The saved record, or None when none was saved (an unreadable file is reported as None too, and
        replaced by the next save)."""
        try:
            doc = json.loads(self.path.read_text())
            return {**doc, "weights": check_weight_set(doc["weights"])}
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def save(self, weights: Mapping, by: str | None = None) -> dict:
        """Validate and store ``weights`` (ValueError naming the field, before anything is written)."""
        doc = {"weights": check_weight_set(weights), "saved_by": by,
               "saved_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".scorecard.{uuid.uuid4().hex[:8]}.tmp")
        try:
            tmp.write_text(json.dumps(doc, allow_nan=False))
            os.replace(tmp, self.path)
        finally:
            tmp.unlink(missing_ok=True)
        return doc


def _components(ref: pd.DataFrame) -> pd.DataFrame:
    return ref[[c for c in COMPONENTS if c in ref.columns]]


def evaluate_weights(ref: pd.DataFrame, weights: Mapping, settings) -> dict:
    """One weight set on the reference rows: {"weights", "missing_components", "metrics"}; ValueError for a bad
    set (naming the field) or one that weighs none of the model's components."""
    w = check_weight_set(weights)
    score, missing = weight_set_score(_components(ref), w)
    metrics = weight_set_report(ref[LABEL], {"set": score}, _cuts3(settings), settings.scorecard.five_bands)["set"]
    return {"weights": w, "missing_components": missing, "metrics": metrics}


def _cuts3(settings) -> tuple[float, float]:
    return float(settings.health_bands.red), float(settings.health_bands.yellow)


def scorecard_report(ref: pd.DataFrame | None, estimator, settings, saved: dict | None = None,
                     extra: Mapping[str, Mapping] | None = None) -> dict:
    """The weight sets side by side on the served model's validation rows: ``learned`` (the model itself, with
    its component weights as shares), ``equal_weight``, ``configured`` (``[scorecard] weights``, when set),
    ``saved`` (the dashboard's, when saved) and any ``extra`` {name: weights}. Each: {"weights", "metrics",
    "missing_components", "error"}. ``available`` is False (with ``reason``) when there are no reference rows."""
    out = {"available": ref is not None, "reason": None, "n_rows": 0, "n_churned": 0,
           "components": [c for c in COMPONENTS if ref is not None and c in ref.columns],
           "five_band_cutoffs": list(settings.scorecard.five_bands), "band_cutoffs": list(_cuts3(settings)),
           "weight_sets": {}, "saved": saved}
    if ref is None:
        out["reason"] = ("the served health model was trained before its validation rows were logged: retrain it "
                         "(csforecast train) to score weight sets on them")
        return out
    y = ref[LABEL].to_numpy(dtype=int)
    out["n_rows"], out["n_churned"] = int(len(y)), int(y.sum())
    base = weight_set_report(y, {"learned": ref[MODEL_SCORE].to_numpy(float),
                                 "equal_weight": ref[EQUAL_SCORE].to_numpy(float)}, _cuts3(settings),
                             settings.scorecard.five_bands)
    comps = out["components"]
    sets = {"learned": {"weights": learned_weights(estimator) if estimator is not None else None,
                        "metrics": base["learned"], "missing_components": [], "error": None},
            "equal_weight": {"weights": {c: 1.0 / len(comps) for c in comps}, "metrics": base["equal_weight"],
                             "missing_components": [], "error": None}}
    named = {}
    if settings.scorecard.weights:
        named["configured"] = settings.scorecard.weights
    if saved:
        named["saved"] = saved["weights"]
    named.update(extra or {})
    for name, w in named.items():
        try:
            sets[name] = {**evaluate_weights(ref, w, settings), "error": None}
        except ValueError as e:   # a bad configured set is reported beside the others, never hides them
            sets[name] = {"weights": dict(w), "metrics": None, "missing_components": [], "error": str(e)}
    out["weight_sets"] = sets
    return out
