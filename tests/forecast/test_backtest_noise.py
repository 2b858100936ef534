"""The back-test's figure for how much interval coverage varies by chance (backtest._coverage_if_calibrated)."""
import numpy as np
import pandas as pd
import pytest

from csforecast.forecast.backtest import _coverage_if_calibrated


def _windows(quarters: int, seed: int = 0) -> pd.DataFrame:
    """Pending decisions of ``quarters`` quarters in three segments: a few large Enterprise renewals, more
    Mid-Market, many small SMB ones (the shape of the simulator's books)."""
    rng = np.random.default_rng(seed)
    rows = []
    for q in range(quarters):
        for seg, n, arr in (("Enterprise", 12, 150_000.0), ("Mid-Market", 60, 30_000.0), ("SMB", 300, 4_000.0)):
            rows.append(pd.DataFrame({"q": q, "seg": seg, "arr": arr * rng.lognormal(0, 0.5, n),
                                      "p_oracle": rng.beta(2, 12, n)}))
    return pd.concat(rows, ignore_index=True)


def test_calibrated_intervals_cover_80_percent_on_average():
    r = _coverage_if_calibrated(_windows(8), "p_oracle", seed=3, n=600)
    assert r["probabilities"] == "oracle" and r["windows"] == 8 * 4
    assert r["mean"] == pytest.approx(0.80, abs=0.02)
    assert r["p10"] <= r["mean"] <= r["p90"]


def test_coverage_noise_shrinks_with_more_windows():
    few = _coverage_if_calibrated(_windows(8), "p_oracle", seed=3, n=600)
    many = _coverage_if_calibrated(_windows(32), "p_oracle", seed=3, n=600)
    # 32 correlated intervals: about the binomial sd of 32 (0.07) or more; four times the windows: about half
    assert 0.06 <= few["sd"] <= 0.12
    assert many["sd"] == pytest.approx(few["sd"] / 2, rel=0.3)


def test_no_windows_no_figure():
    assert _coverage_if_calibrated(pd.DataFrame(columns=["q", "seg", "arr", "p_oracle"]),
                                   "p_oracle", seed=0) == {}
