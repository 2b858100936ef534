import os

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

import json
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from csforecast.config import Settings, TriggerSettings
from csforecast.models import HealthScoreModel
from csforecast.pipelines.health import decile_table, strictly_falling, validation_uncertainty
from csforecast.scoring.health import (
    _round_preserving_sum,
    evaluate_triggers,
    explain_change,
    health_history,
    score_health,
)

MINUS = "\u2212"


def _sig(z):
    return 1 / (1 + np.exp(-z))


def _rows(n_accounts=1200, months=4, seed=0):
    """Snapshot-like rows from a latent health (a reduced copy of the generator in test_health.py)."""
    rng = np.random.default_rng(seed)
    acc = np.repeat(np.arange(n_accounts), months)
    mu_a = rng.normal(0, 1, n_accounts)
    n = len(acc)
    h = mu_a[acc] + rng.normal(0, 0.3, n)
    seats = np.round(rng.lognormal(3.5, 0.8, n_accounts))[acc] + 1
    util = 0.8 * _sig(0.2 + 1.1 * h + rng.normal(0, 0.3, n))
    df = pd.DataFrame({
        "account_id": [f"A{i:05d}" for i in acc],
        "as_of": pd.Timestamp("2026-01-05") + pd.to_timedelta(7 * np.tile(np.arange(months), n_accounts), "D"),
        "segment": rng.choice(["SMB", "Mid-Market", "Enterprise"], n_accounts)[acc], "seats": seats,
        "seat_utilisation": util, "seat_utilisation_90d": util * rng.uniform(0.9, 1.1, n),
        "key_feature_breadth": rng.binomial(10, _sig(-0.3 + h)) / 10,
        "active_users_30d": util * seats, "active_users_90d": util * seats * rng.uniform(0.8, 1.2, n),
        "active_users_prev30d": util * seats * rng.uniform(0.8, 1.2, n),
        "touches_90d": rng.poisson(np.exp(1 + 0.3 * h)),
        "days_since_exec_meeting": np.where(rng.random(n) < 0.3, np.nan, np.exp(4.5 - 0.5 * h)),
        "respondent_roles_365d": np.clip(np.round(1.5 + 0.5 * h + rng.normal(0, 0.7, n)), 0, 3),
        "days_since_champion_left": np.where(rng.random(n) < 0.8, np.nan, rng.uniform(1, 700, n)),
        "nps_latest": np.clip(np.round(7.4 + 1.7 * h + rng.normal(0, 1.8, n)), 0, 10),
        "account_nps_365d": np.round(100 * np.tanh(0.6 * h + rng.normal(0, .5, n))),
        "csat_latest": np.clip(np.round(3.9 + 0.7 * h + rng.normal(0, .7, n)), 1, 5),
        "tickets_p1_90d": rng.poisson(0.3 * np.exp(-0.5 * h)),
        "tickets_90d": rng.poisson(0.2 * seats ** 0.6 * np.exp(-0.5 * h)),
        "tickets_30d": rng.poisson(0.07 * seats ** 0.6 * np.exp(-0.5 * h)).astype(float),
        "open_tickets": rng.poisson(0.5, n).astype(float),
        "mean_resolution_days_180d": rng.lognormal(1.2 - 0.2 * h, 0.5),
    })
    df["label_churn"] = (rng.random(n_accounts) < _sig(-2.0 - 1.5 * mu_a)).astype(int)[acc]
    return df


@pytest.fixture(scope="module")
def rows():
    return _rows()


@pytest.fixture(scope="module")
def model(rows):
    return HealthScoreModel().fit(rows, rows["label_churn"])


# --- triggers on crafted accounts -------------------------------------------------------------------------

def _crafted() -> pd.DataFrame:
    """Row 0 fires every trigger, row 1 none, row 2 edge cases (no exec meeting ever, passive NPS)."""
    return pd.DataFrame({
        "account_id": ["BAD", "GOOD", "EDGE"],
        "segment": ["SMB", "SMB", "Enterprise"],
        "seat_utilisation": [0.30, 0.50, 0.40],
        # BAD: 10/day in the last 30 days, 20/day 31-60 and 61-90 days ago -> 90d mean = 50/3
        "active_users_30d": [10.0, 20.0, 20.0], "active_users_prev30d": [20.0, 20.0, 20.0],
        "active_users_90d": [50.0 / 3, 20.0, 20.0],
        "days_since_exec_meeting": [143.0, 20.0, np.nan],
        "nps_latest": [6.0, 9.0, 8.0],
        "open_tickets": [5.0, 1.0, 1.0], "tickets_30d": [6.0, 6.0, 0.0],
        "mean_resolution_days_180d": [6.0, 6.0, np.nan],
        "days_since_champion_left": [30.0, np.nan, 91.0],
    })


def _names(fired):
    return {f["trigger"] for f in fired}


def test_triggers_fire_on_crafted_accounts():
    snap = _crafted()
    out = evaluate_triggers(snap, Settings().triggers, benchmarks={"SMB": 0.52, "Enterprise": 0.45})
    assert len(out) == 3
    bad = {f["trigger"]: f["evidence"] for f in out[0]}
    assert set(bad) == {"utilisation_below_benchmark", "active_users_drop", "no_exec_engagement",
                        "nps_detractor_or_passive", "open_tickets_above_average", "champion_left"}
    assert bad["utilisation_below_benchmark"] == "seat utilisation 30 % vs segment benchmark 52 % (SMB)"
    assert "10.0 (last 30 days) vs 20.0 (61–90 days ago), -50 %" in bad["active_users_drop"]
    assert bad["no_exec_engagement"] == "last executive meeting 143 days ago (> 90)"
    assert bad["nps_detractor_or_passive"] == "latest NPS response 6 (detractor)"
    assert bad["open_tickets_above_average"].startswith("5 open tickets vs 1.2 expected")
    assert bad["champion_left"] == "champion left 30 days ago"
    assert out[1] == []                                  # 0.50 >= 0.75 * 0.52; 1 open ticket never fires
    edge = {f["trigger"]: f["evidence"] for f in out[2]}
    assert set(edge) == {"no_exec_engagement", "nps_detractor_or_passive"}  # 0.40 >= 0.75 * 0.45
    assert edge["no_exec_engagement"] == "no executive meeting in the last 2 years"
    assert edge["nps_detractor_or_passive"] == "latest NPS response 8 (passive)"


def test_trigger_thresholds_come_from_settings():
    snap = _crafted()
    loose = TriggerSettings(utilisation_below_benchmark=0.5, active_users_drop=0.6, exec_silence_days=200,
                            nps_below=5, champion_left_days=10)
    out = evaluate_triggers(snap, loose, benchmarks={"SMB": 0.52, "Enterprise": 0.45})
    assert _names(out[0]) == {"open_tickets_above_average"}
    # a dict of settings works, and the benchmark defaults to this snapshot's segment medians
    out = evaluate_triggers(snap, {"nps_below": 7})
    assert "nps_detractor_or_passive" in _names(out[0]) and "nps_detractor_or_passive" not in _names(out[2])
    # a settings object with .triggers works too
    assert evaluate_triggers(snap, Settings())[1] == []


def test_trigger_boundaries_and_missing_values():
    snap = pd.DataFrame({"segment": ["SMB"] * 3, "seat_utilisation": [0.39, 0.391, np.nan],
                         "active_users_30d": [15.0, 15.01, 0.0], "active_users_prev30d": [20.0] * 3,
                         "active_users_90d": [55 / 3, (15.01 + 40) / 3, 0.0],
                         "days_since_exec_meeting": [90.0, 91.0, 10.0], "nps_latest": [np.nan, 9.0, 0.0],
                         "open_tickets": [0.0, 2.0, 3.0], "tickets_30d": [0.0, 0.0, 30.0],
                         "mean_resolution_days_180d": [np.nan, np.nan, 3.0],
                         "days_since_champion_left": [90.0, np.nan, np.nan]})
    out = evaluate_triggers(snap, TriggerSettings(), benchmarks={"SMB": 0.52}, resolution_days=4.0)
    # 0.39 = 0.75 * 0.52 exactly is not below it; 15 vs 20 is exactly -25 % and does not fire
    assert _names(out[0]) == {"champion_left"}
    assert _names(out[1]) == {"no_exec_engagement", "open_tickets_above_average"}
    assert "0.0 expected" in {f["trigger"]: f["evidence"] for f in out[1]}["open_tickets_above_average"]
    assert _names(out[2]) == {"nps_detractor_or_passive"}  # 3 open vs 30/30*3 = 3 expected: not above


# --- scoring, history and change explanations --------------------------------------------------------------

def test_score_health_columns_contributions_and_bands(model, rows):
    snap = rows.sample(300, random_state=1)
    out = score_health(model, snap, Settings())
    assert list(out.columns) == ["health_score", "health_band", "health_components", "triggers", "outcomes_score",
                                 "experience_score", "health_quadrant", "health_band5"]
    assert out.index.equals(snap.index)
    # the scorecard beside the score: pillar means of the component scores, the 2x2 and five bands
    cs = model.component_scores(snap)
    np.testing.assert_allclose(out["outcomes_score"], cs[["deployment", "adoption", "engagement"]].mean(axis=1))
    np.testing.assert_allclose(out["experience_score"], cs[["nps", "support"]].mean(axis=1))
    o, e = out["outcomes_score"] >= 50, out["experience_score"] >= 50
    assert (out["health_quadrant"][o & e] == "healthy").all() and (out["health_quadrant"][~o & e] == "false_positive").all()
    assert (out["health_quadrant"][o & ~e] == "quiet_value").all() and (out["health_quadrant"][~o & ~e] == "at_risk").all()
    five = pd.cut(out["health_score"], [-np.inf, 20, 40, 60, 80, np.inf], right=False,
                  labels=["critical", "poor", "fair", "good", "excellent"]).astype(str)
    assert (out["health_band5"] == five).all()
    custom = score_health(model, snap, Settings(scorecard={"five_bands": [10, 30, 50, 90], "quadrant_cut": 60}))
    assert (custom["health_band5"][out["health_score"] >= 90] == "excellent").all()
    assert (custom["health_band5"][out["health_score"] < 10] == "critical").all()
    assert ((custom["outcomes_score"] >= 60) == (custom["health_quadrant"].isin(["healthy", "quiet_value"]))).all()
    with pytest.raises(ValueError, match="five_bands"):
        Settings(scorecard={"five_bands": [50, 40, 60, 80]})
    np.testing.assert_allclose(out["health_score"], model.predict(snap))
    for s, band, comps in zip(out["health_score"], out["health_band"], out["health_components"]):
        assert [c["component"] for c in comps] == ["deployment", "adoption", "engagement", "nps", "support"]
        assert sum(c["contribution"] for c in comps) == pytest.approx(s - 50.0, abs=1e-9)
        assert band == ("red" if s < 40 else "yellow" if s < 70 else "green")
        for c in comps:
            assert set(c) == {"component", "score", "band", "contribution", "lever"}
            assert c["band"] == ("red" if c["score"] < 40 else "yellow" if c["score"] < 70 else "green")
            assert c["lever"]
    assert all(isinstance(t, list) for t in out["triggers"])
    champ = snap["days_since_champion_left"] <= 90
    levers = out["health_components"].map(lambda cs: next(c["lever"] for c in cs if c["component"] == "engagement"))
    assert levers[champ].str.contains("champion").all() and not levers[~champ].str.contains("champion").any()


def test_quantile_band_mode(model, rows):
    s = Settings(health_bands={"red": 20, "yellow": 60, "mode": "quantile"})
    out = score_health(model, rows, s)
    share = out["health_band"].value_counts(normalize=True)
    assert share["red"] == pytest.approx(0.2, abs=0.02) and share["green"] == pytest.approx(0.4, abs=0.02)


def test_health_history_and_explanations(model, rows):
    h = health_history(model, rows)
    assert {"account_id", "week", "health_score", "components", "contributions", "change",
            "change_explanation"} <= set(h.columns)
    first = h.groupby("account_id").head(1)
    assert first["change"].isna().all() and first["change_explanation"].isna().all()
    later = h.drop(first.index)
    assert (later["change"] - h["health_score"].diff().loc[later.index]).abs().max() < 1e-12
    for _, r in later.head(200).iterrows():
        head, _, tail = r["change_explanation"].partition(": ")
        total = int(round(r["change"]))
        assert head == ("\u00b10" if total == 0 else (f"+{total}" if total > 0 else f"{MINUS}{-total}"))
        if tail and not tail.startswith("no component"):
            parts = [int(p.rsplit(" ", 1)[1].replace(MINUS, "-")) for p in tail.split(", ")]
            assert sum(parts) == total
    assert set(h.loc[0, "components"]) == set(model.components_)


def test_explain_change_format():
    prev = {"health_score": 60.2, "contributions": {"deployment": 4.0, "adoption": 3.0, "support": 3.2, "nps": 0.0}}
    cur = {"health_score": 53.2, "contributions": {"deployment": 4.0, "adoption": -2.0, "support": 1.2, "nps": 0.0}}
    assert explain_change(prev, cur) == f"{MINUS}7: Adoption {MINUS}5, Support {MINUS}2"
    up = {"health_score": 61.0, "contributions": {"deployment": 7.7, "adoption": 3.0, "support": 0.3, "nps": 0.0}}
    assert explain_change(cur, up) == "+8: Adoption +5, Deployment +4, Support \u22121"
    assert explain_change(prev, prev) == "\u00b10: no component moved the score by a whole point"
    # score_health rows (health_components lists) work as well
    a = pd.Series({"health_score": 40.0, "health_components": [{"component": "nps", "contribution": -10.0}]})
    b = pd.Series({"health_score": 43.0, "health_components": [{"component": "nps", "contribution": -7.0}]})
    assert explain_change(a, b) == "+3: NPS +3"


def test_round_preserving_sum():
    rng = np.random.default_rng(0)
    for _ in range(500):
        parts = dict(zip("abcde", rng.normal(0, 4, 5)))
        total = int(round(sum(parts.values())))
        r = _round_preserving_sum(parts, total)
        assert sum(r.values()) == total
        assert all(abs(r[k] - v) < 1 for k, v in parts.items())


def test_decile_table_and_monotonicity():
    y = np.r_[np.ones(10), np.zeros(90)]
    s = np.r_[np.arange(10), np.arange(10, 100)].astype(float)
    t = decile_table(y, s)
    assert len(t) == 10 and t["churn_rate"].tolist()[0] == 1.0 and t["n"].sum() == 100
    assert not strictly_falling(t["churn_rate"])       # deciles 2..10 tie at 0
    assert strictly_falling([0.3, 0.2, 0.1]) and not strictly_falling([0.3, 0.3, 0.1])
    coarse = decile_table(y, np.repeat([0.0, 50.0, 100.0], [30, 30, 40]))
    assert len(coarse) == 3                            # tied scores stay together


def _scored(n_accounts, rows_per_account, seed=0):
    rng = np.random.default_rng(seed)
    acc = np.repeat(np.arange(n_accounts), rows_per_account)
    risk = rng.normal(0, 1, n_accounts)
    y = (rng.random(n_accounts) < _sig(-1.5 + 1.5 * risk)).astype(int)[acc]
    good = -risk[acc]                                     # health: higher = healthier
    noisy = good + rng.normal(0, 2.0, n_accounts)[acc]
    return y, good, noisy, acc


def test_validation_uncertainty_separates_a_good_score_from_a_noisy_one():
    from sklearn.metrics import roc_auc_score

    y, good, noisy, acc = _scored(3000, 1)
    u = validation_uncertainty(y, {"ours": good, "equal_weight": noisy, "textbook": good}, acc, n_boot=200)
    gain = roc_auc_score(y, -good) - roc_auc_score(y, -noisy)
    lo, hi = u["auc_gain_ci"]["equal_weight"]
    assert 0 < lo < gain < hi and u["p_gain_not_positive"]["equal_weight"] == 0.0
    assert u["auc_gain_ci"]["textbook"] == [0.0, 0.0]      # paired: the same score never differs from itself
    lo, hi = u["auc_ci"]["ours"]
    assert lo < roc_auc_score(y, -good) < hi and hi - lo < 0.06
    # churn falls steeply across the deciles of a good score: no resample reverses the first pairs
    assert len(u["decile_not_falling_share"]) == 9 and u["decile_not_falling_share"][0] == 0.0
    rates = decile_table(y, good)["churn_rate"].to_numpy()
    ci = np.array(u["decile_churn_ci"])
    assert ci.shape == (10, 2) and np.all(ci[:, 0] <= rates + 1e-9) and np.all(rates <= ci[:, 1] + 1e-9)


def test_auc_by_period_groups_by_quarter_of_the_renewal():
    from csforecast.pipelines.health import auc_by_period

    when = pd.to_datetime(["2026-01-15", "2026-02-01", "2026-03-31", "2026-04-01", "2026-05-01", "2026-06-30"])
    y = np.array([1, 0, 0, 1, 1, 0])
    good = np.array([10, 90, 80, 5, 20, 70.0])               # healthier = renews
    bad = np.array([90, 10, 20, 70, 60, 10.0])
    out = auc_by_period(y, {"good": good, "bad": bad}, when, ["c1", "c2", "c2", "c4", "c5", "c6"])
    assert [q["period"] for q in out] == ["2026Q1", "2026Q2"]
    assert out[0]["n"] == 3 and out[0]["n_renewals"] == 2 and out[1]["churn_rate"] == pytest.approx(2 / 3)
    assert out[0]["good"] == 1.0 and out[0]["bad"] == 0.0 and out[1]["good"] == 1.0 and out[1]["bad"] == 0.0


def test_validation_uncertainty_resamples_accounts_not_rows():
    # the same accounts, each repeated 6 times: row resampling would shrink the interval by ~sqrt(6), account
    # resampling must give the same interval as one row per account
    y1, g1, n1, a1 = _scored(800, 1, seed=4)
    y6, g6, n6, a6 = (np.repeat(v, 6) for v in (y1, g1, n1, a1))
    u1 = validation_uncertainty(y1, {"ours": g1, "noisy": n1}, a1, n_boot=150, seed=2)
    u6 = validation_uncertainty(y6, {"ours": g6, "noisy": n6}, a6, n_boot=150, seed=2)
    np.testing.assert_allclose(u1["auc_ci"]["ours"], u6["auc_ci"]["ours"], atol=1e-9)
    np.testing.assert_allclose(u1["auc_gain_ci"]["noisy"], u6["auc_gain_ci"]["noisy"], atol=1e-9)


# --- end to end on a simulated portfolio ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def portfolio(tmp_path_factory):
    from csforecast.simulate import simulate_portfolio

    d = tmp_path_factory.mktemp("sim1000")
    simulate_portfolio(1000, 3, seed=3).write(d)
    return d


@pytest.mark.slow
def test_train_health_end_to_end(portfolio, isolated_home):
    from csforecast.data.sources import open_source
    from csforecast.pipelines.context import TrainingContext
    from csforecast.pipelines.health import train_health
    from csforecast.tracking import store

    from csforecast.simulate.truth import oracle_for

    src = open_source(portfolio)
    ctx = TrainingContext.build(src, oracle=oracle_for(src))
    result = train_health(ctx)
    res = result.to_json()
    assert set(res) == {"metrics", "oracle", "detail", "run_id", "version", "alias", "guard", "decision", "fallback", "guard_checks"}
    m = res["metrics"]
    assert set(m) == {"auc", "auc_equal_weight", "auc_textbook", "decile_churn_monotone", "ablation_auc",
                      "components", "auc_ci", "auc_gain_ci"}
    assert m["auc_ci"][0] < m["auc"] < m["auc_ci"][1]
    assert set(m["auc_gain_ci"]) == {"equal_weight", "textbook"}
    lo, hi = m["auc_gain_ci"]["textbook"]
    assert lo < m["auc"] - m["auc_textbook"] < hi
    assert isinstance(m["decile_churn_monotone"], bool)
    # the simulator writes success plans and CSM sentiment: value (Outcomes) and sentiment (Experience) are scored
    comps = ["deployment", "adoption", "engagement", "value", "nps", "support", "sentiment"]
    assert list(m["components"]) == comps and list(m["ablation_auc"]) == comps
    for v in m["components"].values():
        assert set(v) == {"coef", "se", "p_value", "ci_low", "ci_high", "lr_p_value", "flagged"}
        assert v["ci_low"] <= v["coef"] <= v["ci_high"]
    assert m["components"]["deployment"]["coef"] < 0 and not m["components"]["deployment"]["flagged"]
    assert 0.65 < m["auc"] < 0.85 and 0.6 < m["auc_textbook"] < 0.85
    assert res["oracle"]["auc"] > 0.6 and res["oracle"]["n"] == res["detail"]["n_valid"]
    d = res["detail"]
    assert set(d["deciles"]) == {"ours", "equal_weight", "textbook"} and len(d["deciles"]["ours"]) == 10
    assert set(d["band_churn"]["ours"]) == {"red", "yellow", "green"}
    assert d["band_churn"]["ours"]["red"]["churn_rate"] > d["band_churn"]["ours"]["green"]["churn_rate"]
    assert d["skipped_components"] == {}
    assert set(d["flagged"]) == {c for c, v in m["components"].items() if v["flagged"]}
    json.dumps(res)
    assert res["alias"] == "champion" and res["version"] == "1"

    run = store.configure().get_run(res["run_id"])
    assert run.data.metrics["auc"] == pytest.approx(m["auc"], abs=1e-6)
    art = Path(store.download_artifacts(res["run_id"], ""))
    for f in ("evaluation.json", "health_report.md", "decile_churn.png"):
        assert (art / f).exists()
    report = (art / "health_report.md").read_text()
    assert "| learned health score |" in report and "bootstrap resamples of accounts" in report
    assert "P(churn does not fall to the next decile)" in report
    assert len(res["detail"]["bootstrap"]["decile_not_falling_share"]) == 9
    quarters = res["detail"]["auc_by_quarter"]
    assert len(quarters) >= 3 and sum(q["n"] for q in quarters) == res["detail"]["n_valid"]
    assert "| quarter | rows |" in report
    assert "auc_gain_vs_equal_weight_ci_low" in run.data.metrics

    # the registered pyfunc reproduces the scores
    est = store.load_estimator("models:/csforecast-health@champion")
    rows = ctx.decision_rows()
    _, valid = ctx.split(rows)
    np.testing.assert_allclose(est.predict(valid), result.estimator.predict(valid))

    # a weaker challenger does not replace the champion; the comparison is on the same rows
    weak = train_health(ctx, components=["engagement"]).to_json()
    assert weak["alias"] == "challenger" and weak["version"] == "2"
    assert weak["metrics"]["ablation_auc"] == {} and "validation AUC" in weak["guard"]
    # the one-component score ranks churn worse than the textbook scorecard on these rows: refused outright,
    # before any comparison with the champion
    assert weak["decision"] == "refused" and "textbook scorecard baseline" in weak["guard"]

    # scoring the latest snapshot
    snap = ctx.snapshots[ctx.snapshots["as_of"] == ctx.snapshots["as_of"].max()]
    out = score_health(est, snap)
    assert len(out) == len(snap) and out["health_score"].between(0, 100).all()
    weekly = [ctx.as_of - timedelta(days=7 * k) for k in (2, 1, 0)]
    from csforecast.features.snapshot import build_snapshots

    hist = health_history(est, build_snapshots(ctx.source, weekly, labels=False))
    assert hist["week"].nunique() == 3 and hist["change_explanation"].notna().any()


def test_unseen_segment_uses_the_all_segment_benchmark():
    snap = _crafted().assign(segment=["Public Sector", None, "SMB"])
    out = evaluate_triggers(snap, TriggerSettings(), benchmarks={"SMB": 0.9, "*": 0.52})
    bad = {f["trigger"]: f["evidence"] for f in out[0]}
    assert bad["utilisation_below_benchmark"] == "seat utilisation 30 % vs segment benchmark 52 % (Public Sector)"
    assert "utilisation_below_benchmark" not in _names(out[1])
    assert "utilisation_below_benchmark" in _names(out[2])


def test_value_and_sentiment_are_scored_from_their_tables_and_named_when_absent(small_portfolio, tmp_path):
    """With success_plans and csm_sentiment the health model scores value (Outcomes) and sentiment (Experience);
    without them it skips both and says which tables are missing (the same words `validate` uses)."""
    import shutil
    from datetime import date

    from csforecast.data.sources import open_source
    from csforecast.features.snapshot import build_snapshots, monthly_grid
    from csforecast.pipelines.health import dropped_components

    grid = monthly_grid(date(2025, 1, 1), date(2026, 6, 1))[::2]    # 9 dates: enough renewals, a quick test
    src = open_source(small_portfolio)
    rows = build_snapshots(src, grid).dropna(subset=["label_churn"])
    rows = rows[rows["days_to_renewal"] <= 120]
    m = HealthScoreModel(weighting="equal").fit(rows, rows["label_churn"].astype(int))
    assert {"value", "sentiment"} <= set(m.components_) and m.skipped_ == {}
    assert {"value_realised", "roi", "csm_sentiment"} <= {x.name for x in m.measures_}
    assert dropped_components(src, m) == {}
    out = score_health(m, rows.head(50), Settings())
    comps = {c["component"] for c in out["health_components"].iloc[0]}
    assert {"value", "sentiment"} <= comps
    cs = m.component_scores(rows.head(50))
    np.testing.assert_allclose(out["outcomes_score"],
                               cs[["deployment", "adoption", "engagement", "value"]].mean(axis=1))
    np.testing.assert_allclose(out["experience_score"], cs[["nps", "support", "sentiment"]].mean(axis=1))

    bare = tmp_path / "bare"
    shutil.copytree(small_portfolio, bare)
    (bare / "csm_sentiment.parquet").unlink()
    (bare / "success_plans.parquet").unlink()
    src2 = open_source(bare)
    rows2 = build_snapshots(src2, grid).dropna(subset=["label_churn"])
    rows2 = rows2[rows2["days_to_renewal"] <= 120]
    assert "csm_sentiment" not in rows2 and "value_realised" not in rows2
    m2 = HealthScoreModel(weighting="equal").fit(rows2, rows2["label_churn"].astype(int))
    assert set(m2.skipped_) == {"value", "sentiment"}
    why = dropped_components(src2, m2)
    assert why["value"] == "dropped: no data (success_plans is missing or empty)"
    assert why["sentiment"] == "dropped: no data (csm_sentiment is missing or empty)"
