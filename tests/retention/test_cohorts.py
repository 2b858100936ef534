"""Tests for csforecast.retention.cohorts (spells, KM cohort curves, ARR weighting, plots)."""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from lifelines import KaplanMeierFitter

from csforecast.retention import cohort_curves
from csforecast.retention.cohorts import plot_cohort_curves, spells_from_contracts

DATA_END = "2024-12-31"


# ---------------------------------------------------------------------------
# spells_from_contracts
# ---------------------------------------------------------------------------
@pytest.fixture()
def tables():
    accounts = pd.DataFrame({
        "account_id": ["A", "B", "C", "D", "E", "F", "G", "H", "I", "Z"],
        "name": [f"Acct {x}" for x in "ABCDEFGHIZ"],
        "segment": ["smb", "smb", "ent", "mid", "smb", "ent", "mid", "smb", "smb", "ent"],
        "industry": "saas", "region": "EU", "csm_id": "csm1",
        "created_at": pd.Timestamp("2021-06-01"),
    })
    rows = [
        # A: renews once, then churns at the end of the second contract
        ("a1", "A", "2022-01-01", "2023-01-01", 100.0, "a2"),
        ("a2", "A", "2023-01-01", "2024-01-01", 120.0, None),
        # B: renews twice, still active at data_end
        ("b1", "B", "2022-03-01", "2023-03-01", 50.0, "b2"),
        ("b2", "B", "2023-03-01", "2024-03-01", 50.0, "b3"),
        ("b3", "B", "2024-03-01", "2025-03-01", 60.0, None),
        # C: base + add-on at start; base not renewed, but an overlapping add-on runs longer
        ("c1", "C", "2023-06-01", "2024-06-01", 1000.0, None),
        ("c2", "C", "2023-06-01", "2023-12-01", 200.0, None),
        ("c3", "C", "2023-09-01", "2024-09-01", 300.0, None),
        # D: single still-active contract
        ("d1", "D", "2024-05-01", "2025-05-01", 10.0, None),
        # E: first contract starts after data_end -> not a customer yet
        ("e1", "E", "2025-01-15", "2026-01-15", 5.0, None),
        # F: last contract ended but a successor is recorded (booked after data_end) -> censored
        ("f1", "F", "2023-12-01", "2024-12-01", 70.0, "f2"),
        ("f2", "F", "2025-02-01", "2026-02-01", 70.0, None),
        # G: open-ended contract (no end_date) -> censored
        ("g1", "G", "2022-07-01", None, 40.0, None),
        # H: churned, won back after a gap, churned again -> one spell to the final churn
        ("h1", "H", "2021-01-01", "2022-01-01", 30.0, None),
        ("h2", "H", "2022-06-01", "2023-06-01", 35.0, None),
        # I: ends exactly on data_end without renewal -> churned on data_end
        ("i1", "I", "2024-01-01", "2024-12-31", 80.0, None),
    ]
    contracts = pd.DataFrame(rows, columns=["contract_id", "account_id", "start_date", "end_date", "arr",
                                            "renewed_by"])
    contracts["seats"] = 10.0
    contracts["auto_renew"] = True
    contracts["churn_reason"] = None
    return contracts, accounts


def _days(a, b):
    return (pd.Timestamp(b) - pd.Timestamp(a)).days


def test_spells_from_contracts(tables):
    contracts, accounts = tables
    s = spells_from_contracts(contracts, accounts, DATA_END).set_index("account_id")
    assert set(s.index) == set("ABCDFGHI")  # E not a customer yet, Z has no contracts
    expect = {
        #    start         churn          event  duration                              arr
        "A": ("2022-01-01", "2024-01-01", 1, _days("2022-01-01", "2024-01-01"), 100.0),
        "B": ("2022-03-01", None, 0, _days("2022-03-01", DATA_END), 50.0),
        "C": ("2023-06-01", "2024-09-01", 1, _days("2023-06-01", "2024-09-01"), 1200.0),
        "D": ("2024-05-01", None, 0, _days("2024-05-01", DATA_END), 10.0),
        "F": ("2023-12-01", None, 0, _days("2023-12-01", DATA_END), 70.0),
        "G": ("2022-07-01", None, 0, _days("2022-07-01", DATA_END), 40.0),
        "H": ("2021-01-01", "2023-06-01", 1, _days("2021-01-01", "2023-06-01"), 30.0),
        "I": ("2024-01-01", "2024-12-31", 1, _days("2024-01-01", "2024-12-31"), 80.0),
    }
    for acc, (start, churn, event, duration, arr) in expect.items():
        row = s.loc[acc]
        assert row["start_date"] == pd.Timestamp(start), acc
        assert (pd.isna(row["churn_date"]) if churn is None else row["churn_date"] == pd.Timestamp(churn)), acc
        assert row["event"] == event, acc
        assert row["duration"] == duration, acc
        assert row["arr"] == arr, acc
        assert row["cohort"] == start[:4], acc
    assert s.loc["C", "n_contracts"] == 3
    assert s.loc["A", "segment"] == "smb" and s.loc["C", "segment"] == "ent"
    assert {"name", "segment", "industry", "region", "csm_id"} <= set(s.columns)
    assert s["event"].dtype.kind == "i" and s["duration"].dtype.kind == "i"


def test_spells_as_of_earlier_date(tables):
    """Point-in-time: as of 2023-06-30, A is active (renewed), C has not started, H churned."""
    contracts, accounts = tables
    s = spells_from_contracts(contracts, accounts, "2023-06-30").set_index("account_id")
    assert "C" in s.index  # C starts 2023-06-01
    assert s.loc["A", "event"] == 0 and s.loc["A", "duration"] == _days("2022-01-01", "2023-06-30")
    assert s.loc["H", "event"] == 1
    assert "D" not in s.index and "I" not in s.index


def test_spells_quarter_cohorts(tables):
    contracts, accounts = tables
    s = spells_from_contracts(contracts, accounts, DATA_END, cohort_freq="quarter").set_index("account_id")
    assert s.loc["C", "cohort"] == "2023Q2" and s.loc["A", "cohort"] == "2022Q1"


def test_spells_validation(tables):
    contracts, accounts = tables
    bad = contracts.copy()
    bad.loc[0, "end_date"] = "2021-12-01"
    with pytest.raises(ValueError, match="end_date <= start_date"):
        spells_from_contracts(bad, accounts, DATA_END)
    with pytest.raises(ValueError, match="missing columns"):
        spells_from_contracts(contracts.drop(columns="renewed_by"), accounts, DATA_END)
    empty = spells_from_contracts(contracts, accounts, "2000-01-01")
    assert len(empty) == 0 and "duration" in empty.columns


def test_spells_feed_cohort_curves(tables):
    contracts, accounts = tables
    s = spells_from_contracts(contracts, accounts, DATA_END)
    curves = cohort_curves(s, by="cohort")
    assert list(curves.columns) == ["group", "time", "survival", "ci_low", "ci_high", "at_risk"]
    assert set(curves["group"]) == set(s["cohort"])


# ---------------------------------------------------------------------------
# cohort_curves against lifelines
# ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def spells():
    rng = np.random.default_rng(11)
    n = 600
    cohort = rng.choice(["2022", "2023", "2024"], n)
    segment = rng.choice(["smb", "ent"], n)
    scale = np.where(segment == "ent", 900.0, 400.0)
    churn = rng.exponential(scale).round()
    follow = {"2022": 1000, "2023": 640, "2024": 270}
    censor = np.array([follow[c] for c in cohort], dtype=float)
    duration = np.minimum(churn, censor)
    event = (churn <= censor).astype(int)
    arr = np.round(rng.lognormal(10, 1, n), 2)
    return pd.DataFrame({"duration": duration, "event": event, "cohort": cohort, "segment": segment,
                         "arr": arr})


def _lifelines(sub, alpha=0.05, weights=None):
    kmf = KaplanMeierFitter(alpha=alpha)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        kmf.fit(sub["duration"], sub["event"], weights=weights)
    return kmf


@pytest.mark.parametrize("alpha", [0.05, 0.10])
def test_cohort_curves_match_lifelines(spells, alpha):
    curves = cohort_curves(spells, by="cohort", alpha=alpha)
    assert list(curves["group"].unique()) == ["2022", "2023", "2024"]
    for g, sub in spells.groupby("cohort"):
        kmf = _lifelines(sub, alpha)
        got = curves[curves["group"] == g].reset_index(drop=True)
        np.testing.assert_allclose(got["time"], kmf.survival_function_.index)
        np.testing.assert_allclose(got["survival"], kmf.survival_function_.iloc[:, 0])
        np.testing.assert_allclose(got["ci_low"], kmf.confidence_interval_.iloc[:, 0])
        np.testing.assert_allclose(got["ci_high"], kmf.confidence_interval_.iloc[:, 1])
        np.testing.assert_array_equal(got["at_risk"], kmf.event_table["at_risk"].to_numpy())
        assert (got["ci_low"] <= got["survival"] + 1e-12).all()
        assert (got["survival"] <= got["ci_high"] + 1e-12).all()


def test_cohort_curves_on_time_grid(spells):
    grid = [0, 30, 90, 180, 365, 730, 900]
    curves = cohort_curves(spells, by="cohort", times=grid)
    assert len(curves) == 3 * len(grid)
    for g, sub in spells.groupby("cohort"):
        kmf = _lifelines(sub)
        got = curves[curves["group"] == g].set_index("time")
        inside = [t for t in grid if t <= sub["duration"].max()]
        np.testing.assert_allclose(got.loc[inside, "survival"], kmf.survival_function_at_times(inside))
        ci = kmf.confidence_interval_
        for t in inside:
            row = ci[ci.index <= t].iloc[-1]
            assert got.loc[t, "ci_low"] == pytest.approx(row.iloc[0])
            assert got.loc[t, "ci_high"] == pytest.approx(row.iloc[1])
            assert got.loc[t, "at_risk"] == int((sub["duration"] >= t).sum())
        beyond = [t for t in grid if t > sub["duration"].max()]
        assert got.loc[beyond, "survival"].isna().all()  # not estimable after follow-up ends


def test_cohort_curves_all_and_multiple_by(spells):
    allc = cohort_curves(spells)
    assert set(allc["group"]) == {"all"}
    kmf = _lifelines(spells)
    np.testing.assert_allclose(allc["survival"], kmf.survival_function_.iloc[:, 0])
    two = cohort_curves(spells, by=["cohort", "segment"])
    assert "2023 / ent" in set(two["group"]) and two["group"].nunique() == 6


def test_arr_weighted_curve(spells):
    w = cohort_curves(spells, by="segment", weight="arr")
    assert "at_risk_weight" in w.columns
    for g, sub in spells.groupby("segment"):
        kmf = _lifelines(sub, weights=sub["arr"])
        got = w[w["group"] == g].reset_index(drop=True)
        np.testing.assert_allclose(got["survival"], kmf.survival_function_.iloc[:, 0])
        np.testing.assert_array_equal(got["at_risk"], [int((sub["duration"] >= t).sum()) for t in got["time"]])
        np.testing.assert_allclose(got["at_risk_weight"],
                                   [sub.loc[sub["duration"] >= t, "arr"].sum() for t in got["time"]])
        assert (got["ci_low"] <= got["survival"] + 1e-12).all()
        assert (got["survival"] <= got["ci_high"] + 1e-12).all()
        # the band is not the (absurdly narrow) dollars-as-subjects Greenwood band
        mid = got[(got["survival"] < 0.9) & (got["survival"] > 0.3)]
        assert ((mid["ci_high"] - mid["ci_low"]) > 0.02).all()


def test_weighted_band_reduces_to_greenwood_and_is_scale_free(spells):
    eq = spells.assign(arr=1234.5)
    a = cohort_curves(eq, by="cohort")
    b = cohort_curves(eq, by="cohort", weight="arr")
    for col in ("survival", "ci_low", "ci_high", "at_risk"):
        np.testing.assert_allclose(b[col], a[col], rtol=1e-10, atol=1e-12)
    c = cohort_curves(spells, weight="arr")
    d = cohort_curves(spells.assign(arr=spells["arr"] * 1000), weight="arr")
    np.testing.assert_allclose(c[["survival", "ci_low", "ci_high"]], d[["survival", "ci_low", "ci_high"]],
                               rtol=1e-9)


def test_weighted_band_width_matches_bootstrap(spells):
    """The robust band's implied standard error is close to a bootstrap over accounts."""
    sub = spells[spells["segment"] == "ent"]
    t = 300.0
    curve = cohort_curves(sub, weight="arr", times=[t]).iloc[0]
    rng = np.random.default_rng(3)
    boots = []
    for _ in range(300):
        bs = sub.iloc[rng.integers(0, len(sub), len(sub))]
        boots.append(_lifelines(bs, weights=bs["arr"]).survival_function_at_times(t).iloc[0])
    approx_se = (curve["ci_high"] - curve["ci_low"]) / (2 * 1.96)
    assert 0.7 < approx_se / np.std(boots) < 1.4


def test_zero_weights_are_dropped_and_all_zero_rejected(spells):
    z = spells.copy()
    z.loc[z.index[:10], "arr"] = 0.0
    got = cohort_curves(z, weight="arr")
    ref = cohort_curves(z.iloc[10:], weight="arr")
    np.testing.assert_allclose(got["survival"], ref["survival"])
    with pytest.raises(ValueError, match="all weights are zero"):
        cohort_curves(spells.assign(arr=0.0), weight="arr")


@pytest.mark.parametrize("mutate, match", [
    (lambda d: d.drop(columns="event"), "missing columns"),
    (lambda d: d.assign(event=2), "0 \\(censored\\) or 1"),
    (lambda d: d.assign(duration=-1.0), "non-negative"),
    (lambda d: d.assign(cohort=None), "missing values"),
    (lambda d: d.assign(arr=-5.0), "weight column"),
])
def test_cohort_curves_validation(spells, mutate, match):
    with pytest.raises(ValueError, match=match):
        cohort_curves(mutate(spells.copy()), by="cohort", weight="arr")


def test_bad_alpha_and_times(spells):
    with pytest.raises(ValueError):
        cohort_curves(spells, alpha=1.5)
    with pytest.raises(ValueError):
        cohort_curves(spells, times=[-1, 10])


# ---------------------------------------------------------------------------
# plotting
# ---------------------------------------------------------------------------
def test_plot_cohort_curves(tmp_path, spells):
    curves = cohort_curves(spells, by="cohort")
    out = plot_cohort_curves(curves, tmp_path / "sub" / "curves.png", title="Logo retention by cohort")
    assert out.exists() and out.stat().st_size > 5000
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    grid = cohort_curves(spells, by="segment", weight="arr", times=np.arange(0, 1001, 30))
    out2 = plot_cohort_curves(grid, tmp_path / "arr.png", title="ARR retention", xlabel="years",
                              time_scale=365.25)
    assert out2.exists()
    with pytest.raises(ValueError):
        plot_cohort_curves(curves.drop(columns="ci_low"), tmp_path / "x.png", "t")
