"""Monitoring of what was served (scoring/monitor.py): earlier score sets' probabilities matched with the renewals
resolved since, stored with the next set; drift rows against a reference; the report read back from the store."""
from __future__ import annotations

from datetime import date
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from csforecast.config import MonitoringSettings
from csforecast.scoring.monitor import drift_rows, monitor_report, reference_sample, resolved_outcomes
from csforecast.scoring.store import load_monitoring, served_probabilities, write_scores

END = date(2025, 1, 1)


def _contracts() -> pd.DataFrame:
    rows = [  # contract_id, account, start, end, arr, renewed_by
        ("c1", "A", "2023-06-01", "2024-06-01", 100.0, "c1b"),    # A renewed on 2024-06-01
        ("c1b", "A", "2024-06-01", "2025-06-01", 110.0, None),    # … and its next renewal is after the data end
        ("c2", "B", "2023-09-01", "2024-09-01", 50.0, None),      # B churned on 2024-09-01
        ("c3", "C", "2024-03-01", "2025-03-01", 70.0, None),      # C renews after the data end: unresolved
    ]
    c = pd.DataFrame(rows, columns=["contract_id", "account_id", "start_date", "end_date", "arr", "renewed_by"])
    for col in ("start_date", "end_date"):
        c[col] = pd.to_datetime(c[col])
    return c


def _scores(as_of: str, renewals: dict[str, str], p: dict[str, float]) -> pd.DataFrame:
    ids = list(renewals)
    return pd.DataFrame({"account_id": ids, "segment": ["SMB"] * len(ids),
                         "renewal_date": pd.to_datetime([renewals[a] for a in ids]),
                         "days_to_renewal": [(pd.Timestamp(renewals[a]) - pd.Timestamp(as_of)).days for a in ids],
                         "churn_probability": [p[a] for a in ids], "churn_model_version": "3"})


def test_outcomes_resolve_only_decided_renewals():
    served = _scores("2024-04-01", {"A": "2024-06-01", "B": "2024-09-01", "C": "2025-03-01", "D": "2024-05-01"},
                     {"A": 0.2, "B": 0.7, "C": 0.4, "D": 0.5})
    served.insert(0, "as_of", pd.Timestamp("2024-04-01"))
    served.insert(0, "version", 1)
    out = resolved_outcomes(served, _contracts(), END)
    # C's renewal is after the data end; D's renewal date is no contract's end in the current data
    assert dict(zip(out["account_id"], out["churned"])) == {"A": 0.0, "B": 1.0}
    assert out.loc[out.account_id == "B", "churn_probability"].item() == 0.7
    assert resolved_outcomes(served.iloc[:0], _contracts(), END).empty


def test_store_round_trip_and_report(tmp_path):
    db = tmp_path / "scores.duckdb"
    settings = SimpleNamespace(monitoring=MonitoringSettings(min_outcomes=1))
    assert served_probabilities(db).empty and monitor_report(db, settings)["score_set"] is None
    first = _scores("2024-04-01", {"A": "2024-06-01", "B": "2024-09-01", "C": "2025-03-01"},
                    {"A": 0.2, "B": 0.7, "C": 0.4})
    write_scores(db, first, as_of="2024-04-01", data_hash="h", models={"churn": "3"})
    # the same date scored again counts once (its latest set)
    again = first.assign(churn_probability=[0.1, 0.8, 0.3])
    write_scores(db, again, as_of="2024-04-01", data_hash="h", models={"churn": "3"})
    served = served_probabilities(db)
    assert sorted(served["churn_probability"]) == [0.1, 0.3, 0.8] and set(served["version"]) == {2}
    outcomes = resolved_outcomes(served, _contracts(), END)
    ref = pd.DataFrame({"x": np.arange(200.0), "churn_probability": np.linspace(0, 1, 200)})
    cur = pd.DataFrame({"x": np.arange(200.0) + 150, "churn_probability": np.linspace(0, 1, 200)})
    drift = drift_rows(ref, cur, warning=0.2)
    assert list(drift["column"]) == ["x", "churn_probability"] and drift["warning"].tolist() == [True, False]
    v3 = write_scores(db, _scores("2024-12-01", {"C": "2025-03-01"}, {"C": 0.4}), as_of="2024-12-01",
                      data_hash="h", models={"churn": "3"}, outcomes=outcomes, drift=drift)
    stored, stored_drift, latest = load_monitoring(db)
    assert latest == v3 and len(stored) == 2 and set(stored_drift["version"]) == {v3}
    rep = monitor_report(db, settings)
    fam = rep["families"]["churn"]
    assert rep["score_set"] == v3 and fam["score_sets"] == 1
    cal = fam["calibration"]
    assert cal["overall"]["n"] == 2 and cal["overall"]["observed_rate"] == 0.5
    assert cal["overall"]["mean_p"] == pytest.approx((0.1 + 0.8) / 2)
    assert set(cal["by_segment"]) == {"SMB"} and set(cal["by_horizon"]) == {"31-90", "91-180"}
    assert fam["psi_warnings"] == ["x"] and [d["column"] for d in fam["drift"]] == ["x", "churn_probability"]


def test_reference_sample_keeps_numeric_features_and_the_prediction():
    rows = pd.DataFrame({"a": np.arange(10.0), "seg": list("xyxyxyxyxy"), "flag": [True, False] * 5})
    ref = reference_sample(rows, ["a", "seg", "flag"], np.full(10, 0.3), n=4, seed=1)
    assert list(ref.columns) == ["a", "flag", "churn_probability"] and len(ref) == 4
    assert (ref["churn_probability"] == 0.3).all()
    with pytest.raises(ValueError, match="10 rows and 3 probabilities"):
        reference_sample(rows, ["a"], np.zeros(3), n=4)
