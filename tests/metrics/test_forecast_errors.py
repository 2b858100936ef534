"""Forecast error metrics on hand-computed numbers."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from csforecast.metrics import wape
from csforecast.metrics.forecast_errors import bias, interval_coverage, mape

ACTUAL = [100.0, 200.0, 50.0, 0.0]
FORECAST = [110.0, 180.0, 50.0, 10.0]


def test_wape_by_hand():
    # |errors| = 10 + 20 + 0 + 10 = 40; sum|actual| = 350 -> 40/350
    assert wape(ACTUAL, FORECAST) == pytest.approx(40 / 350)
    assert wape([1, 2], [1, 2]) == 0.0
    assert math.isnan(wape([0, 0], [1, 2]))
    assert wape(pd.Series(ACTUAL, index=list("abcd")), np.array(FORECAST)) == pytest.approx(40 / 350)


def test_mape_skips_zero_actuals():
    # (10/100 + 20/200 + 0/50) / 3 = 0.2 / 3; the actual = 0 pair is skipped
    assert mape(ACTUAL, FORECAST) == pytest.approx(0.2 / 3)
    assert math.isnan(mape([0.0], [1.0]))


def test_bias_sign():
    # sum(f - a) = 10 - 20 + 0 + 10 = 0
    assert bias(ACTUAL, FORECAST) == pytest.approx(0.0)
    assert bias([100, 100], [120, 110]) == pytest.approx(30 / 200)     # over-forecast: positive
    assert bias([100, 100], [90, 80]) == pytest.approx(-30 / 200)


def test_nan_pairs_are_dropped():
    assert wape([100, np.nan, 50], [90, 10, np.nan]) == pytest.approx(10 / 100)


def test_interval_coverage_by_hand():
    actual = [10, 20, 30, 40, 50]
    lo = [5, 21, 30, 0, 51]
    hi = [15, 25, 35, 40, 60]
    # inside: 10 in [5,15] yes; 20 in [21,25] no; 30 in [30,35] yes (bound); 40 in [0,40] yes (bound); 50 no
    assert interval_coverage(actual, lo, hi) == pytest.approx(3 / 5)
    with pytest.raises(ValueError):
        interval_coverage([1], [2], [1])
    with pytest.raises(ValueError):
        interval_coverage([1, 2], [0], [3])


def test_length_mismatch():
    with pytest.raises(ValueError):
        wape([1, 2, 3], [1, 2])


def test_a_total_equal_to_a_bound_is_inside_whichever_order_summed_it():
    """The renewed ARR of a few renewals summed in another order than the draw that set the bound differs in
    its last bits; bounds are included, so it is inside either way (and a real miss stays a miss)."""
    from csforecast.metrics.forecast_errors import within_interval

    amounts = [0.1, 0.2, 0.3, 123_456.789, 98_765.4321, 1e-3]
    forward, backward = sum(amounts), sum(reversed(amounts))
    assert forward != backward                                  # the rounding this is about
    assert within_interval(forward, backward, backward + 10) and within_interval(backward, forward - 10, forward)
    assert not within_interval(forward - 1.0, forward, forward + 10)    # $1 short of $222k: a miss
    # in single precision, as the Monte Carlo sums its draws: a few parts in 10^7 off, which the CPU decides
    single = float(np.asarray(amounts, dtype=np.float32).sum(dtype=np.float32))
    assert single != forward
    assert within_interval(forward, single, 2 * forward) and within_interval(forward, 0.0, single)
    got = within_interval(np.array([forward, backward, 0.0]), np.full(3, backward), np.full(3, forward))
    assert got.tolist() == [True, True, False]
    assert interval_coverage([forward], [backward], [backward]) == 1.0
