"""What the server serves: one immutable `ServingState` (models + scores + data), swapped atomically.

A request takes ``holder.current`` once and uses that object to the end, so a reload never mixes two
model sets in one response. `StateHolder.reload` builds a complete new state (models from the registry,
the latest score set, a fresh data context) and only then replaces the one reference; if any part fails
it raises `LoadError` and the old state keeps serving.

At start the registry is the source of the models. If it cannot be reached, the last good model set,
pickled to ``settings.model_cache`` after every successful registry load, is used with a warning; with
no cache the server refuses to start (`StartupError`). Anything else missing (no champion yet, no score
set) starts the server not ready (/readyz 503 says why) so that a later reload can fix it.

Scores are pre-serialised at load: account_id → JSON bytes of the detail response, plus arrays for the
list filters and cached sort orders, so a detail lookup is a dict lookup and a list page is numpy work.
"""
from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import json
import logging
import math
import os
import pickle
import tempfile
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
from pydantic import ValidationError

from csforecast.api.schemas import AccountDetail, AccountSummary

log = logging.getLogger("csforecast.api")

FAMILIES = ("churn", "survival", "health")
CACHE_FILE = "champions.pkl"
CACHE_META = "champions.json"
# natural direction of each sort key: the riskiest / most urgent accounts first
SORT_DESC = {"risk_arr": True, "churn_probability": True, "arr": True, "health_score": False, "renewal_date": False}


class LoadError(Exception):
    """A model set, score set or data source could not be loaded. The message is safe to show to clients."""


class RegistryUnavailable(LoadError):
    """The MLflow registry could not be reached or read (as opposed to: reachable, but nothing to serve)."""


class StartupError(RuntimeError):
    """The server cannot start: the registry is unreachable and there is no cached model set."""


class DataUnavailable(Exception):
    """No data source is configured, or it cannot be opened (endpoints answer 503 with this message)."""


# ------------------------------------------------------------------------------------------- helpers
def _py(v: Any) -> Any:
    """A JSON-safe Python value: numpy scalars unwrapped, NaN/inf/NaT → None, containers recursed."""
    if v is None or v is pd.NaT:
        return None
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        f = float(v)
        return f if math.isfinite(f) else None
    if isinstance(v, str):
        return v
    if isinstance(v, pd.Timestamp):
        return v.date().isoformat() if v == v.normalize() else v.isoformat()
    if isinstance(v, (datetime, date)):
        return v.isoformat()
    if isinstance(v, dict):
        return {str(k): _py(x) for k, x in v.items()}
    if isinstance(v, (list, tuple, np.ndarray)):
        return [_py(x) for x in v]
    with contextlib.suppress(TypeError, ValueError):
        if pd.isna(v):
            return None
    return str(v)


def _date(v: Any) -> str | None:
    if v is None or v is pd.NaT:
        return None
    with contextlib.suppress(TypeError, ValueError):
        if pd.isna(v):
            return None
    return pd.Timestamp(v).date().isoformat()


def _err_text(e: BaseException, limit: int = 300) -> str:
    text = f"{type(e).__name__}: {e}".replace("\n", " ")
    return text if len(text) <= limit else text[:limit] + "…"


# ------------------------------------------------------------------------------------------- models
@dataclass(frozen=True, eq=False)
class ModelSet:
    estimators: dict[str, Any]
    versions: dict[str, str]
    source: str                      # "registry" | "cache"
    loaded_at: datetime
    info: dict[str, dict]            # family -> {run_id, aliases, metrics, versions, pinned}: snapshot at load


def _family_info(family: str, version: str, pinned: bool) -> dict:
    from csforecast.tracking import store

    info: dict = {"run_id": None, "aliases": [], "metrics": {}, "versions": [], "pinned": pinned}
    try:
        versions = store.model_versions(family)
        info["versions"] = [{k: v.get(k) for k in ("version", "run_id", "aliases", "guard")} for v in versions]
        mine = next((v for v in versions if str(v["version"]) == str(version)), None)
        if mine:
            info["run_id"], info["aliases"] = mine["run_id"], list(mine["aliases"])
            if mine["run_id"]:
                info["metrics"] = {k: float(v) for k, v in store.run_metrics(mine["run_id"]).items()
                                   if isinstance(v, (int, float)) and math.isfinite(v)}
    except Exception as e:  # noqa: BLE001 - the info is decoration; the estimator itself loaded
        log.warning("could not read registry details of %s v%s: %s", family, version, _err_text(e))
    return info


def load_models_from_registry(settings) -> ModelSet:
    """The champion (or pinned) version of every registered family. Raises RegistryUnavailable when the
    registry cannot be read, LoadError when it can but there is nothing (valid) to serve."""
    from mlflow.exceptions import MlflowException

    from csforecast.scoring.batch import Champions
    from csforecast.tracking import store

    pinned = {k: str(v) for k, v in (settings.serve.pinned_versions or {}).items()}
    unknown = sorted(set(pinned) - set(FAMILIES))
    if unknown:
        raise LoadError(f"serve.pinned_versions names unknown model families {unknown}; known: {list(FAMILIES)}")
    uri = settings.tracking_uri
    try:
        # store.champion_version answers None when the registry cannot be reached; probe first so an
        # unreachable registry is told apart from one without champions.
        store.configure(settings).search_registered_models(max_results=1)
    except Exception as e:  # noqa: BLE001 - connection refused, broken database, …
        raise RegistryUnavailable(f"MLflow registry at {uri} is not reachable: {_err_text(e)}") from e
    try:
        champs = Champions.load(pinned)
    except MlflowException as e:
        code = getattr(e, "error_code", "")
        if code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            raise LoadError(f"cannot load the models to serve (pinned {pinned or 'none'}): {_err_text(e)}") from e
        raise RegistryUnavailable(f"MLflow registry at {uri} is not usable: {_err_text(e)}") from e
    except Exception as e:  # noqa: BLE001 - connection refused, broken database, missing artifacts …
        raise RegistryUnavailable(f"MLflow registry at {uri} is not usable: {_err_text(e)}") from e
    if "churn" not in champs.estimators:
        raise LoadError(f"no churn champion in the MLflow registry at {uri}: run `csforecast train --data …` "
                        "first (or pin a version in serve.pinned_versions)")
    info = {fam: _family_info(fam, v, fam in pinned) for fam, v in champs.versions.items()}
    for fam, est in champs.estimators.items():
        names = getattr(est, "feature_names_in_", None)
        info[fam]["inputs"] = [str(c) for c in names] if names is not None else []
    return ModelSet(dict(champs.estimators), dict(champs.versions), "registry", datetime.now(timezone.utc), info)


def save_model_cache(settings, models: ModelSet) -> None:
    """Pickle the estimators + versions to settings.model_cache (atomically); skipped when unchanged."""
    d = Path(settings.model_cache)
    meta = {"versions": models.versions, "tracking_uri": settings.tracking_uri}
    try:
        d.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError, ValueError):
            old = json.loads((d / CACHE_META).read_text())
            if {k: old.get(k) for k in meta} == meta and (d / CACHE_FILE).exists():
                return
        payload = {"format": 1, "versions": models.versions, "estimators": models.estimators, "info": models.info,
                   "saved_at": datetime.now(timezone.utc).isoformat(), "tracking_uri": settings.tracking_uri}
        for name, data in ((CACHE_FILE, pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL)),
                           (CACHE_META, json.dumps({**meta, "saved_at": payload["saved_at"]}).encode())):
            fd, tmp = tempfile.mkstemp(prefix=name + ".", suffix=".tmp", dir=d)
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(data)
                    fh.flush()
                    os.fsync(fh.fileno())
                os.replace(tmp, d / name)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
    except Exception as e:  # noqa: BLE001 - a cache that cannot be written must not stop serving
        log.warning("could not write the model cache to %s: %s", d, _err_text(e))


def load_model_cache(settings) -> ModelSet | None:
    path = Path(settings.model_cache) / CACHE_FILE
    if not path.exists():
        return None
    try:
        with open(path, "rb") as fh:
            payload = pickle.load(fh)  # noqa: S301 - our own file under CSFORECAST_HOME
        saved = datetime.fromisoformat(payload["saved_at"])
        return ModelSet(dict(payload["estimators"]), dict(payload["versions"]), "cache", saved,
                        dict(payload.get("info") or {}))
    except Exception as e:  # noqa: BLE001
        log.error("the model cache %s cannot be read: %s", path, _err_text(e))
        return None


# ------------------------------------------------------------------------------------------- scoring
class RowErrors(Exception):
    """Field-level problems in /v1/score rows, in FastAPI's validation-error format."""

    def __init__(self, errors: list[dict]):
        super().__init__(f"{len(errors)} error(s)")
        self.errors = errors


_MAX_ERRORS = 100


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
    def parse(self, rows: list[dict]) -> tuple[np.ndarray, dict[int, list]]:
        """(float matrix n×p with categorical codes, raw categorical strings per column) or RowErrors."""
        n, p = len(rows), len(self.features)
        nan = float("nan")
        buf = [[nan] * p for _ in range(n)]
        raw_cat: dict[int, list] = {j: [None] * n for j in self.codes}
        errors: list[dict] = []
        unknown: dict[str, int] = {}
        index, kinds, codes, other = self.index, self.kinds, self.codes, self.other
        numeric = self.numeric
        for i, row in enumerate(rows):
            out = buf[i]
            for key, v in row.items():
                j = index.get(key)
                if j is None:
                    if key not in self.extra_columns and key not in unknown:
                        unknown[key] = i
                    continue
                if type(v) is float and numeric[j]:  # the common case; non-finite values fixed below
                    out[j] = v
                    continue
                kind = kinds[j]
                if v is None:
                    continue
                if kind == "numeric":
                    if isinstance(v, str):
                        errors.append(_type_error(i, key, v, "a number (or null)"))
                        continue
                    try:
                        x = float(v)
                    except (OverflowError, TypeError, ValueError):
                        errors.append(_type_error(i, key, v, "a number within float range (or null)"))
                        continue
                    out[j] = x if math.isfinite(x) else nan
                elif kind == "categorical":
                    if not isinstance(v, str):
                        errors.append(_type_error(i, key, v, "a string (or null)"))
                        continue
                    c = codes[j].get(v, other[j])
                    out[j] = float(c) if c >= 0 else nan
                    raw_cat[j][i] = v
                elif kind == "datetime":
                    if not isinstance(v, str):
                        errors.append(_type_error(i, key, v, "an ISO date string (or null)"))
                        continue
                    try:
                        ts = pd.Timestamp(v)
                        if ts.tzinfo is not None:
                            ts = ts.tz_convert("UTC").tz_localize(None)
                        out[j] = (ts - pd.Timestamp(0)) / pd.Timedelta(days=1)
                    except (ValueError, TypeError, OverflowError):
                        errors.append(_type_error(i, key, v, "an ISO date string (or null)"))
                else:  # timedelta: a number of days
                    if isinstance(v, (str, bool)):
                        errors.append(_type_error(i, key, v, "a number of days (or null)"))
                        continue
                    try:
                        x = float(v)
                    except (OverflowError, TypeError, ValueError):
                        x = None
                    if x is None or (math.isfinite(x) and abs(x) > 1e8):
                        errors.append(_type_error(i, key, v, "a number of days within ±1e8 (or null)"))
                        continue
                    out[j] = x if math.isfinite(x) else nan
                if len(errors) >= _MAX_ERRORS:
                    break
            if len(errors) >= _MAX_ERRORS:
                break
        for key, i in unknown.items():
            errors.append({"type": "extra_forbidden", "loc": ["body", "rows", i, key],
                           "msg": f"unknown column {key!r}: not an input of the served models",
                           "input": row_value(rows[i], key)})
        if errors:
            raise RowErrors(errors[: _MAX_ERRORS + len(unknown)])
        X = np.array(buf, dtype=float).reshape(n, p)
        X[np.isinf(X)] = np.nan  # ±inf is missing, as the estimator itself treats it
        return X, raw_cat

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
        X, raw = self.parse(rows)
        try:
            self.fast = True
            fast = self.predict(X, raw)
        finally:
            self.fast = False
        slow = self.predict(X, raw)
        return bool(np.allclose(fast, slow, rtol=0, atol=1e-9))


def row_value(row: dict, key: str) -> Any:
    v = row.get(key)
    return v if isinstance(v, (int, float, bool)) or v is None else str(v)[:100]


def _type_error(i: int, key: str, v: Any, expected: str) -> dict:
    got = {str: "a string", bool: "a boolean", int: "a number", float: "a number"}.get(type(v), type(v).__name__)
    return {"type": "type_error", "loc": ["body", "rows", i, key], "msg": f"expected {expected}, got {got}",
            "input": v if not isinstance(v, str) else v[:100]}


# ------------------------------------------------------------------------------------------- scores
@dataclass(eq=False)
class ScoreSet:
    version: int
    as_of: str
    data_hash: str
    models: dict[str, str]
    details: dict[str, bytes]                  # account_id -> serialised AccountDetail
    items: list[bytes]                         # serialised AccountSummary, in row order
    ids: np.ndarray
    segment: np.ndarray
    csm_id: np.ndarray
    band: np.ndarray
    renewal_day: np.ndarray                    # float days since epoch, NaN when unknown
    sort_values: dict[str, np.ndarray]         # key -> float values (NaN = null)
    _orders: dict = field(default_factory=dict)

    @property
    def n(self) -> int:
        return len(self.items)

    def info(self) -> dict:
        return {"version": self.version, "as_of": self.as_of, "data_hash": self.data_hash, "n_accounts": self.n,
                "models": self.models}

    def order(self, key: str, desc: bool) -> np.ndarray:
        """Row indices sorted by key (nulls last, ties by account_id); computed once per key/direction."""
        o = self._orders.get((key, desc))
        if o is None:
            v = self.sort_values[key]
            null = np.isnan(v)
            o = np.lexsort((self.ids, np.where(null, 0.0, -v if desc else v), null))
            self._orders[(key, desc)] = o
        return o

    def page(self, *, sort: str, desc: bool, segment=None, csm_id=None, band=None, renewal_before: date | None = None,
             offset: int = 0, limit: int = 50) -> tuple[list[bytes], int]:
        mask = np.ones(self.n, dtype=bool)
        if segment is not None:
            mask &= self.segment == segment
        if csm_id is not None:
            mask &= self.csm_id == csm_id
        if band is not None:
            mask &= self.band == band
        if renewal_before is not None:
            day = (renewal_before - date(1970, 1, 1)).days  # any date; pandas Timestamps stop at 1677/2262
            with np.errstate(invalid="ignore"):
                mask &= self.renewal_day < day
        order = self.order(sort, desc)
        hits = order[mask[order]]
        return [self.items[i] for i in hits[offset:offset + limit]], int(len(hits))


def build_score_set(meta: dict, scores: pd.DataFrame, history: pd.DataFrame) -> ScoreSet:
    """Pre-serialise every account's detail and list item, validated against the response models."""
    version = int(meta["version"])
    as_of = _date(meta["as_of"])
    data_hash = str(meta.get("data_hash") or "")
    models = {str(k): str(v) for k, v in (meta.get("models") or {}).items()}
    cols = set(scores.columns)
    if "account_id" not in cols:
        raise LoadError(f"score set v{version} has no account_id column")
    trend: dict[str, list] = {}
    if history is not None and len(history) and {"account_id", "week", "health_score"} <= set(history.columns):
        h = history.sort_values(["account_id", "week"])
        extra = [c for c in ("components", "change", "change_explanation") if c in h.columns]
        for rec in h[["account_id", "week", "health_score", *extra]].to_dict("records"):
            point = {"week": _date(rec["week"]), "health_score": _py(rec["health_score"])}
            point.update({c: _py(rec[c]) for c in extra})
            trend.setdefault(str(rec["account_id"]), []).append(point)
    has_surv = "p_active_90d" in cols or "expected_lifetime_days" in cols
    has_health = "health_score" in cols
    records = scores.to_dict("records")
    details: dict[str, bytes] = {}
    items: list[bytes] = []
    for r in records:
        g = r.get
        aid = str(g("account_id"))
        versions = {fam: str(g(f"{fam}_model_version")) for fam in FAMILIES
                    if _py(g(f"{fam}_model_version")) is not None}
        d = {
            "account_id": aid, "name": _py(g("name")), "segment": _py(g("segment")), "industry": _py(g("industry")),
            "region": _py(g("region")), "csm_id": _py(g("csm_id")), "arr": _py(g("arr")), "seats": _py(g("seats")),
            "contract_id": _py(g("contract_id")), "tenure_days": _py(g("tenure_days")),
            "renewal_date": _date(g("renewal_date")), "days_to_renewal": _py(g("days_to_renewal")),
            "churn_probability": _py(g("churn_probability")), "churn_base_logit": _py(g("churn_base_logit")),
            "risk_arr": _py(g("risk_arr")), "drivers": _py(g("churn_drivers")) or [],
            "survival": None, "health": None, "triggers": None, "health_trend": trend.get(aid) if trend else None,
            "model_versions": versions or models, "as_of": as_of, "data_hash": data_hash,
            "score_set_version": version,
        }
        if has_surv:
            d["survival"] = {"p_active_90d": _py(g("p_active_90d")), "p_active_180d": _py(g("p_active_180d")),
                             "p_active_365d": _py(g("p_active_365d")),
                             "expected_lifetime_days": _py(g("expected_lifetime_days")),
                             "p_renewal_survival": _py(g("p_renewal_survival")),
                             "contributions": _py(g("survival_contributions")),
                             "model_version": _py(g("survival_model_version"))}
        if has_health:
            d["health"] = {"score": _py(g("health_score")), "band": _py(g("health_band")),
                           "components": _py(g("health_components")) or [],
                           "model_version": _py(g("health_model_version"))}
            d["triggers"] = _py(g("triggers")) if "triggers" in cols else None
        try:
            details[aid] = AccountDetail.model_validate(d).model_dump_json().encode()
            items.append(AccountSummary.model_validate(
                {k: d.get(k) for k in ("account_id", "name", "segment", "industry", "region", "csm_id", "arr",
                                       "renewal_date", "days_to_renewal", "churn_probability", "risk_arr")}
                | {"health_score": _py(g("health_score")), "health_band": _py(g("health_band"))}
            ).model_dump_json().encode())
        except ValidationError as e:
            raise LoadError(f"score set v{version}: account {aid} does not match the API schema: "
                            f"{_err_text(e, 500)}") from e

    def col(name: str) -> np.ndarray:
        if name not in cols:
            return np.full(len(records), None, dtype=object)
        return np.array([_py(x) for x in scores[name]], dtype=object)

    def num(name: str) -> np.ndarray:
        if name not in cols:
            return np.full(len(records), np.nan)
        return pd.to_numeric(scores[name], errors="coerce").to_numpy(dtype=float, na_value=np.nan)

    renewal = pd.to_datetime(scores["renewal_date"], errors="coerce") if "renewal_date" in cols else None
    renewal_day = (((renewal - pd.Timestamp(0)) / pd.Timedelta(days=1)).to_numpy(dtype=float, na_value=np.nan)
                   if renewal is not None else np.full(len(records), np.nan))
    ids = np.array([str(x) for x in scores["account_id"]], dtype=object)
    sort_values = {"risk_arr": num("risk_arr"), "churn_probability": num("churn_probability"), "arr": num("arr"),
                   "health_score": num("health_score"), "renewal_date": renewal_day}
    return ScoreSet(version, as_of, data_hash, models, details, items, ids, col("segment"), col("csm_id"),
                    col("health_band"), renewal_day, sort_values)


def load_score_set(settings) -> ScoreSet:
    from csforecast.scoring.store import load_latest

    try:
        meta, scores, history = load_latest(settings.scores_db)
    except FileNotFoundError as e:
        raise LoadError(str(e)) from e
    except Exception as e:  # noqa: BLE001 - locked / corrupt database
        raise LoadError(f"cannot read the scores database {settings.scores_db}: {_err_text(e)}") from e
    if scores.empty:
        raise LoadError(f"score set v{meta.get('version')} in {settings.scores_db} is empty")
    return build_score_set(meta, scores, history)


# ------------------------------------------------------------------------------------------- data
class DataContext:
    """The data source for forecasts and retention metrics: opened on first use, frames and results cached.

    Source objects hold one DuckDB connection, which is not safe to share between threads, so every use
    of the source is serialised by a lock; results are cached (LRU) per arguments.
    """

    def __init__(self, location: str | None, column_map: dict | None = None, cache_size: int = 64):
        self.location = location
        self.column_map = column_map or {}
        self.lock = threading.RLock()
        self._source = None
        self._frames: dict[str, pd.DataFrame] = {}
        self._data_end: date | None = None
        self._cache: OrderedDict = OrderedDict()
        self._cache_size = cache_size

    def source(self):
        if not self.location:
            raise DataUnavailable("no data source configured: start the server with `csforecast serve --data SRC` "
                                  "or set CSFORECAST_DATA")
        with self.lock:
            if self._source is None:
                from csforecast.data.sources import SourceError, open_source

                try:
                    self._source = open_source(self.location, self.column_map)
                except SourceError as e:
                    raise DataUnavailable(f"data source {self.location} cannot be opened: {e}") from e
                except Exception as e:  # noqa: BLE001
                    raise DataUnavailable(f"data source {self.location} cannot be opened: {_err_text(e)}") from e
            return self._source

    def frame(self, name: str) -> pd.DataFrame:
        with self.lock:
            if name not in self._frames:
                src = self.source()
                if not src.has(name):
                    raise DataUnavailable(f"data source {self.location} has no {name} table")
                try:
                    self._frames[name] = src.frame(name)
                except Exception as e:  # noqa: BLE001
                    raise DataUnavailable(f"cannot read {name} from {self.location}: {_err_text(e)}") from e
            return self._frames[name]

    def data_end(self) -> date:
        with self.lock:
            if self._data_end is None:
                from csforecast.features.snapshot import data_end

                try:
                    self._data_end = data_end(self.source())
                except DataUnavailable:
                    raise
                except Exception as e:  # noqa: BLE001
                    raise DataUnavailable(f"cannot find where the data in {self.location} ends: {_err_text(e)}") from e
            return self._data_end

    def data_hash(self) -> str | None:
        with self.lock:
            try:
                return self.source().data_hash
            except DataUnavailable:
                raise
            except Exception:  # noqa: BLE001
                return None

    def cached(self, key: tuple, compute: Callable[[], Any]) -> Any:
        with self.lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
            value = compute()
            self._cache[key] = value
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
            return value


# ------------------------------------------------------------------------------------------- state
@dataclass(frozen=True, eq=False)
class ServingState:
    generation: int
    models: ModelSet | None
    scores: ScoreSet | None
    churn: ChurnScorer | None
    data: DataContext
    problems: tuple[str, ...] = ()

    @property
    def ready(self) -> bool:
        return self.models is not None and self.churn is not None and self.scores is not None

    @property
    def versions(self) -> dict[str, str]:
        return dict(self.models.versions) if self.models else {}


def _health_columns(models: ModelSet) -> set[str]:
    est = models.estimators.get("health")
    names = getattr(est, "feature_names_in_", None) if est is not None else None
    return {str(c) for c in names} if names is not None else set()


def _scorer(models: ModelSet) -> ChurnScorer:
    try:
        return ChurnScorer(models.estimators["churn"], _health_columns(models))
    except Exception as e:  # noqa: BLE001
        raise LoadError(f"the churn model v{models.versions.get('churn')} cannot be used for scoring: "
                        f"{_err_text(e)}") from e


class StateHolder:
    """Owns the current ServingState; `reload` swaps in a complete new one or raises and keeps the old."""

    def __init__(self, settings, on_swap: Callable[[ServingState], None] | None = None):
        self.settings = settings
        self.current = ServingState(0, None, None, None, DataContext(settings.data, settings.column_map),
                                    ("not loaded yet",))
        self._reload_lock = threading.Lock()
        self._on_swap = on_swap

    def _swap(self, new: ServingState) -> None:
        self.current = new  # the single reference replacement; readers hold on to the object they took
        if self._on_swap:
            with contextlib.suppress(Exception):
                self._on_swap(new)

    def start(self) -> ServingState:
        """Initial load. Raises StartupError only when the registry is unreachable and nothing is cached."""
        s = self.settings
        problems: list[str] = []
        models = None
        try:
            models = load_models_from_registry(s)
            save_model_cache(s, models)
        except RegistryUnavailable as e:
            models = load_model_cache(s)
            if models is None:
                raise StartupError(f"{e}; and no cached model set at {Path(s.model_cache) / CACHE_FILE} to fall "
                                   "back to. Check MLFLOW_TRACKING_URI / CSFORECAST_HOME.") from e
            log.warning("%s; serving the CACHED model set %s saved at %s", e, models.versions,
                        models.loaded_at.isoformat())
            problems.append(f"degraded: serving the cached model set {models.versions} saved at "
                            f"{models.loaded_at.isoformat()} ({e})")
        except LoadError as e:
            log.error("no models loaded: %s", e)
            problems.append(str(e))
        scorer = None
        if models is not None:
            try:
                scorer = _scorer(models)
            except LoadError as e:
                problems.append(str(e))
        scores = None
        try:
            scores = load_score_set(s)
        except LoadError as e:
            log.error("no scores loaded: %s", e)
            problems.append(str(e))
        state = ServingState(1, models, scores, scorer, DataContext(s.data, s.column_map), tuple(problems))
        self._swap(state)
        if state.ready:
            log.info("serving models %s (%s) and score set v%s (%d accounts, as of %s)", models.versions,
                     models.source, scores.version, scores.n, scores.as_of)
        else:
            log.warning("started NOT READY: %s", "; ".join(problems))
        return state

    def reload(self) -> tuple[ServingState, ServingState]:
        """Load new champions + the latest score set; swap. Returns (new, old). Raises LoadError (old kept)."""
        s = self.settings
        with self._reload_lock:
            old = self.current
            models = load_models_from_registry(s)
            scorer = _scorer(models)
            scores = load_score_set(s)
            new = ServingState(old.generation + 1, models, scores, scorer, DataContext(s.data, s.column_map), ())
            self._swap(new)
        save_model_cache(s, models)
        return new, old


# ------------------------------------------------------------------------------------------- cursors
def encode_cursor(offset: int, score_set: int, query: str) -> str:
    raw = json.dumps({"o": offset, "v": score_set, "q": query}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(token: str) -> dict:
    """{"o": offset, "v": score set version, "q": query fingerprint}; ValueError when malformed."""
    if len(token) > 200:
        raise ValueError("cursor is too long")
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        d = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError) as e:
        raise ValueError("malformed cursor") from e
    if (not isinstance(d, dict) or not isinstance(d.get("o"), int) or isinstance(d.get("o"), bool)
            or not isinstance(d.get("v"), int) or not isinstance(d.get("q"), str) or not 0 <= d["o"] < 2 ** 31):
        raise ValueError("malformed cursor")
    return d


def query_fingerprint(*parts: Any) -> str:
    return hashlib.sha256(json.dumps([str(p) if p is not None else None for p in parts]).encode()).hexdigest()[:12]

