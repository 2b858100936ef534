"""The vectorised drivers of batch scoring (`catalogue.top_drivers_rows`) are `top_drivers`, row for row:
the same features in the same order (ties in feature order, NaN contributions left out), values, rounding and
words."""
from __future__ import annotations

import numpy as np
import pandas as pd

from csforecast.features.catalogue import top_drivers, top_drivers_rows


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
