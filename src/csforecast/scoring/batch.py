"""Batch scoring: every active account, as of a date, with the champion model of each family.

Writes one versioned score set to the scores store atomically (see scoring/store.py). Families whose
champion does not exist are left out (their columns are absent), never filled with made-up values.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
import pandas as pd

from csforecast.data.sources import Source
from csforecast.errors import UnavailableError
from csforecast.features.calls import latest_calls
from csforecast.features.snapshot import build_snapshots, data_end
from csforecast.scoring import families
from csforecast.scoring.process import all_calls
from csforecast.tracking import store

TREND_WEEKS = 12
CHUNK_ROWS = 100_000   # rows scored at a time in process (the models' working set grows with the rows)


class NoChampionsError(UnavailableError, RuntimeError):
    """No family has a champion model in the registry (train first)."""

PROFILE_COLUMNS = ["account_id", "segment", "industry", "region", "arr", "seats", "renewal_date", "days_to_renewal",
                   "contract_id", "tenure_days"]


@dataclass
class Champions:
    estimators: dict          # family -> estimator
    versions: dict            # family -> version string

    @classmethod
    def load(cls, pinned: dict[str, str] | None = None) -> "Champions":
        """The champion of every family in the registry (or the pinned version); families without one are
        left out. Champions come through ``tracking.champions`` (kept on disk until the registry changes), so a
        score also readies them for the commands that follow, e.g. ``csforecast forecast``."""
        from csforecast.tracking.champions import load_champion

        est, ver = {}, {}
        pinned = pinned or {}
        for fam in families.FAMILIES.values():
            if fam.name in pinned:
                v = str(pinned[fam.name])
                e = store.load_estimator(f"models:/{fam.model_name}/{v}")
            else:
                e, v = load_champion(fam.name)
                if e is None:
                    continue
            est[fam.name] = e
            ver[fam.name] = v
        return cls(est, ver)


ACCOUNT_COLUMNS = {"_name": "name", "_csm_id": "csm_id"}  # snapshot column -> score column, from accounts


def score_snapshot(snap: pd.DataFrame, champions: Champions, as_of: date,
                   chunk_rows: int = CHUNK_ROWS) -> pd.DataFrame:
    """Score snapshot rows with each family's champion (``Family.scorer``): the profile columns, ``as_of``,
    the account's ``name`` and ``csm_id`` (snapshot columns ``_name``/``_csm_id``), each family's columns
    with ``<family>_model_version`` beside them, and ``risk_arr``. Row-wise: any slice of the rows (a Spark
    partition) scores the same as the whole, so more than ``chunk_rows`` rows are scored a slice at a time
    (memory stays bounded by a slice's working set)."""
    if len(snap) > chunk_rows:
        return concat_slices([score_snapshot(snap.iloc[i:i + chunk_rows], champions, as_of, chunk_rows)
                              for i in range(0, len(snap), chunk_rows)])
    out = snap[[c for c in PROFILE_COLUMNS if c in snap.columns]].copy()
    out["as_of"] = pd.Timestamp(as_of)
    for col, name in ACCOUNT_COLUMNS.items():
        v = snap[col] if col in snap else pd.Series(None, index=snap.index, dtype=object)
        out[name] = v.astype(object).where(v.notna(), None)
    for fam in families.FAMILIES.values():
        est = champions.estimators.get(fam.name)
        if est is None or not all(c in out for c in fam.reads):
            continue
        rows = snap.join(out[list(fam.reads)]) if fam.reads else snap
        out = _beside(out, fam.scorer(est, rows))
        out[f"{fam.name}_model_version"] = champions.versions[fam.name]
    if "churn_probability" in out and "arr" in out:
        out["risk_arr"] = out["churn_probability"] * out["arr"]
    for fam in families.FAMILIES.values():
        if fam.serve is not None and fam.name in champions.estimators:
            out = fam.serve(out)
    return out


def _beside(out: pd.DataFrame, scored: pd.DataFrame) -> pd.DataFrame:
    """``out.join(scored)``: when both hold the same rows in the same order (a scorer keeps its rows' index),
    the scored columns are set in place (the join copied every column of ``out``, a slice at a time)."""
    if scored.index.equals(out.index) and not out.columns.intersection(scored.columns).size:
        for c in scored.columns:
            out[c] = scored[c].array
        return out
    return out.join(scored)


def concat_slices(parts: list[pd.DataFrame]) -> pd.DataFrame:
    """``pd.concat(parts)`` of scored slices (same columns, same dtypes in every part; the result equals
    pandas' to the element and dtype), with the object columns joined by ``np.concatenate``: pandas checks an
    object column that is None in a whole slice value by value (``name`` / ``csm_id`` without account
    columns: 1.6 s of 1.8 s to join ten 100,000-row slices, measured wall time), numpy copies references."""
    if len(parts) == 1:
        return parts[0]
    cols = list(parts[0].columns)
    objs = [c for c in cols if all(p[c].dtype == object for p in parts)]
    out = pd.concat([p.drop(columns=objs) for p in parts] if objs else parts)
    for c in objs:    # in column order, so each lands where it was
        out.insert(cols.index(c), c, np.concatenate([p[c].to_numpy() for p in parts]))
    return out


def history_weeks(as_of: date) -> list[date]:
    """The weekly as-of dates of the score set's history: TREND_WEEKS weeks back to as_of."""
    return [as_of - timedelta(weeks=w) for w in range(TREND_WEEKS, -1, -1)]


def active_snapshot(source: Source, as_of: date) -> pd.DataFrame:
    """The point-in-time snapshot of every active account as of ``as_of``, with the account's name and CSM
    (``_name``, ``_csm_id``). ValueError when no account is active then."""
    snap = build_snapshots(source, [as_of], labels=False)
    if snap.empty:
        raise ValueError(f"no active accounts as of {as_of}")
    acc = source.frame("accounts").set_index("account_id")
    snap["_name"] = snap["account_id"].map(acc["name"])
    snap["_csm_id"] = snap["account_id"].map(acc["csm_id"])
    return snap.join(latest_calls(all_calls(source), snap))


def score_accounts(source: Source, champions: Champions, as_of: date | None = None,
                   with_history: bool = True, progress=None, snapshot: pd.DataFrame | None = None
                   ) -> tuple[pd.DataFrame, pd.DataFrame | None, date]:
    """Every active account as of ``as_of`` (default: the data end), scored by each family's champion
    (`score_snapshot`), and the weekly history of the families that have one (the last TREND_WEEKS weeks).
    ``snapshot``: the :func:`active_snapshot` as of ``as_of`` when the caller has built it already (the scores
    keep its row order). ``progress(message)`` is told each step."""
    tell = progress or (lambda _m: None)
    as_of = as_of or data_end(source)
    if snapshot is None:
        tell(f"snapshot as of {as_of}")
        snapshot = active_snapshot(source, as_of)
    tell(f"scoring {len(snapshot):,} accounts")
    out = score_snapshot(snapshot, champions, as_of)
    history = None
    hist_fams = [f for f in families.FAMILIES.values() if f.history is not None and f.name in champions.estimators]
    if with_history and hist_fams:
        tell(f"weekly history ({TREND_WEEKS + 1} snapshots)")
        hist_snap = build_snapshots(source, history_weeks(as_of), labels=False)
        for fam in hist_fams:
            history = fam.history(champions.estimators[fam.name], hist_snap)
    return out.reset_index(drop=True), history, as_of


def load_champions(pinned: dict | None = None) -> Champions:
    """The champions (or pinned versions); NoChampionsError when there is none at all."""
    champs = Champions.load(pinned)
    if not champs.estimators:
        raise NoChampionsError("no champion models in the registry: run `csforecast train --data …` first")
    return champs


def monitoring_reference(champions: Champions) -> pd.DataFrame | None:
    """The drift reference logged by the churn champion's training run (None without a churn model, or for a
    version trained before references were logged)."""
    from csforecast.scoring import monitor

    if "churn" not in champions.versions:
        return None
    return monitor.champion_reference(store.model_version_run_id("churn", champions.versions["churn"]))


def run_scoring(source: Source, scores_db, as_of: date | None = None, pinned: dict | None = None,
                progress=None, forecasts: bool = False) -> dict:
    """Score every active account into a new score set of ``scores_db``; with ``forecasts``, then precompute
    the renewal forecasts of the next year that this score set determines (scoring/forecasts.py), so that a
    server loading it answers them at once."""
    from csforecast.config import get_settings
    from csforecast.scoring import monitor
    from csforecast.scoring.store import write_scores

    tell = progress or (lambda _m: None)
    settings = get_settings()
    tell("loading the champion models")
    champs = load_champions(pinned)
    as_of = as_of or data_end(source)
    tell(f"snapshot as of {as_of}")
    snap = active_snapshot(source, as_of)
    scores, history, as_of = score_accounts(source, champs, as_of, progress=tell, snapshot=snap)
    tell("monitoring: outcomes of earlier score sets, drift against the champion's training data")
    reference = monitoring_reference(champs)
    outcomes, drift = monitor.score_set_monitoring(source, scores_db, snap, scores, reference, settings)
    tell(f"writing the score set ({len(scores):,} accounts)")
    version = write_scores(scores_db, scores, as_of=as_of, data_hash=source.data_hash, models=champs.versions,
                           history=history, outcomes=outcomes, drift=drift)
    res = {"version": version, "as_of": str(as_of), "accounts": int(len(scores)), "models": champs.versions,
           "data_hash": source.data_hash, "scores_db": str(scores_db)}
    res["monitoring"] = {"resolved_outcomes": int(len(outcomes)), "psi_warnings": sorted(
        drift.loc[drift["warning"].astype(bool), "column"]) if len(drift) else []}
    if forecasts and "churn" in champs.estimators:
        from csforecast.forecast.renewals import dict_memo
        from csforecast.scoring.forecasts import precompute

        memo = dict_memo()      # the windows below, as of one date, share one expansion fit
        blend = ((champs.estimators["blend"], champs.versions["blend"]) if "blend" in champs.estimators else None)
        survival = ((champs.estimators["survival"], champs.versions["survival"])
                    if "survival" in champs.estimators else None)
        res["forecasts_precomputed"] = precompute(source, champs.estimators["churn"], champs.versions["churn"],
                                                  version, settings, progress=tell, blend=blend,
                                                  survival=survival, memo=memo)
        from csforecast.scoring.forecasts import freeze_quarters

        res["frozen_forecasts"] = freeze_quarters(source, champs.estimators["churn"], champs.versions["churn"],
                                                  version, settings, progress=tell, blend=blend,
                                                  survival=survival, memo=memo)
    return res
