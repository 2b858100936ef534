"""The expansion pipeline (forecast/pipeline.py): default weighting is amount x the handbook's probabilities,
learned probabilities from closed opportunities' histories, time-ordered back-test, missing tables."""
from datetime import date

import pandas as pd
import pytest

from csforecast.config import PipelineSettings
from csforecast.forecast.pipeline import (check_stage_probabilities, learned_stage_probabilities, pipeline_report,
                                          stages_on)

END = date(2026, 1, 1)
DEFAULT = PipelineSettings().stage_probabilities
d = pd.Timestamp


def _tables():
    opps = pd.DataFrame([
        # closed in 2025: o1 won, o2 lost in discussion, o3 lost at contract_sent, o4 lost when emailed
        ("o1", "a", "upsell", "signed", 1000.0, d("2025-01-05"), d("2025-03-01"), d("2025-03-10"), True),
        ("o2", "a", "upsell", "lost", 2000.0, d("2025-01-10"), d("2025-03-01"), d("2025-02-20"), False),
        ("o3", "b", "cross_sell", "lost", 500.0, d("2025-02-01"), d("2025-05-01"), d("2025-04-20"), False),
        ("o4", "b", "upsell", "lost", 700.0, d("2025-02-01"), d("2025-05-01"), d("2025-02-15"), False),
        # open now
        ("o5", "a", "upsell", "discussion", 10000.0, d("2025-11-01"), d("2026-02-01"), pd.NaT, None),
        ("o6", "b", "upsell", "verbal", 4000.0, d("2025-10-01"), d("2025-12-01"), pd.NaT, None),   # overdue
        ("o7", "b", "cross_sell", "emailed", 3000.0, d("2025-12-01"), d("2026-05-01"), pd.NaT, None),
    ], columns=["opportunity_id", "account_id", "kind", "stage", "amount", "created_at", "expected_close",
                "closed_at", "won"])
    hist = pd.DataFrame([
        ("o1", "emailed", d("2025-01-05")), ("o1", "discussion", d("2025-01-20")), ("o1", "verbal", d("2025-02-20")),
        ("o1", "signed", d("2025-03-10")),
        ("o2", "emailed", d("2025-01-10")), ("o2", "discussion", d("2025-02-01")), ("o2", "lost", d("2025-02-20")),
        ("o3", "emailed", d("2025-02-01")), ("o3", "discussion", d("2025-02-10")),
        ("o3", "contract_sent", d("2025-03-15")), ("o3", "lost", d("2025-04-20")),
        ("o4", "emailed", d("2025-02-01")), ("o4", "lost", d("2025-02-15")),
        ("o5", "emailed", d("2025-11-01")), ("o5", "discussion", d("2025-11-20")),
        ("o6", "emailed", d("2025-10-01")), ("o6", "verbal", d("2025-11-01")),
        ("o7", "emailed", d("2025-12-01")),
    ], columns=["opportunity_id", "stage", "entered_at"])
    return opps, hist


def test_learned_probabilities_count_the_stages_each_closed_opportunity_reached():
    opps, hist = _tables()
    sp = learned_stage_probabilities(opps, hist)
    # reached: emailed o1-o4 (1 won of 4), discussion o1-o3 (1/3), contract_sent o1 (won: reached all), o3 (1/2),
    # verbal o1 only (1/1)
    assert (sp["emailed"]["learned"], sp["emailed"]["n"]) == (0.25, 4)
    assert sp["discussion"]["learned"] == pytest.approx(1 / 3) and sp["discussion"]["n"] == 3
    assert (sp["contract_sent"]["learned"], sp["contract_sent"]["n"]) == (0.5, 2)
    assert (sp["verbal"]["learned"], sp["verbal"]["n"]) == (1.0, 1)
    assert sp["discussion"]["ci_low"] < 1 / 3 < sp["discussion"]["ci_high"]
    assert sp["signed"]["n"] == 1 and sp["lost"]["n"] == 3
    early = learned_stage_probabilities(opps, hist, cutoff=date(2025, 3, 1))   # only o2, o4 closed before
    assert early["emailed"] == {**early["emailed"], "learned": 0.0, "n": 2}
    assert early["verbal"]["learned"] is None and early["verbal"]["n"] == 0


def test_default_weighting_is_amount_times_the_handbook_probabilities():
    opps, hist = _tables()
    r = pipeline_report(opps, hist, END, stage_probabilities=DEFAULT, windows=2, backtest_quarters=4)
    assert {s: v["default"] for s, v in r["stage_probabilities"].items()} == DEFAULT
    w0, w1 = r["windows"]
    assert (w0["start"], w0["end"], w1["start"]) == ("2026-01-01", "2026-04-01", "2026-04-01")
    # o5 (Q1) and overdue o6 in the first window, o7 in the second
    assert w0["open_amount"] == 14000.0 and w0["weighted_default"] == pytest.approx(10000 * 0.2 + 4000 * 0.8)
    assert w1["weighted_default"] == 0.0 and w1["open_amount"] == 3000.0
    learned = r["stage_probabilities"]
    assert w0["weighted_learned"] == pytest.approx(10000 * learned["discussion"]["learned"] + 4000 * 1.0)
    assert all(w["weighted_default"] <= w["open_amount"] for w in r["windows"])
    assert r["open"] == {"opportunities": 3, "amount": 17000.0}


def test_backtest_is_time_ordered():
    opps, hist = _tables()
    r = pipeline_report(opps, hist, END, stage_probabilities=DEFAULT, windows=1, backtest_quarters=4)
    q = {b["quarter"]: b for b in r["backtest"]}
    assert list(q) == ["2025Q1", "2025Q2", "2025Q3", "2025Q4"]
    # on 2025-04-01: o3 open in contract_sent, expected in Q2, lost; learned from o1, o2, o4 closed before
    assert q["2025Q2"]["opportunities"] == 1 and q["2025Q2"]["weighted_default"] == pytest.approx(250.0)
    assert q["2025Q2"]["weighted_learned"] == pytest.approx(500 * 1.0)   # o1 was the only one past contract_sent
    assert q["2025Q2"]["won_amount"] == 0.0
    assert q["2025Q4"]["opportunities"] == 0   # o6 was created on the quarter's first day: not open before it
    assert r["calibration"]["available"] and r["calibration"]["brier_default"] is not None
    on = stages_on(opps, hist, date(2025, 2, 5))
    assert dict(zip(on.opportunity_id, on.stage_on)) == {"o1": "discussion", "o2": "discussion", "o3": "emailed",
                                                         "o4": "emailed"}


def test_without_history_or_opportunities_the_report_says_so():
    opps, _ = _tables()
    r = pipeline_report(opps, None, END, stage_probabilities=DEFAULT)
    assert r["backtest"] == [] and not r["calibration"]["available"] and r["notes"]
    assert r["stage_probabilities"]["discussion"]["learned"] is None
    assert r["windows"][0]["weighted_learned"] == r["windows"][0]["weighted_default"]   # defaults stand in
    none = pipeline_report(None, None, END, stage_probabilities=DEFAULT)
    assert none["available"] is False and none["windows"] == [] and none["notes"]


def test_stage_probabilities_are_checked():
    with pytest.raises(ValueError, match="verbal"):
        check_stage_probabilities({**DEFAULT, "verbal": 1.5})
    with pytest.raises(ValueError, match="signed"):
        check_stage_probabilities({k: v for k, v in DEFAULT.items() if k != "signed"})
    with pytest.raises(ValueError, match="negotiation"):
        check_stage_probabilities({**DEFAULT, "negotiation": 0.6})


def test_pipeline_addons_weight_the_window_and_leave_renewal_deals_to_the_renewal():
    from csforecast.forecast.pipeline import RENEWAL_OVERLAP_DAYS, pipeline_addons

    opps, hist = _tables()
    # learned as of END from o1-o4: emailed 1/4, discussion 1/3 (o1, o2, o3 reached it), contract_sent 1/2 (o1,
    # o3), verbal 1/1 (o1); the window [END, 2026-04-01) holds o5 (discussion, due 2026-02-01) and the overdue o6
    # (verbal); o7 closes in May
    f, info = pipeline_addons(opps, hist, END, "2026-04-01", END, stage_probabilities=DEFAULT)
    got = f.set_index("account_id")
    # (the learned probabilities are kept to 6 decimals)
    assert got.loc["a", "mean"] == pytest.approx(10000 / 3, rel=1e-5) and got.loc["b", "mean"] == pytest.approx(4000)
    assert got.loc["a", "var"] == pytest.approx(1e8 * (1 / 3) * (2 / 3), rel=1e-5)
    assert got.loc["b", "var"] == pytest.approx(0)
    assert info["opportunities"] == 2 and info["probabilities"] == "learned" and info["excluded_at_renewal"] == 0
    # a later window: only o7 (emailed, 1/4); overdue ones stay in the window holding as_of
    f2, _ = pipeline_addons(opps, hist, "2026-04-01", "2026-07-01", END, stage_probabilities=DEFAULT)
    assert f2.set_index("account_id")["mean"].to_dict() == pytest.approx({"b": 750.0})
    # a's renewal 14 days after o5's expected close: o5 is the renewal's expansion, not an add-on
    renewals = pd.DataFrame({"account_id": ["a"], "renewal_date": [d("2026-02-01") + pd.Timedelta(days=14)]})
    assert 14 <= RENEWAL_OVERLAP_DAYS
    f3, info3 = pipeline_addons(opps, hist, END, "2026-04-01", END, stage_probabilities=DEFAULT, renewals=renewals)
    assert list(f3["account_id"]) == ["b"] and info3["excluded_at_renewal"] == 1
    assert info3["excluded_at_renewal_amount"] == 10000.0
    # without history: the handbook's defaults on the current stages (discussion 0.2, verbal 0.8)
    f4, info4 = pipeline_addons(opps, None, END, "2026-04-01", END, stage_probabilities=DEFAULT)
    assert f4.set_index("account_id")["mean"].to_dict() == pytest.approx({"a": 2000.0, "b": 3200.0})
    assert info4["probabilities"] == "default"
    # no opportunities: nothing, and said so
    f5, info5 = pipeline_addons(None, None, END, "2026-04-01", END, stage_probabilities=DEFAULT)
    assert f5.empty and info5["available"] is False


def test_with_pipeline_replaces_the_history_forecast_only_where_there_is_pipeline():
    from csforecast.forecast.addons import with_pipeline

    history = pd.DataFrame({"account_id": ["a", "b", "c"], "segment": "SMB", "group": "SMB",
                            "arr": [100.0, 200.0, 300.0], "mean": [1.0, 2.0, 3.0], "var": [0.5, 0.5, 0.5]})
    pipe = pd.DataFrame({"account_id": ["b", "z"], "mean": [40.0, 99.0], "var": [4.0, 9.0], "opportunities": 1})
    out, src = with_pipeline(history, pipe)
    assert src == "pipeline" and list(out["source"]) == ["history", "pipeline", "history"]
    assert list(out["mean"]) == [1.0, 40.0, 3.0] and list(out["var"]) == [0.5, 4.0, 0.5]   # z is no customer
    out2, src2 = with_pipeline(history, pipe[pipe["account_id"] == "z"])
    assert src2 == "history" and list(out2["mean"]) == [1.0, 2.0, 3.0]
