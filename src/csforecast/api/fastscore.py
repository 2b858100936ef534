"""On-demand churn scoring for POST /v1/score: request rows parsed straight into the model's matrix.

`ChurnScorer` is built once per model set (when the serving state is built) and is read-only afterwards,
so requests share it without locks. Row problems are collected per field (row index and column named, in
FastAPI's validation-error format) and raised together as `RowErrors`.
"""
from __future__ import annotations

import contextlib
import json
import logging
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from csforecast.api.errors import LoadError, RowErrors
from csforecast.api.families import health_scores, model_inputs
from csforecast.config import get_settings
from csforecast.jsonsafe import error_text, finite_float
from csforecast.scoring.health import scorecard_columns

log = logging.getLogger("csforecast.api")

MAX_ERRORS = 100       # field errors reported per request (unknown columns come on top, once each)


@dataclass(frozen=True)
class Parsed:
    """Request rows as the churn model reads them: the float matrix (n × p, categorical levels as the
    model's codes), the raw categorical strings per column index, and the warnings per row index."""

    X: np.ndarray
    raw_cat: dict[int, list]
    warnings: dict[int, list[dict]]


class ChurnScorer:
    """On-demand churn scoring with the served estimator.

    Rows (dicts) are checked against the model's input schema once, in plain Python, straight into a
    float matrix (categorical levels → the model's fixed category codes). For the LightGBM candidate the
    booster predicts that matrix directly and the estimator's own calibration map is applied, which skips
    the per-request DataFrame work; this fast path is verified against ``predict_proba`` at load and only
    used if it agrees to 1e-9. Contributions always go through the estimator's public ``explain``.
    """

    def __init__(self, estimator, extra_columns: set[str] | None = None):
        self.est = estimator
        self.features = [str(f) for f in estimator.feature_names_in_]
        self.index = {f: j for j, f in enumerate(self.features)}
        kinds = getattr(estimator, "feature_kinds_", {}) or {}
        self.kinds = [kinds.get(f, "numeric") for f in self.features]
        self.numeric = [k == "numeric" for k in self.kinds]
        cats = getattr(estimator, "categories_", {}) or {}
        self.codes: dict[int, dict[str, int]] = {}
        self.other: dict[int, int] = {}
        for j, f in enumerate(self.features):
            if self.kinds[j] == "categorical":
                levels = [str(x) for x in cats.get(f, [])]
                self.codes[j] = {lvl: c for c, lvl in enumerate(levels)}
                self.other[j] = levels.index("__other__") if "__other__" in levels else -1
        self.extra_columns = set(extra_columns or ())
        self.fast = False
        with contextlib.suppress(Exception):
            self.fast = self._verify_fast_path()
        log.info("churn scorer: %d features, fast path %s", len(self.features), "on" if self.fast else "off")

    # -------------------------------------------------------------------------------- parsing
    def parse(self, rows: list[dict], strict: bool = False) -> Parsed:
        """The rows as the model's float matrix (categorical levels as the model's codes), the raw
        categorical strings per column, and the warnings per row; or `RowErrors`.

        Errors (422, row and field named): an unknown column, a value of the wrong type, a non-finite
        number (NaN, ±Infinity, or a number beyond the float range, which reads as Infinity), and a row
        that gives none of the model's inputs. Warnings (per row): a categorical level the model never saw
        and the inputs a row leaves out (scored as missing values; null is a known missing value and is
        not warned about). With ``strict`` the warnings are errors too.
        """
        n, p = len(rows), len(self.features)
        nan = float("nan")
        buf = [[nan] * p for _ in range(n)]
        raw_cat: dict[int, list] = {j: [None] * n for j in self.codes}
        errors: list[dict] = []
        warnings: dict[int, list[dict]] = {}
        unknown: dict[str, int] = {}
        index, kinds, codes, other = self.index, self.kinds, self.codes, self.other
        numeric = self.numeric
        for i, row in enumerate(rows):
            out = buf[i]
            given = 0
            for key, v in row.items():
                j = index.get(key)
                if j is None:
                    if key not in self.extra_columns and key not in unknown:
                        unknown[key] = i
                    continue
                given += 1
                if type(v) is float and numeric[j] and v - v == 0.0:  # the common case: a finite float
                    out[j] = v
                    continue
                kind = kinds[j]
                if v is None:
                    continue
                if kind == "numeric":
                    if isinstance(v, str):
                        errors.append(type_error(i, key, v, "a number (or null)"))
                        continue
                    try:
                        x = float(v)
                    except (OverflowError, TypeError, ValueError):
                        errors.append(type_error(i, key, v, "a number within float range (or null)"))
                        continue
                    if x - x != 0.0:
                        errors.append(non_finite_error(i, key, x))
                        continue
                    out[j] = x
                elif kind == "categorical":
                    if not isinstance(v, str):
                        errors.append(type_error(i, key, v, "a string (or null)"))
                        continue
                    c = codes[j].get(v)
                    if c is None:
                        c = other[j]
                        warnings.setdefault(i, []).append(self._unknown_level(key, j, v))
                    out[j] = float(c) if c >= 0 else nan
                    raw_cat[j][i] = v
                elif kind == "datetime":
                    if not isinstance(v, str):
                        errors.append(type_error(i, key, v, "an ISO date string (or null)"))
                        continue
                    try:
                        ts = pd.Timestamp(v)
                        if ts.tzinfo is not None:
                            ts = ts.tz_convert("UTC").tz_localize(None)
                        out[j] = (ts - pd.Timestamp(0)) / pd.Timedelta(days=1)
                    except (ValueError, TypeError, OverflowError):
                        errors.append(type_error(i, key, v, "an ISO date string (or null)"))
                else:  # timedelta: a number of days
                    if isinstance(v, (str, bool)):
                        errors.append(type_error(i, key, v, "a number of days (or null)"))
                        continue
                    try:
                        x = float(v)
                    except (OverflowError, TypeError, ValueError):
                        x = None
                    if x is not None and x - x != 0.0:
                        errors.append(non_finite_error(i, key, x))
                        continue
                    if x is None or abs(x) > 1e8:
                        errors.append(type_error(i, key, v, "a number of days within ±1e8 (or null)"))
                        continue
                    out[j] = x
                if len(errors) >= MAX_ERRORS:
                    break
            if given == 0:
                errors.append({"type": "no_inputs", "loc": ["body", "rows", i],
                               "msg": f"row {i} gives none of the churn model's {p} inputs (GET /v1/models lists "
                                      "them): there is nothing to score", "input": None})
            elif given < p:
                missing = [f for f in self.features if f not in row]
                warnings.setdefault(i, []).append(
                    {"type": "missing_inputs", "fields": missing,
                     "msg": f"{len(missing)} of the model's {p} inputs left out, scored as missing values: "
                            + ", ".join(missing[:10]) + (", …" if len(missing) > 10 else "")})
            if len(errors) >= MAX_ERRORS:
                break
        for key, i in unknown.items():
            errors.append({"type": "extra_forbidden", "loc": ["body", "rows", i, key],
                           "msg": f"unknown column {key!r}: not an input of the served models",
                           "input": row_value(rows[i], key)})
        if strict and warnings and len(errors) < MAX_ERRORS:
            errors += strict_errors(warnings)[: MAX_ERRORS - len(errors)]
        if errors:
            raise RowErrors(errors[: MAX_ERRORS + len(unknown)])
        X = np.array(buf, dtype=float).reshape(n, p)
        return Parsed(X, raw_cat, warnings)

    def _unknown_level(self, key: str, j: int, v: str) -> dict:
        levels = [lvl for lvl in self.codes[j] if lvl != "__other__"]
        scored = "the model's 'other' level" if self.other[j] >= 0 else "a missing value"
        return {"type": "unknown_level", "field": key, "value": v[:100],
                "msg": f"{key}: level {v[:100]!r} was not seen in training, scored as {scored} (known: "
                       + ", ".join(repr(x) for x in levels[:10]) + (", …" if len(levels) > 10 else "") + ")"}

    def frame(self, X: np.ndarray, raw_cat: dict[int, list]) -> pd.DataFrame:
        """The rows as the DataFrame the estimator was trained on (for predict_proba / explain)."""
        cols = {}
        for j, f in enumerate(self.features):
            kind = self.kinds[j]
            if kind == "categorical":
                cols[f] = pd.Series(raw_cat[j], dtype=object)
            elif kind == "datetime":
                cols[f] = pd.Timestamp(0) + pd.to_timedelta(X[:, j], unit="D")
            elif kind == "timedelta":
                cols[f] = pd.to_timedelta(X[:, j], unit="D")
            else:
                cols[f] = X[:, j]
        return pd.DataFrame(cols)

    # -------------------------------------------------------------------------------- predicting
    def predict(self, X: np.ndarray, raw_cat: dict[int, list]) -> np.ndarray:
        if self.fast:
            z = self.est.model_.booster_.predict(X, raw_score=True, num_threads=1)
            return np.asarray(self.est._calibrate(np.asarray(z, dtype=float)), dtype=float)
        return np.asarray(self.est.predict_proba(self.frame(X, raw_cat))[:, 1], dtype=float)

    def numeric_columns(self, X: np.ndarray, names: list[str]) -> dict[str, np.ndarray]:
        """The columns of the parsed matrix ``X`` that are numeric inputs among ``names`` (as float columns:
        what `health_columns` reads from the rows, since `parse` accepted only numbers and nulls there)."""
        return {c: X[:, j] for c in names if (j := self.index.get(c)) is not None and self.numeric[j]}

    def explain(self, X: np.ndarray, raw_cat: dict[int, list]) -> pd.DataFrame:
        return self.est.explain(self.frame(X, raw_cat))

    def _verify_fast_path(self) -> bool:
        est = self.est
        if getattr(est, "chosen_", None) != "lightgbm" or not hasattr(est, "_calibrate"):
            return False
        if any(k not in ("numeric", "categorical") for k in self.kinds):
            return False
        rng = np.random.default_rng(0)
        rows = []
        for r in range(64):
            row = {}
            for j, f in enumerate(self.features):
                if rng.random() < 0.15:
                    continue
                if self.kinds[j] == "categorical":
                    levels = list(self.codes[j]) + ["never-seen-level"]
                    row[f] = levels[int(rng.integers(len(levels)))]
                else:
                    row[f] = float(rng.normal(0, 1) * 10 ** rng.integers(0, 4))
            rows.append(row)
        parsed = self.parse(rows)
        X, raw = parsed.X, parsed.raw_cat
        try:
            self.fast = True
            fast = self.predict(X, raw)
        finally:
            self.fast = False
        slow = self.predict(X, raw)
        return bool(np.allclose(fast, slow, rtol=0, atol=1e-9))


def row_value(row: dict, key: str) -> Any:
    """The value of ``row[key]`` as it may be echoed in an error (scalars as they are, others cut to 100)."""
    v = row.get(key)
    return v if isinstance(v, (int, float, bool)) or v is None else str(v)[:100]


def type_error(i: int, key: str, v: Any, expected: str) -> dict:
    """One FastAPI-style validation error for row ``i``, field ``key``: what was expected, what came."""
    got = {str: "a string", bool: "a boolean", int: "a number", float: "a number"}.get(type(v), type(v).__name__)
    return {"type": "type_error", "loc": ["body", "rows", i, key], "msg": f"expected {expected}, got {got}",
            "input": v if not isinstance(v, str) else v[:100]}


def non_finite_error(i: int, key: str, x: float) -> dict:
    """The 422 error for a non-finite number in row ``i``, field ``key`` (NaN, ±Infinity, or an over-long
    number that overflowed to Infinity when the JSON was read)."""
    literal = "NaN" if x != x else ("Infinity" if x > 0 else "-Infinity")
    note = "" if x != x else " (a number beyond ±1.8e308 reads as Infinity)"
    return {"type": "finite_number", "loc": ["body", "rows", i, key],
            "msg": f"expected a finite number (or null for a missing value), got {literal}{note}", "input": literal}


def strict_errors(warnings: dict[int, list[dict]]) -> list[dict]:
    """The row warnings as 422 errors (``strict=true``): one per unknown level and per input left out."""
    errors = []
    for i, ws in sorted(warnings.items()):
        for w in ws:
            if w["type"] == "unknown_level":
                errors.append({"type": "unknown_level", "loc": ["body", "rows", i, w["field"]], "msg": w["msg"],
                               "input": w["value"]})
            else:
                errors += [{"type": "missing", "loc": ["body", "rows", i, f],
                            "msg": f"input {f!r} is left out (strict=true: send every input, null for a "
                                   "missing value)", "input": None} for f in w["fields"]]
    return errors


def churn_scorer(models) -> ChurnScorer:
    """The `ChurnScorer` of a model set's churn estimator (health inputs accepted as extra columns).

    Raises LoadError when the churn model cannot be used for scoring.
    """
    try:
        return ChurnScorer(models.estimators["churn"], set(model_inputs(models.estimators.get("health"))))
    except Exception as e:  # noqa: BLE001
        raise LoadError(f"the churn model v{models.versions.get('churn')} cannot be used for scoring: "
                        f"{error_text(e)}") from e


def health_inputs(models, rows: list[dict]) -> list[str] | None:
    """The health model's inputs when one is served and every row carries all of them, else None."""
    needed = model_inputs(models.estimators.get("health"))
    if not needed:
        return None
    keys = set(needed)
    return needed if all(keys <= r.keys() for r in rows) else None


def _health_column(models, rows: list[dict], needed: list[str], settings=None,
                   parsed: dict[str, np.ndarray] | None = None) -> list[dict] | None:
    """Per row: ``health_score`` and the scorecard beside it (outcomes_score, experience_score,
    health_quadrant, health_band5; `scoring.health.scorecard_columns`); None when the model cannot score.
    ``parsed``: health inputs already read as float columns (the churn matrix's), not read again."""
    est = models.estimators["health"]
    components = frame = None
    try:
        if hasattr(est, "predict_with_components"):   # one pass over the rows' columns for score and scorecard
            score, components = est.predict_with_components(health_columns(rows, needed, parsed))
        else:
            frame = pd.DataFrame([{c: r.get(c) for c in needed} for r in rows], columns=needed)
            score = health_scores(est, frame)
        hs = _finite_list(score)
        out = [{"health_score": v} for v in hs]
    except Exception as e:  # noqa: BLE001 - no health score is better than a made-up one or a 500
        log.warning("health model could not score %d on-demand row(s): %s", len(rows), type(e).__name__)
        return None
    try:
        if components is None:
            components = est.component_scores(frame)
        card = scorecard_columns(components, score, settings or get_settings())
    except Exception as e:  # noqa: BLE001 - a model without component scores still serves its score
        log.warning("no scorecard for %d on-demand row(s): %s", len(rows), type(e).__name__)
        return out
    keys = ["health_score", *card]
    columns = [_finite_list(v) if k.endswith("_score") else v.tolist() for k, v in card.items()]
    # one dict per row from the columns (in C), in the key order of the score then the scorecard
    return [dict(zip(keys, values)) for values in zip(hs, *columns)]


def _finite_list(values) -> list:
    """``values`` as a list of Python floats, None for NaN and ±inf: `finite_float` of each, without a Python
    call a value (300 of them on a 100-row request with health)."""
    return [x if x - x == 0.0 else None for x in np.asarray(values, dtype=float).tolist()]


def health_columns(rows: list[dict], needed: list[str],
                   parsed: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """The health inputs ``needed`` of ``rows`` as float columns, read as `pandas.to_numeric(errors="coerce")`
    reads them (null and non-numbers as NaN, numeric strings as their number); plain JSON numbers skip pandas.
    Every row carries every column (`health_inputs` checked); a column in ``parsed`` is taken from it."""
    out = {}
    for c in needed:
        if parsed is not None and c in parsed:
            out[c] = parsed[c]
            continue
        values = [r[c] for r in rows]
        if all(v is None or type(v) in (float, int) for v in values):
            try:
                out[c] = np.array(values, dtype=float)
                continue
            except (ValueError, OverflowError):   # an int beyond float's range: pandas reads it
                pass
        out[c] = pd.to_numeric(pd.Series(values, dtype=object), errors="coerce").to_numpy(dtype=float)
    return out


def score_rows(state, rows: list[dict], contributions: bool, health: list[str] | None,
               strict: bool = False, settings=None) -> bytes:
    """The POST /v1/score response body (JSON bytes) for ``rows`` scored with ``state``'s models.

    ``health``: the health inputs from `health_inputs` (None: no health score). Raises RowErrors when a
    row does not fit the churn model's inputs (or, with ``strict``, has warnings). A result carries
    ``warnings`` only when its row has some. ``settings``: the scorecard's five bands and quadrant cut
    (default: get_settings()).
    """
    scorer = state.churn
    parsed = scorer.parse(rows, strict)
    X, raw = parsed.X, parsed.raw_cat
    p = scorer.predict(X, raw)
    results = [{"churn_probability": float(v)} for v in p]
    for i, ws in parsed.warnings.items():
        results[i]["warnings"] = ws
    versions = {"churn": state.models.versions["churn"]}
    if contributions:
        contrib = scorer.explain(X, raw)
        base = contrib["base_value"].to_numpy(dtype=float)
        feats = [c for c in contrib.columns if c != "base_value"]
        vals = contrib[feats].to_numpy(dtype=float)
        for i, res in enumerate(results):
            res["contributions"] = {f: (v if math.isfinite(v) else None) for f, v in zip(feats, vals[i].tolist())}
            res["base_value"] = finite_float(base[i])
    scores = (_health_column(state.models, rows, health, settings, scorer.numeric_columns(X, health))
              if health else None)
    if scores is not None:
        versions["health"] = state.models.versions["health"]
        for res, h in zip(results, scores):
            res.update(h)
    return json.dumps({"model_versions": versions, "results": results}, allow_nan=False,
                      separators=(",", ":")).encode()
