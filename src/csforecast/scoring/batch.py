"""Batch scoring: every active account, as of a date, with the champion model of each family.

Writes one versioned score set to the scores store atomically (see scoring/store.py). Families whose
champion does not exist are left out (their columns are absent), never filled with made-up values.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from importlib import import_module

import numpy as np
import pandas as pd

from csforecast.data.sources import Source
from csforecast.features.catalogue import top_drivers
from csforecast.features.snapshot import build_snapshots, data_end, feature_columns
from csforecast.tracking import store

TREND_WEEKS = 12
PROFILE_COLUMNS = ["account_id", "segment", "industry", "region", "arr", "seats", "renewal_date", "days_to_renewal",
                   "contract_id", "tenure_days"]


@dataclass
class Champions:
    estimators: dict          # family -> estimator
    versions: dict            # family -> version string

    @classmethod
    def load(cls, pinned: dict[str, str] | None = None) -> "Champions":
        est, ver = {}, {}
        pinned = pinned or {}
        for fam in ("churn", "survival", "health"):
            if fam in pinned:
                v = str(pinned[fam])
            else:
                mv = store.champion_version(fam)
                if mv is None:
                    continue
                v = str(mv.version)
            est[fam] = store.load_estimator(f"models:/{store.model_name(fam)}/{v}")
            ver[fam] = v
        return cls(est, ver)


def churn_columns(estimator, snap: pd.DataFrame, k: int = 5) -> pd.DataFrame:
    feats = list(estimator.feature_names_in_)
    X = snap[feats]
    p = estimator.predict_proba(X)[:, 1]
    contrib = estimator.explain(X)
    values = X.to_dict("records")
    c_records = contrib.drop(columns=["base_value"]).to_dict("records")
    drivers = [top_drivers(v, c, k) for v, c in zip(values, c_records)]
    return pd.DataFrame({"churn_probability": p, "churn_base_logit": contrib["base_value"].to_numpy(),
                         "churn_drivers": drivers}, index=snap.index)


def score_accounts(source: Source, champions: Champions, as_of: date | None = None,
                   with_history: bool = True) -> tuple[pd.DataFrame, pd.DataFrame | None, date]:
    as_of = as_of or data_end(source)
    snap = build_snapshots(source, [as_of], labels=False)
    if snap.empty:
        raise ValueError(f"no active accounts as of {as_of}")
    acc = source.frame("accounts").set_index("account_id")
    out = snap[[c for c in PROFILE_COLUMNS if c in snap.columns]].copy()
    out["as_of"] = pd.Timestamp(as_of)
    out["name"] = snap["account_id"].map(acc["name"])
    out["csm_id"] = snap["account_id"].map(acc["csm_id"]).astype(object).where(lambda s: s.notna(), None)
    if "churn" in champions.estimators:
        out = out.join(churn_columns(champions.estimators["churn"], snap))
        out["churn_model_version"] = champions.versions["churn"]
    if "survival" in champions.estimators:
        mod = import_module("csforecast.pipelines.survival")
        out = out.join(mod.score_survival(champions.estimators["survival"], snap))
        out["survival_model_version"] = champions.versions["survival"]
    history = None
    if "health" in champions.estimators:
        mod = import_module("csforecast.pipelines.health")
        est = champions.estimators["health"]
        out = out.join(mod.score_health(est, snap))
        out["health_model_version"] = champions.versions["health"]
        if with_history:
            weeks = [as_of - timedelta(weeks=w) for w in range(TREND_WEEKS, -1, -1)]
            hist_snap = build_snapshots(source, weeks, labels=False)
            history = mod.health_history(est, hist_snap)
    if "churn_probability" in out and "arr" in out:
        out["risk_arr"] = out["churn_probability"] * out["arr"]
    return out.reset_index(drop=True), history, as_of


def run_scoring(source: Source, scores_db, as_of: date | None = None, pinned: dict | None = None) -> dict:
    from csforecast.scoring.store import write_scores

    champs = Champions.load(pinned)
    if not champs.estimators:
        raise RuntimeError("no champion models in the registry: run `csforecast train --data …` first")
    scores, history, as_of = score_accounts(source, champs, as_of)
    version = write_scores(scores_db, scores, as_of=as_of, data_hash=source.data_hash, models=champs.versions,
                           history=history)
    return {"version": version, "as_of": str(as_of), "accounts": int(len(scores)), "models": champs.versions,
            "data_hash": source.data_hash, "scores_db": str(scores_db)}
