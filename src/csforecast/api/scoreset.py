"""The served score set: every account's scores pre-serialised at load, with arrays for the list endpoint.

`load_score_set` builds one only when the store's latest score set is not the one already served.
account_id → JSON bytes of the detail response, plus the list items in row order and numpy arrays for the
list filters and sort keys (sort orders computed once per key and direction), so a detail lookup is a dict
lookup and a list page is numpy work. Built whole from the latest score set in the scores store; every row
is validated against the response models at load, so a bad row fails the load, not a request.
"""
from __future__ import annotations

import logging
import multiprocessing
import os
import threading
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
from pydantic import ValidationError

from csforecast.api.errors import LoadError
from csforecast.api.families import FAMILIES
from csforecast.features.catalogue import render_drivers
from csforecast.jsonsafe import error_text, iso_date, json_safe, jsonable
from csforecast.api.schemas import AccountDetail, AccountSummary

log = logging.getLogger("csforecast.api")

# natural direction of each sort key: the riskiest / most urgent accounts first
SORT_DESC = {"risk_arr": True, "churn_probability": True, "arr": True, "health_score": False, "renewal_date": False}


@dataclass(eq=False)
class ScoreSet:
    """One score set as served. Read-only once built (only the lazily computed sort orders are added)."""

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
    created_at: str = ""                       # when the score set was written (tells a replaced file apart)
    monitoring: dict = field(default_factory=dict)   # scoring.monitor.monitor_report as of this set
    _orders: dict = field(default_factory=dict)
    frame: pd.DataFrame | None = None          # PROCESS_COLUMNS: what work lists and disagreements read

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


# what every account response says about where its numbers come from (detail and list items alike)
PROVENANCE = ("model_versions", "fallback", "as_of", "data_hash", "score_set_version")
# the scorecard beside the health score, in the detail and the list items alike (null in older score sets)
SCORECARD_KEYS = ("outcomes_score", "experience_score", "health_quadrant", "health_band5")


def _whole(v) -> int | None:
    """A count of days as an integer (None stays None; a stored float 173.0 becomes 173)."""
    v = json_safe(v)
    return None if v is None else int(round(float(v)))


def build_score_set(meta: dict, scores: pd.DataFrame, history: pd.DataFrame,
                    monitoring: dict | None = None) -> ScoreSet:
    """Pre-serialise every account's detail and list item, validated against the response models."""
    version = int(meta["version"])
    as_of = iso_date(meta["as_of"])
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
            point = {"week": iso_date(rec["week"]), "health_score": json_safe(rec["health_score"])}
            point.update({c: json_safe(rec[c]) for c in extra})
            trend.setdefault(str(rec["account_id"]), []).append(point)
    has_surv = "p_active_90d" in cols or "expected_lifetime_days" in cols
    has_health = "health_score" in cols
    has_blend = "blend_probability" in cols
    records = scores.to_dict("records")
    details: dict[str, bytes] = {}
    items: list[bytes] = []
    for r in records:
        g = r.get
        aid = str(g("account_id"))
        versions = {fam: str(g(f"{fam}_model_version")) for fam in FAMILIES
                    if json_safe(g(f"{fam}_model_version")) is not None}
        d = {
            "account_id": aid, "name": json_safe(g("name")), "segment": json_safe(g("segment")), "industry": json_safe(g("industry")),
            "region": json_safe(g("region")), "csm_id": json_safe(g("csm_id")), "arr": json_safe(g("arr")), "seats": json_safe(g("seats")),
            "contract_id": json_safe(g("contract_id")), "tenure_days": _whole(g("tenure_days")),
            "renewal_date": iso_date(g("renewal_date")), "days_to_renewal": _whole(g("days_to_renewal")),
            "churn_probability": json_safe(g("churn_probability")), "churn_base_logit": json_safe(g("churn_base_logit")),
            "churn_probability_interval": _interval(g("churn_probability_p10"), g("churn_probability_p90")),
            "risk_arr": json_safe(g("risk_arr")), "drivers": json_safe(render_drivers(g("churn_drivers"))),
            "survival": None, "health": None, "triggers": None, "health_trend": trend.get(aid) if trend else None,
            "model_versions": versions or models, "as_of": as_of, "data_hash": data_hash,
            "fallback": {fam: str(g(f"{fam}_fallback")) for fam in FAMILIES if json_safe(g(f"{fam}_fallback"))},
            "score_set_version": version,
            "churn_probability_source": json_safe(g("churn_probability_source")),
            "call": _call_view(g) if has_blend else None,
        }
        if has_surv:
            d["survival"] = {"p_active_90d": json_safe(g("p_active_90d")), "p_active_180d": json_safe(g("p_active_180d")),
                             "p_active_365d": json_safe(g("p_active_365d")),
                             "expected_lifetime_days": json_safe(g("expected_lifetime_days")),
                             "p_renewal_survival": json_safe(g("p_renewal_survival")),
                             "contributions": json_safe(g("survival_contributions")),
                             "model_version": json_safe(g("survival_model_version"))}
        if has_health:
            d["health"] = {"score": json_safe(g("health_score")), "band": json_safe(g("health_band")),
                           "components": json_safe(g("health_components")) or [],
                           "model_version": json_safe(g("health_model_version"))}
            d["triggers"] = json_safe(g("triggers")) if "triggers" in cols else None
            d.update({k: json_safe(g(k)) for k in SCORECARD_KEYS})
        try:
            details[aid] = AccountDetail.model_validate(d).model_dump_json().encode()
            items.append(AccountSummary.model_validate(
                {k: d.get(k) for k in ("account_id", "name", "segment", "industry", "region", "csm_id", "arr",
                                       "renewal_date", "days_to_renewal", "churn_probability", "risk_arr",
                                       *PROVENANCE)}
                | {"health_score": json_safe(g("health_score")), "health_band": json_safe(g("health_band"))}
                | {k: d.get(k) for k in SCORECARD_KEYS}
            ).model_dump_json().encode())
        except ValidationError as e:
            raise LoadError(f"score set v{version}: account {aid} does not match the API schema: "
                            f"{error_text(e, 500)}") from e

    def col(name: str) -> np.ndarray:
        if name not in cols:
            return np.full(len(records), None, dtype=object)
        return np.array([json_safe(x) for x in scores[name]], dtype=object)

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
                    col("health_band"), renewal_day, sort_values, str(meta.get("created_at") or ""),
                    monitoring=monitoring or {}, frame=process_frame(scores))


PROCESS_COLUMNS = ("account_id", "name", "segment", "csm_id", "contract_id", "arr", "renewal_date", "days_to_renewal",
                   "churn_probability", "churn_probability_source", "model_churn_probability", "call_probability",
                   "blend_probability", "call_category", "call_csm_id", "called_at", "call_amount", "csm_bias",
                   "churn_drivers", "p_renewal_survival", "expected_lifetime_days", "p_active_90d",
                   "p_active_180d", "p_active_365d", "health_score", "risk_arr")


def process_frame(scores: pd.DataFrame) -> pd.DataFrame:
    """The score-set columns the forecast-process endpoints read (work lists, disagreements), as a frame."""
    return scores[[c for c in PROCESS_COLUMNS if c in scores.columns]].reset_index(drop=True).copy()


def _call_view(g) -> dict:
    p_model = g("model_churn_probability")
    return {"p_model": json_safe(p_model if json_safe(p_model) is not None else g("churn_probability")),
            "p_call": json_safe(g("call_probability")), "p_blend": json_safe(g("blend_probability")),
            "category": json_safe(g("call_category")), "csm_id": json_safe(g("call_csm_id")),
            "called_at": iso_date(g("called_at")),
            "amount": json_safe(g("call_amount")), "csm_bias": json_safe(g("csm_bias"))}


def same_score_set(scores: ScoreSet | None, run: dict) -> bool:
    """Whether ``scores`` is the score set that ``run`` (a row of score_runs) describes."""
    return (scores is not None and scores.version == int(run["version"]) and scores.data_hash == str(
        run.get("data_hash") or "") and scores.created_at == str(run.get("created_at") or ""))


def load_score_set(settings, previous: ScoreSet | None = None) -> ScoreSet:
    """The latest score set of ``settings.scores_db``, built; ``previous`` itself when it is still the latest
    (one small query instead of re-serialising every account). LoadError when missing, unreadable or empty."""
    from csforecast.scoring.store import latest_run, load_latest

    try:
        if previous is not None and same_score_set(previous, latest_run(settings.scores_db)):
            return previous
        meta, scores, history = load_latest(settings.scores_db)
    except FileNotFoundError as e:
        raise LoadError(str(e)) from e
    except Exception as e:  # noqa: BLE001 - locked / corrupt database
        raise LoadError(f"cannot read the scores database {settings.scores_db}: {error_text(e)}") from e
    if scores.empty:
        raise LoadError(f"score set v{meta.get('version')} in {settings.scores_db} is empty")
    return build_score_set(meta, scores, history, _monitoring(settings))


def _monitoring(settings) -> dict:
    """The monitoring report served with the set (scoring/monitor.py); a store whose monitoring tables cannot
    be read serves its scores all the same, with the reason in ``error``."""
    from csforecast.scoring.monitor import monitor_report

    try:
        return jsonable(monitor_report(settings.scores_db, settings))
    except Exception as e:  # noqa: BLE001 - monitoring is reported beside the scores, never blocks them
        log.warning("monitoring report unavailable: %s", error_text(e))
        return {"error": f"monitoring report unavailable: {error_text(e)}"}


def _interval(lo, hi) -> list[float] | None:
    """[P10, P90] of a served churn probability, or None when the score set has none (older models)."""
    lo, hi = json_safe(lo), json_safe(hi)
    return [lo, hi] if lo is not None and hi is not None else None


# ------------------------------------------------------------------------------------------ built apart
# Building a score set is seconds of pure-Python work (every account validated and serialised). Done on a
# thread of the server it holds the GIL against the event loop, and every request in flight waits: so a
# reload builds it in one long-lived helper process at a lower CPU priority (`BUILD_NICENESS`), and the
# server only unpickles the result (bytes and arrays: milliseconds). Where no helper process can be started
# the build falls back to this process, with a warning.
BUILD_NICENESS = 10
_builder: ProcessPoolExecutor | None = None
_builder_lock = threading.Lock()


def _lower_priority(server_pid: int) -> None:
    """Initializer of the helper process: lower CPU priority, and exit when the server (`server_pid`, passed in:
    a server stopped while the helper still imports is gone before this runs, and its parent is then already
    init) is gone: a server killed or stopped without shutting the pool down must not leave its helper behind."""
    try:
        os.nice(BUILD_NICENESS)
    except OSError:
        pass

    def watch() -> None:
        import time

        while os.getppid() == server_pid:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _build_at(scores_db: str, monitoring: dict) -> ScoreSet:
    """In the helper process: the latest score set of ``scores_db``, built (LoadError as load_score_set), with
    the monitoring report under the ``monitoring`` settings (their dict)."""
    from csforecast.config import MonitoringSettings

    return load_score_set(SimpleNamespace(scores_db=Path(scores_db), monitoring=MonitoringSettings(**monitoring)))


def _builder_pool() -> ProcessPoolExecutor:
    global _builder
    with _builder_lock:
        if _builder is None:
            _builder = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"),
                                           initializer=_lower_priority, initargs=(os.getpid(),))
        return _builder


def warm_builder() -> None:
    """Start the helper process now (its imports take seconds), without waiting for it."""
    try:
        _builder_pool().submit(int)
    except Exception as e:  # noqa: BLE001 - the first reload will build in process instead
        log.warning("no helper process for score-set builds (%s): reloads build them in the server", e)


def shutdown_builder() -> None:
    global _builder
    with _builder_lock:
        if _builder is not None:
            _builder.shutdown(wait=False, cancel_futures=True)
            _builder = None


def load_score_set_apart(settings, previous: ScoreSet | None = None) -> ScoreSet:
    """As `load_score_set`, but a score set that must be built is built in the helper process. The cheap
    "still the latest?" check runs here. LoadError as `load_score_set`."""
    from csforecast.scoring.store import latest_run

    try:
        if previous is not None and same_score_set(previous, latest_run(settings.scores_db)):
            return previous
    except Exception:  # noqa: BLE001 - load_score_set says what is wrong with the file
        pass
    try:
        future = _builder_pool().submit(_build_at, str(settings.scores_db), settings.monitoring.model_dump())
    except Exception as e:  # noqa: BLE001 - no helper process (fork refused, shut down): build here
        log.warning("no helper process for the score-set build (%s): building it in the server", e)
        return load_score_set(settings)
    try:
        return future.result()
    except LoadError:
        raise
    except Exception as e:  # noqa: BLE001 - the helper died (killed, out of memory): build here, once
        log.warning("the score-set helper process failed (%s): building it in the server", error_text(e))
        shutdown_builder()
        return load_score_set(settings)
