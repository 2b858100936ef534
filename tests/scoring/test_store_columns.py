"""The scores store takes score sets with new columns (additive schema): older sets read them as NULL; the
drivers of sets written before they were kept compact still read."""
from __future__ import annotations

import json

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


def test_drivers_of_score_sets_written_before_they_were_compact_still_read(tmp_path):
    """A store written by an earlier release holds each driver rendered (a dict with its words); a new set holds
    them compact. Both read back, through the one rendering every reader uses, as the same drivers, and the
    API's score set (api.scoreset.build_score_set) serves both."""
    from csforecast.api.scoreset import build_score_set
    from csforecast.features.catalogue import compact_drivers_rows, render_drivers
    from csforecast.scoring.worklist import reasons

    X = pd.DataFrame({"seat_utilisation_90d": [0.38, float("nan")], "seats": [12, 40]})
    compact = compact_drivers_rows(X, [[0.9, -0.31], [0.0, 0.2]], list(X.columns), k=5)
    rendered = [render_drivers(r) for r in compact]
    assert rendered[1][1] == {"feature": "seat_utilisation_90d", "value": None, "contribution": 0.0,
                              "text": rendered[1][1]["text"], "component": "Deployment",
                              "lever": rendered[1][1]["lever"]} and "none recorded" in rendered[1][1]["text"]
    path = tmp_path / "scores.duckdb"
    frame = pd.DataFrame({"account_id": ["A", "B"], "churn_probability": [0.2, 0.4], "arr": [1e4, 2e4],
                          "renewal_date": pd.to_datetime(["2026-03-01", "2026-04-01"])})
    for drivers in (rendered, compact):               # the earlier release's format, then this one's
        version = store.write_scores(path, frame.assign(churn_drivers=drivers), as_of="2026-01-01",
                                     data_hash="h1", models={"churn": "1"})
        meta, scores, _ = store.load_latest(path)
        assert meta["version"] == version
        assert [render_drivers(d) for d in scores["churn_drivers"]] == rendered
        assert [reasons(d) for d in scores["churn_drivers"]] == [reasons(d) for d in rendered]
        served = build_score_set(meta, scores, pd.DataFrame())
        assert [json.loads(served.details[a])["drivers"] for a in ("A", "B")] == rendered
