"""The scores store takes score sets with new columns (additive schema): older sets read them as NULL."""
from __future__ import annotations

import duckdb
import pandas as pd

from csforecast.scoring import store


def test_new_columns_are_added_and_older_sets_read_null(tmp_path):
    path = tmp_path / "scores.duckdb"
    store.write_scores(path, pd.DataFrame({"account_id": ["A", "B"], "churn_probability": [0.2, 0.4]}),
                       as_of="2026-01-01", data_hash="h1", models={})
    v2 = store.write_scores(path, pd.DataFrame({"account_id": ["A"], "churn_probability": [0.3],
                                                "churn_probability_p10": [0.25], "churn_probability_p90": [0.36]}),
                            as_of="2026-02-01", data_hash="h1", models={})
    rows = duckdb.connect(str(path), read_only=True).execute(
        "SELECT version, account_id, churn_probability_p10, churn_probability_p90 FROM scores "
        "ORDER BY version, account_id").fetchall()
    assert rows == [(1, "A", None, None), (1, "B", None, None), (v2, "A", 0.25, 0.36)]
