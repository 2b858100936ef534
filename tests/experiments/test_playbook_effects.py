"""Playbook effect analysis: the statistics, the CLI contract, and, on a portfolio big enough to see it, that
the randomised estimate covers the simulator's true effect while the naive observational one is biased."""
import json
import os

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

import numpy as np
import pytest
from scipy import stats
from typer.testing import CliRunner

from csforecast.experiments.effects import newcombe_diff, welch_diff, wilson


def _cli(*args):
    from csforecast.cli import app

    return CliRunner().invoke(app, list(args))


def _json(res):
    return json.loads(res.stdout[res.stdout.index("{"):])


def test_newcombe_matches_the_published_example():
    # Newcombe (1998), Stat Med 17:873, table II, method 10: 56/70 vs 48/80 -> 0.0524 to 0.3339
    d, lo, hi = newcombe_diff(56, 70, 48, 80)
    assert d == pytest.approx(0.2)
    assert (round(lo, 4), round(hi, 4)) == (0.0524, 0.3339)
    d, lo, hi = newcombe_diff(9, 10, 3, 10)
    assert (round(lo, 4), round(hi, 4)) == (0.1705, 0.8090)
    lo, hi = wilson(0, 10)
    assert lo == pytest.approx(0.0, abs=1e-12) and hi == pytest.approx(0.2775, abs=1e-4)


def test_welch_interval_matches_scipy():
    rng = np.random.default_rng(1)
    a, b = rng.normal(1, 2, 40), rng.normal(0, 1, 70)
    d, lo, hi = welch_diff(a, b)
    ci = stats.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
    assert d == pytest.approx(a.mean() - b.mean())
    assert lo == pytest.approx(ci.low) and hi == pytest.approx(ci.high)


def test_randomised_playbook_cli_contract(small_portfolio):
    res = _cli("experiment", "effect", "--data", str(small_portfolio), "--playbook", "adoption_workshop", "--json")
    assert res.exit_code == 0, res.output
    r = _json(res)
    assert r["playbook"] == "adoption_workshop" and r["randomised"] is True
    assert r["n_treated"] > 0 and r["n_control"] > 0
    rr = r["renewal_rate"]
    assert set(rr) >= {"treated", "control", "difference", "ci", "method"}
    assert rr["difference"] == pytest.approx(rr["treated"] - rr["control"], abs=2e-6)
    assert rr["ci"][0] < rr["difference"] < rr["ci"][1] and "Newcombe" in rr["method"]
    u = r["usage"]
    assert u["metric"] == "seat_utilisation" and u["ci"][0] < u["difference"] < u["ci"][1]
    t = r["time_to_churn"]
    assert 0 <= t["logrank_p_value"] <= 1 and t["hazard_ratio"] > 0 and t["ci"][0] < t["hazard_ratio"] < t["ci"][1]
    assert "naive" not in r and any("randomisation" in a for a in r["assumptions"])
    tr = r["truth"]
    assert tr["effect_on_health_mu"] == 0.45
    assert tr["renewal_rate_difference"]["check_max_abs_error_p_churn"] < 1e-6   # oracle reproduces the simulator
    assert tr["renewal_rate_difference"]["ate"] > 0 and tr["usage_difference"]["ate"] > 0


def test_observational_playbook_cli_contract(small_portfolio):
    res = _cli("experiment", "effect", "--data", str(small_portfolio), "--playbook", "exec_rescue",
               "--bootstrap", "30", "--json")
    assert res.exit_code == 0, res.output
    r = _json(res)
    assert r["randomised"] is False and r["arms"] == ["treatment"]
    for k in ("renewal_rate", "usage", "time_to_churn", "naive", "assumptions", "diagnostics"):
        assert k in r
    text = " ".join(r["assumptions"])
    assert "no unmeasured confounding" in text and "positivity" in text
    assert "propensity" in r["renewal_rate"]["method"]
    assert set(r["naive"]) >= {"renewal_rate", "usage", "time_to_churn"}
    assert r["renewal_rate"]["ci"][0] is not None
    res = _cli("experiment", "effect", "--data", str(small_portfolio), "--playbook", "exec_rescue", "--bootstrap",
               "20")
    assert res.exit_code == 0 and "naive" in res.stdout and "Assumptions" in res.stdout


def test_unknown_playbook_is_a_clear_error(small_portfolio):
    res = _cli("experiment", "effect", "--data", str(small_portfolio), "--playbook", "free_pizza")
    assert res.exit_code == 2 and "adoption_workshop" in res.output and "exec_rescue" in res.output


@pytest.fixture(scope="module")
def big_portfolio(tmp_path_factory):
    """3000 accounts x 3 years: enough randomised accounts (~480 customers) to see a 4-5 pp renewal effect."""
    from csforecast.simulate import simulate_portfolio

    d = tmp_path_factory.mktemp("sim3000")
    simulate_portfolio(3000, 3, seed=7).write(d)
    return d


@pytest.mark.slow
def test_randomised_estimate_covers_the_true_effect(big_portfolio):
    from csforecast.data.sources import open_source
    from csforecast.experiments.effects import playbook_effect
    from csforecast.simulate.truth import oracle_for

    src = open_source(big_portfolio)
    r = playbook_effect(src, "adoption_workshop", oracle=oracle_for(src))
    tr = r["truth"]
    truth_ren = tr["renewal_rate_difference"]["ate"]
    truth_use = tr["usage_difference"]["ate"]
    assert truth_ren > 0.02                                    # a real effect to find
    lo, hi = r["renewal_rate"]["ci"]
    assert lo <= truth_ren <= hi
    lo, hi = r["usage"]["ci"]
    assert lo <= truth_use <= hi
    assert lo > 0                                              # the usage effect is clearly detected
    assert tr["ci_covers_truth"]["renewal_rate"] and tr["ci_covers_truth"]["usage"]
    assert r["time_to_churn"]["hazard_ratio"] < 1


@pytest.mark.slow
def test_naive_observational_comparison_is_biased_and_weighting_helps(big_portfolio):
    from csforecast.data.sources import open_source
    from csforecast.experiments.effects import playbook_effect
    from csforecast.simulate.truth import oracle_for

    src = open_source(big_portfolio)
    r = playbook_effect(src, "exec_rescue", n_boot=100, oracle=oracle_for(src))
    truth = r["truth"]["renewal_rate_difference"]["att"]
    naive = r["naive"]["renewal_rate"]["difference"]
    weighted = r["renewal_rate"]["difference"]
    dr = r["renewal_rate"]["doubly_robust"]["difference"]
    assert truth > 0                                           # the rescue helps the accounts that got it ...
    assert naive < 0                                           # ... but they renew less: picked for being unhealthy
    assert abs(weighted - truth) < abs(naive - truth)          # weighting removes part of the bias
    assert abs(dr - truth) < abs(naive - truth)
    d = r["diagnostics"]
    assert d["max_abs_smd_after"] < d["max_abs_smd_before"]
