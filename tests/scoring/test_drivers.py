"""The vectorised drivers of batch scoring (`catalogue.top_drivers_rows`) are `top_drivers`, row for row:
the same features in the same order (ties in feature order, NaN contributions left out), values, rounding and
words. A score set keeps them compact (`compact_drivers_rows`) and every reader renders them with
`render_drivers`: the same dicts after the store's JSON round trip, and score sets written before (rendered
dicts) read as they were."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd

from csforecast.features.catalogue import compact_drivers_rows, render_drivers, top_drivers, top_drivers_rows


def test_rows_equal_row_by_row():
    rng = np.random.default_rng(3)
    n = 400
    X = pd.DataFrame({
        "seat_utilisation": rng.uniform(0, 1, n),
        "tickets_90d": rng.integers(0, 9, n),
        "segment": rng.choice(["SMB", "Mid-Market", "Enterprise"], n).astype(object),
        "auto_renew": rng.integers(0, 2, n).astype(bool),
        "nps_latest": np.where(rng.uniform(size=n) < 0.3, np.nan, rng.integers(0, 11, n)),
        "arr": rng.lognormal(10, 1, n),
        "unknown_feature": rng.normal(size=n),
    })
    C = rng.normal(size=(n, X.shape[1]))
    C[rng.uniform(size=C.shape) < 0.15] = np.nan              # missing contributions are left out
    C[:50, 1] = C[:50, 2] = C[:50, 4] = 0.25                   # ties keep the feature order
    C[50:60] = np.nan                                          # rows with no driver at all
    features = list(X.columns)
    got = top_drivers_rows(X, C, features, k=5)
    values = X.to_dict("records")
    want = [top_drivers(v, dict(zip(features, c)), 5) for v, c in zip(values, C)]
    assert got == want
    assert got[55] == [] and len(got[0]) == 5 and got[0][0]["contribution"] == round(float(C[0][np.nanargmax(np.abs(C[0]))]), 4)
    assert top_drivers_rows(X.iloc[:0], C[:0], features) == []
    floats = [j for j, f in enumerate(features) if X[f].dtype.kind == "f"]   # every column a float one
    fl = [features[j] for j in floats]
    assert top_drivers_rows(X[fl], C[:, floats], fl, k=3) == [
        top_drivers(v, dict(zip(fl, c)), 3) for v, c in zip(X[fl].to_dict("records"), C[:, floats])]


def test_compact_drivers_render_to_the_same_words_after_the_store_round_trip():
    rng = np.random.default_rng(5)
    n, m = 300, 40                                             # more features than drivers: the partial sort
    X = pd.DataFrame({f"f{j}": rng.normal(size=n) for j in range(m)})
    X["seat_utilisation_90d"] = rng.uniform(0, 1, n)
    X["seats"] = rng.integers(1, 500, n)
    X["segment"] = rng.choice(["SMB", "Enterprise"], n).astype(object)
    X.loc[X.index[:20], "seat_utilisation_90d"] = np.nan
    features = list(X.columns)
    C = rng.normal(size=(n, len(features)))
    C[:, -2] = np.where(np.arange(n) % 3 == 0, 20.0, C[:, -2])  # the int column chosen often
    C[:, -1] = np.where(np.arange(n) % 4 == 0, -20.0, C[:, -1])
    C[:40, [3, 7, 11, 20, 30, 35]] = 9.0                      # six tied at the top: the 5th place is a tie
    C[40:80, [2, 4]] = 9.0
    C[40:80, [5, 6, 8, 9]] = 5.0                               # a tie across the k-th place
    C[80:90, :] = np.nan
    C[80:90, [1, 2]] = [0.004999999, -0.3]                    # fewer usable contributions than k
    values = X.to_dict("records")
    want = [top_drivers(v, dict(zip(features, c)), 5) for v, c in zip(values, C)]
    compact = compact_drivers_rows(X, C, features, k=5)
    assert [render_drivers(r) for r in compact] == want
    stored = [json.dumps(r, default=str) for r in compact]   # what the scores store writes, and reads back
    assert [render_drivers(json.loads(s)) for s in stored] == want
    assert [render_drivers(s) for s in stored] == want       # JSON text straight from a frame
    assert [len(r) for r in compact[80:90]] == [6] * 10
    assert all(isinstance(r[1], int) for r, i in zip(compact, range(n)) if i % 3 == 0 and i >= 90)
    assert compact[1][0] == "f3" and compact[41][0:6:3] == ["f2", "f4"]


def test_render_reads_score_sets_written_before_and_nothing_as_no_drivers():
    old = [{"feature": "seats", "value": 12, "contribution": 0.4123, "component": "Account profile",
            "lever": "review", "text": "seats 12 (+0.41 log-odds; associated with higher churn risk)"}]
    assert render_drivers(old) == old
    assert render_drivers(json.dumps(old)) == old
    for nothing in (None, float("nan"), "", "not json", 3):
        assert render_drivers(nothing) == []
