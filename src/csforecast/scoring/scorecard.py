"""The editable scorecard at serve time (issue 17, docs/health.md "The scorecard people can own"): any weight
set scored on the served health model's own validation rows, beside the learned and configured weights.

* The health training run logs ``SCORECARD_ARTIFACT``: per validation row the component scores (0-100), the
  churn label ``y`` and the model's and the equal-weight scorecard's scores (`reference_frame`). The server
  reads it back (`champion_reference`), so it scores weight sets without importing training code.
* A CS leader's weight set is saved in ``CSFORECAST_HOME/scorecard.json`` (`SavedWeights`, written atomically):
  the dashboard's set, and named sets saved through ``PUT /v1/health/scorecard/weights/{name}``; each is
  reported beside the others until replaced or deleted.
* `scorecard_report`: per weight set its weights and `models.scorecard.weight_set_report` metrics (AUC,
  top-decile lift, churn by three and five bands) on the same rows.
"""
from __future__ import annotations

import json
import os
import re
import uuid
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from csforecast.models.health import COMPONENTS
from csforecast.models.scorecard import (WeightSetError, check_weight_set, learned_weights, weight_set_report,
                                         weight_set_score)

__all__ = ["SCORECARD_ARTIFACT", "LABEL", "MODEL_SCORE", "EQUAL_SCORE", "reference_frame", "champion_reference",
           "SavedWeights", "check_set_name", "RESERVED_SET_NAMES", "scorecard_report", "evaluate_weights"]

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


SET_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
RESERVED_SET_NAMES = ("learned", "equal_weight", "configured", "saved", "yours")


def check_set_name(name) -> str:
    """A saved weight set's name: 1-64 letters, digits, ``_``, ``.`` or ``-``, starting with a letter or digit,
    not one of `RESERVED_SET_NAMES` (the report's own sets); WeightSetError with ``field`` "name" otherwise."""
    if not isinstance(name, str) or not SET_NAME.fullmatch(name):
        raise WeightSetError("a weight set's name is 1-64 letters, digits, '_', '.' or '-', starting with a letter "
                             "or digit", "name", name)
    if name in RESERVED_SET_NAMES:
        raise WeightSetError(f"'{name}' names one of the report's own weight sets ({', '.join(RESERVED_SET_NAMES)})"
                             "; choose another name", "name", name)
    return name


class SavedWeights:
    """The weight sets people saved: the dashboard's (``{"weights", "saved_at", "saved_by"}`` at the top of one
    JSON file, reported as ``saved``) and named ones saved through the API (``"named": {name: {"weights",
    "saved_at", "saved_by"}}`` in the same file). Every change is a read-modify-write under a lock file and
    replaces the file atomically (a temporary file, then a rename), so a reader sees the old sets or the new
    ones and two writers never lose each other's change."""

    def __init__(self, home: Path):
        self.path = Path(home) / "scorecard.json"

    def _read(self) -> dict:
        try:
            doc = json.loads(self.path.read_text())
            return doc if isinstance(doc, dict) else {}
        except (OSError, ValueError):
            return {}

    def load(self) -> dict | None:
        """The dashboard's saved record, or None when none was saved (an unreadable file is reported as None
        too, and replaced by the next save)."""
        doc = self._read()
        try:
            return {k: doc[k] for k in ("saved_at", "saved_by") if k in doc} | {
                "weights": check_weight_set(doc["weights"])}
        except (ValueError, KeyError, TypeError):
            return None

    def named(self) -> dict[str, dict]:
        """The named sets saved through the API, {name: weights}; unreadable entries are left out."""
        out = {}
        named = self._read().get("named")
        for name, rec in (named.items() if isinstance(named, dict) else ()):
            try:
                out[check_set_name(name)] = check_weight_set(rec["weights"])
            except (ValueError, KeyError, TypeError):
                continue
        return out

    def save(self, weights: Mapping, by: str | None = None, name: str | None = None) -> dict:
        """Validate and store ``weights`` as the dashboard's set (``name`` None) or as the named set ``name``
        (replacing one of that name); ValueError naming the field, before anything is written. Returns the
        stored record."""
        rec = {"weights": check_weight_set(weights), "saved_by": by,
               "saved_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        if name is not None:
            check_set_name(name)

        def change(doc):
            if name is None:
                doc.update(rec)
            else:
                named = doc.get("named") if isinstance(doc.get("named"), dict) else {}
                doc["named"] = {**named, name: rec}
            return True
        self._update(change)
        return rec

    def delete(self, name: str) -> bool:
        """Remove the named set ``name``; False (nothing written) when there is none."""
        def change(doc):
            named = doc.get("named")
            if not isinstance(named, dict) or name not in named:
                return False
            doc["named"] = {k: v for k, v in named.items() if k != name}
            return True
        return self._update(change)

    def _update(self, change) -> bool:
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_name(".scorecard.lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            doc = self._read()
            if not change(doc):
                return False
            tmp = self.path.with_name(f".scorecard.{uuid.uuid4().hex[:8]}.tmp")
            try:
                tmp.write_text(json.dumps(doc, allow_nan=False))
                os.replace(tmp, self.path)
            finally:
                tmp.unlink(missing_ok=True)
        return True


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
    ``saved`` (the dashboard's, when saved) and any ``extra`` {name: weights} (the named saved sets, the
    form's). Each: {"weights", "metrics", "missing_components", "error"}. ``available`` is False (with ``reason``) when there are no reference rows."""
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
