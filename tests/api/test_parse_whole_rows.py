"""`ChurnScorer.parse` reads whole rows a column at a time (`_parse_whole_rows`) and everything else value by value:
both must give the same matrix, levels and warnings, and every row the column reader cannot vouch for must go
to the value-by-value checks (which name errors and warnings)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from csforecast.api.errors import RowErrors
from csforecast.api.fastscore import ChurnScorer
from csforecast.models.churn import ChurnClassifier


class ValueByValue(ChurnScorer):
    """The reference: every request through the per-value checks."""

    def _parse_whole_rows(self, rows):
        return None


@pytest.fixture(scope="module")
def scorers():
    rng = np.random.default_rng(3)
    n = 600
    X = pd.DataFrame({"arr": rng.lognormal(10, 1, n), "seats": rng.integers(1, 200, n).astype(float),
                      "util": rng.uniform(0, 1, n), "segment": rng.choice(["SMB", "Mid-Market", "Enterprise"], n),
                      "region": rng.choice(["EMEA", "NA", "APAC"], n)})
    X.loc[rng.random(n) < 0.1, "util"] = np.nan
    y = (rng.random(n) < 1 / (1 + np.exp(-(X["util"].fillna(0.5) * 3 - 1.5)))).astype(int)
    est = ChurnClassifier(algorithm="lightgbm", n_estimators=30, early_stopping_rounds=10, n_jobs=1).fit(X, y)
    return ChurnScorer(est), ValueByValue(est)


def _same(a, b):
    np.testing.assert_array_equal(a.X, b.X)          # NaN equal to NaN, every bit of every number
    assert a.X.flags.c_contiguous and a.X.dtype == b.X.dtype
    assert a.raw_cat == b.raw_cat and a.warnings == b.warnings


def test_whole_rows_read_as_the_value_by_value_checks_read_them(scorers):
    fast, ref = scorers
    rows = [{"arr": 12000.5, "seats": 40, "util": None, "segment": "SMB", "region": None},
            {"region": "NA", "util": 0.25, "segment": None, "seats": 3.0, "arr": 1e300},
            {"arr": 0.0, "seats": -1.5, "util": 1.0, "segment": "Enterprise", "region": "APAC"}]
    assert fast._parse_whole_rows(rows) is not None
    _same(fast.parse(rows), ref.parse(rows))
    assert fast.predict(fast.parse(rows).X, fast.parse(rows).raw_cat).tolist() == \
        ref.predict(ref.parse(rows).X, ref.parse(rows).raw_cat).tolist()


@pytest.mark.parametrize("change", [
    {"util": True},                 # a boolean where a number is read
    {"seats": "40"},                # a numeric string: a type error
    {"util": float("nan")},         # non-finite numbers: 422s
    {"arr": float("inf")},
    {"arr": 10 ** 400},             # beyond float's range
    {"segment": "Startup"},         # an unknown level: a warning
    {"segment": 3.0},               # a number where a level is read
    {"extra": 1.0},                 # an unknown column
])
def test_anything_else_goes_to_the_value_by_value_checks(scorers, change):
    fast, ref = scorers
    rows = [{"arr": 1.0, "seats": 2.0, "util": 0.5, "segment": "SMB", "region": "NA"} for _ in range(3)]
    rows[1] = {**rows[1], **change}
    assert fast._parse_whole_rows(rows) is None
    try:
        want = ref.parse(rows)
    except RowErrors as e:
        with pytest.raises(RowErrors) as got:
            fast.parse(rows)
        assert got.value.errors == e.errors
    else:
        _same(fast.parse(rows), want)


def test_a_row_leaving_an_input_out_is_warned_as_before(scorers):
    fast, ref = scorers
    rows = [{"arr": 1.0, "seats": 2.0, "util": 0.5, "segment": "SMB", "region": "NA"}, {"arr": 5.0}]
    assert fast._parse_whole_rows(rows) is None
    _same(fast.parse(rows), ref.parse(rows))
    assert fast.parse(rows).warnings[1][0]["type"] == "missing_inputs"
