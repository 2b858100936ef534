"""CSM calls in the renewal forecast: the point-in-time call join, the call scenarios (commit <= most likely
<= best case) and the model's worst <= expected <= best case on real decision books of a simulated portfolio."""
import numpy as np
import pandas as pd
import pytest

from csforecast.data.sources import open_source
from csforecast.features.calls import calls_with_due_date, latest_calls
from csforecast.forecast.book import renewal_book
from csforecast.forecast.calls import call_scenarios, pending_calls
from csforecast.forecast.montecarlo import MethodInput, method_results
from csforecast.forecast.renewals import scenario_cases


def test_latest_call_is_strictly_before_as_of_and_on_the_same_renewal():
    calls = pd.DataFrame({"account_id": ["A1", "A1", "A1", "A2"], "contract_id": ["C1", "C1", "C9", "C2"],
                          "called_at": pd.to_datetime(["2026-01-10", "2026-02-10", "2026-02-20", "2026-01-05"]),
                          "csm_id": ["S1", "S1", "S1", "S2"], "category": ["commit", "at_risk", "churn", "commit"],
                          "amount": [100.0, None, 0.0, 50.0], "note": [None, "budget cut", None, None]})
    contracts = pd.DataFrame({"contract_id": ["C1", "C9", "C2"],
                              "end_date": pd.to_datetime(["2026-04-01", "2027-04-01", "2026-03-01"])})
    c = calls_with_due_date(calls, contracts)
    rows = pd.DataFrame({"account_id": ["A1", "A1", "A1", "A2", "A3"],
                         "renewal_date": pd.to_datetime(["2026-04-01"] * 3 + ["2026-03-01", "2026-04-01"]),
                         "as_of": pd.to_datetime(["2026-02-10", "2026-02-11", "2026-01-10", "2026-02-01",
                                                  "2026-03-01"])}, index=[10, 11, 12, 13, 14])
    out = latest_calls(c, rows)
    assert list(out.index) == [10, 11, 12, 13, 14]
    # the call made on the as-of day is not seen; the one the day before is; the other renewal's never
    assert out.loc[10, "call_category"] == "commit" and out.loc[11, "call_category"] == "at_risk"
    assert out.loc[11, "call_note"] == "budget cut" and np.isnan(out.loc[11, "call_amount"])
    assert pd.isna(out.loc[12, "call_category"]) and pd.isna(out.loc[14, "call_category"])
    assert out.loc[13, "call_category"] == "commit" and out.loc[13, "call_amount"] == 50.0


@pytest.fixture(scope="module")
def frames(small_portfolio):
    src = open_source(small_portfolio)
    return src.frame("contracts"), src.frame("accounts"), calls_with_due_date(src.frame("forecast_calls"),
                                                                               src.frame("contracts"))


@pytest.mark.parametrize("start", ["2025-10-01", "2026-01-01", "2026-04-01", "2026-07-01"])
def test_scenarios_are_ordered_on_every_window(frames, start):
    contracts, accounts, calls = frames
    s = pd.Timestamp(start)
    e = s + pd.DateOffset(months=3)
    as_of = s + pd.Timedelta(days=20)
    book = renewal_book(contracts, accounts, s, e, as_of, None)
    pend = book[book["status"] == "pending"]
    called = pending_calls(calls, pend, as_of)
    sc = call_scenarios(pend, called, float(book.loc[book["status"] == "renewed", "arr"].sum()))
    assert sc["pending_called"] > 0, "the simulator calls renewals due within 120 days"
    assert sc["commit"] <= sc["most_likely"] <= sc["best_case"]
    assert sc["best_case"] + sc["called_churn_arr"] + sc["uncalled_arr"] >= sc["most_likely"]
    assert sc["renewed_so_far_arr"] <= sc["commit"]

    # the model's worst / best case around its expectation, for several probability profiles and thresholds
    rng = np.random.default_rng(len(pend))
    n = len(pend)
    for p, thr in ((rng.beta(1, 6, n), 0.3), (rng.beta(2, 2, n), 0.5), (rng.uniform(0, 1, n), 0.0)):
        inp = MethodInput(p, rng.normal(1.02, 0.1, n).clip(0.3), np.full(n, 0.01))
        overall = method_results(book, None, inp, draws=500, seed=0)["overall"]
        cases = scenario_cases(book, None, inp, overall, thr)
        ex = overall["expected"]
        w, b = cases["worst_case"], cases["best_case"]
        for k in ("grr", "nrr", "renewed_arr"):
            assert w[k] <= ex[k] + 1e-6 <= b[k] + 2e-6, (k, w[k], ex[k], b[k])
        assert w["churned_arr"] + 1e-6 >= ex["churned_arr"] >= b["churned_arr"] - 1e-6
