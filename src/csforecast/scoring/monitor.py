"""Monitoring what was served (docs/metrics.md, "Monitoring").

Two questions, answered at every `csforecast score` and read by `csforecast monitor`, `/metrics` and the
models page:

- **Calibration after the fact.** The churn probabilities served by earlier score sets are matched with the
  renewals that have since resolved in the data (the churn model's own label, `features.snapshot.add_labels`:
  the contracts due at the served renewal date were not renewed) and scored with
  :func:`csforecast.metrics.monitoring.calibration_monitor` — ECE, Brier and calibration slope overall, by
  segment and by horizon (days to renewal when served). A family is flagged when a scope with enough outcomes
  is past the configured ECE bound and its calibration in the large is off by more than 3 standard deviations.
- **Drift.** Each score set's feature and prediction distributions against its champion's training data (a
  sample of the decision rows it was fitted and validated on, logged with the model version as
  ``REFERENCE_ARTIFACT``): the population stability index per column, with a warning threshold.

Serve-time code: reads the scores store and MLflow artifacts, never training code.
"""
from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd

from csforecast.features.snapshot import add_labels
from csforecast.metrics.monitoring import calibration_monitor, psi_table
from csforecast.scoring import store as scores_store

__all__ = ["REFERENCE_ARTIFACT", "PREDICTION_COLUMN", "reference_sample", "resolved_outcomes", "drift_rows",
           "monitor_report"]

REFERENCE_ARTIFACT = "monitoring_reference.parquet"
PREDICTION_COLUMN = "churn_probability"
FAMILY = "churn"


def reference_sample(rows: pd.DataFrame, features: list[str], p: np.ndarray, n: int,
                     seed: int = 0) -> pd.DataFrame:
    """The drift reference a churn model version keeps: the numeric ``features`` of at most ``n`` of ``rows``
    (drawn without replacement with ``seed``) and the model's probability on them as ``churn_probability``.
    ValueError when ``p`` and ``rows`` differ in length."""
    if len(p) != len(rows):
        raise ValueError(f"{len(rows)} rows and {len(p)} probabilities")
    ref = rows[features].reset_index(drop=True).select_dtypes(include=["number", "bool"]).astype(float)
    ref[PREDICTION_COLUMN] = np.asarray(p, dtype=float)
    if len(ref) > n:
        ref = ref.sample(n=n, random_state=seed).reset_index(drop=True)
    return ref


def resolved_outcomes(served: pd.DataFrame, contracts: pd.DataFrame, end: date) -> pd.DataFrame:
    """The served rows (:func:`scores_store.served_probabilities`) whose renewal has resolved by ``end``, with
    ``churned`` (1.0 = the contracts due at ``renewal_date`` were not renewed). Rows whose renewal is on or
    after ``end``, or that no contract of the current data is due at (the data changed since), are left out."""
    cols = [*served.columns, "churned"]
    if served.empty:
        return pd.DataFrame(columns=cols)
    df = served.copy()
    df["as_of"] = pd.to_datetime(df["as_of"])
    df["renewal_date"] = pd.to_datetime(df["renewal_date"])
    c = contracts.copy()
    for col in ("start_date", "end_date"):
        c[col] = pd.to_datetime(c[col])
    due = c[["account_id", "end_date"]].drop_duplicates().rename(columns={"end_date": "renewal_date"})
    df = df.merge(due.assign(_due=True), on=["account_id", "renewal_date"], how="left")
    df = df[df.pop("_due").notna().to_numpy()]
    lab = add_labels(df[["account_id", "as_of", "renewal_date"]].drop_duplicates(), c, end)
    df = df.merge(lab[["account_id", "as_of", "renewal_date", "label_churn"]],
                  on=["account_id", "as_of", "renewal_date"], how="left")
    df = df[df["label_churn"].notna()].rename(columns={"label_churn": "churned"})
    return df[cols].reset_index(drop=True)


def drift_rows(reference: pd.DataFrame, current: pd.DataFrame, warning: float) -> pd.DataFrame:
    """PSI of every reference column present in ``current`` (``family``, ``column``, ``psi``, ``warning``,
    ``n`` = current rows), largest first."""
    columns = [c for c in reference.columns if c in current.columns]
    table = psi_table(reference, current, columns, warning=warning)
    rows = [{"family": FAMILY, "column": col, "psi": v["psi"], "warning": v["warning"], "n": int(len(current))}
            for col, v in table.items()]
    out = pd.DataFrame(rows, columns=["family", "column", "psi", "warning", "n"])
    return out.sort_values("psi", ascending=False, na_position="last").reset_index(drop=True)


def monitor_report(scores_db, settings) -> dict:
    """What `csforecast monitor`, `/metrics` and the models page show: per family the calibration of the
    probabilities served earlier against the outcomes resolved since (overall, ``by_segment``,
    ``by_horizon``, ``flagged`` scopes), the drift of the latest score set that measured it (PSI per column,
    the warnings; ``drift_score_set`` its version), and ``flagged_families``. StorageError when the store
    cannot be read."""
    cfg = settings.monitoring
    outcomes, drift, version = scores_store.load_monitoring(scores_db)
    fam: dict = {"calibration": None, "score_sets": 0, "drift": [], "psi_warnings": []}
    if not outcomes.empty:
        y = outcomes["churned"].to_numpy(float)
        p = outcomes["churn_probability"].to_numpy(float)
        # a renewal decision = the account and its renewal date, served in every monthly set before it
        decision = outcomes["account_id"].astype(str) + "@" + pd.to_datetime(outcomes["renewal_date"]).dt.strftime(
            "%Y-%m-%d")
        fam["calibration"] = calibration_monitor(y, p, segment=outcomes["segment"].to_numpy(object),
                                                 days_to_renewal=outcomes["days_to_renewal"].to_numpy(float),
                                                 decisions=decision.to_numpy(object), bound=cfg.ece_bound,
                                                 min_n=cfg.min_outcomes)
        fam["score_sets"] = int(outcomes["version"].nunique())
        fam["served_from"] = str(pd.Timestamp(outcomes["as_of"].min()).date())
        fam["served_to"] = str(pd.Timestamp(outcomes["as_of"].max()).date())
    if not drift.empty:
        fam["drift_score_set"] = int(drift["version"].iloc[0])
        d = drift[drift["family"] == FAMILY]
        fam["drift"] = [{"column": r.column, "psi": None if pd.isna(r.psi) else float(r.psi),
                         "warning": bool(r.warning)} for r in d.itertuples()]
        fam["psi_warnings"] = [r["column"] for r in fam["drift"] if r["warning"]]
    drifted = bool(fam["calibration"] and fam["calibration"]["drifted"])
    fam["drifted"] = drifted
    return {"score_set": version, "ece_bound": cfg.ece_bound, "min_outcomes": cfg.min_outcomes,
            "psi_warning": cfg.psi_warning, "families": {FAMILY: fam},
            "flagged_families": [FAMILY] if drifted else []}


def champion_reference(run_id: str | None) -> pd.DataFrame | None:
    """The drift reference logged with a churn model version's run (None for a version logged before
    monitoring existed, or when ``run_id`` is None)."""
    from csforecast.tracking.runs import run_table

    return None if run_id is None else run_table(run_id, REFERENCE_ARTIFACT)


def score_set_monitoring(source, scores_db, snapshot: pd.DataFrame | None, scores: pd.DataFrame,
                         reference: pd.DataFrame | None, settings) -> tuple[pd.DataFrame, pd.DataFrame]:
    """What a new score set records beside its scores: the outcomes resolved so far for every earlier set's
    probabilities (``source``'s contracts up to its data end) and the new set's drift rows against
    ``reference`` (none without one). ``snapshot`` and ``scores`` are row-aligned; without a ``snapshot``
    (scores computed elsewhere, e.g. on Spark, whose output carries no features) only the served probability's
    drift is measured."""
    from csforecast.features.snapshot import data_end

    served = scores_store.served_probabilities(scores_db)
    outcomes = resolved_outcomes(served, source.frame("contracts"), data_end(source))
    drift = pd.DataFrame(columns=["family", "column", "psi", "warning", "n"])
    if reference is not None and PREDICTION_COLUMN in scores:
        features = snapshot if snapshot is not None else pd.DataFrame(index=range(len(scores)))
        cols = [c for c in reference.columns if c in features.columns and c != PREDICTION_COLUMN]
        current = features[cols].reset_index(drop=True).apply(pd.to_numeric, errors="coerce")
        current[PREDICTION_COLUMN] = scores[PREDICTION_COLUMN].to_numpy(float)
        drift = drift_rows(reference, current, settings.monitoring.psi_warning)
    return outcomes, drift
