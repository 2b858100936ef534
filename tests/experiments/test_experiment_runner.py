"""End to end: `csforecast experiment run` and `promote` on a real simulated portfolio (300 accounts x 2 years),
real fits, a temporary MLflow store."""
import json
import os
import shutil

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

import pandas as pd
import pytest
from typer.testing import CliRunner

HEALTH_SPEC = """
name = "health_nps_test"
family = "health"
bootstrap = 200

[[variants]]
name = "all_components"

[[variants]]
name = "without_nps"
drop_components = ["nps"]

[[variants]]
name = "deployment_adoption_only"
components = ["deployment", "adoption"]
"""


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    from csforecast.config import reset_settings

    h = tmp_path_factory.mktemp("exp_home")
    mp = pytest.MonkeyPatch()
    mp.setenv("CSFORECAST_HOME", str(h))
    mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{h}/mlflow.db")
    reset_settings()
    yield h
    mp.undo()
    reset_settings()


def _cli(*args):
    from csforecast.cli import app

    res = CliRunner().invoke(app, list(args))
    return res


@pytest.fixture(scope="module")
def health_report(home, small_portfolio):
    spec = home / "health_nps_test.toml"
    spec.write_text(HEALTH_SPEC)
    res = _cli("experiment", "run", str(spec), "--data", str(small_portfolio), "--json")
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout[res.stdout.index("{"):])


def test_run_reports_every_variant_against_the_baseline(health_report):
    r = health_report
    assert r["experiment"] == "health_nps_test" and r["family"] == "health" and r["baseline"] == "all_components"
    assert [v["name"] for v in r["variants"]] == ["all_components", "without_nps", "deployment_adoption_only"]
    for v in r["variants"]:
        assert set(v) >= {"name", "run_id", "metrics", "delta", "ci"}
        assert v["run_id"] and v["metrics"]["auc"] is not None
        for k in ("auc", "auc_equal_weight", "auc_textbook"):
            lo, hi = v["ci"][k]
            assert v["delta"][k] == pytest.approx(v["metrics"][k] - r["variants"][0]["metrics"][k], abs=2e-6)
            assert lo <= hi
    base = r["variants"][0]
    assert all(d == 0 for d in base["delta"].values()) and all(c == [0.0, 0.0] for c in base["ci"].values())
    # same validation rows for every variant: the textbook score does not depend on the variant
    assert {v["metrics"]["auc_textbook"] for v in r["variants"]} == {base["metrics"]["auc_textbook"]}
    two = r["variants"][2]
    assert "nps" not in two["detail"]["used_components"] and "support" not in two["detail"]["used_components"]
    lo, hi = two["ci"]["auc"]
    assert lo <= two["delta"]["auc"] <= hi


def test_variants_are_child_runs_of_one_parent_and_nothing_is_registered(health_report):
    from csforecast.tracking import runs as tracking_ext
    from csforecast.tracking import store

    parent = health_report["parent_run_id"]
    kids = tracking_ext.child_runs(parent)
    assert {k.info.run_id for k in kids} == {v["run_id"] for v in health_report["variants"]}
    for k in kids:
        assert k.data.tags["variant"] in {"all_components", "without_nps", "deployment_adoption_only"}
        assert k.data.tags["experiment"] == "health_nps_test"
    p = tracking_ext.get_run(parent)
    assert p.data.params["baseline"] == "all_components" and p.data.tags["kind"] == "experiment"
    stored = tracking_ext.load_run_json(parent, "comparison.json")
    assert stored["variants"][1]["delta"] == health_report["variants"][1]["delta"]
    rows = tracking_ext.load_run_json(parent, "validation_rows.json")
    assert rows["n"] == health_report["validation_rows"] == len(rows["rows"])
    assert store.model_versions("health") == []


def test_promote_registers_and_moves_champion_only_when_better(health_report, small_portfolio):
    from csforecast.tracking import store

    v = {x["name"]: x for x in health_report["variants"]}
    weak, full = v["deployment_adoption_only"], v["all_components"]
    res = _cli("experiment", "promote", weak["run_id"], "--json")      # data from the parent run's params
    assert res.exit_code == 0, res.output
    first = json.loads(res.stdout[res.stdout.index("{"):])
    assert first["version"] == "1" and first["alias"] == "champion" and first["promoted"] is True
    assert first["scores"]["candidate"] == pytest.approx(weak["metrics"]["auc"], abs=1e-5)

    res = _cli("experiment", "promote", full["run_id"], "--data", str(small_portfolio), "--json")
    assert res.exit_code == 0, res.output
    second = json.loads(res.stdout[res.stdout.index("{"):])
    assert second["version"] == "2"
    assert second["scores"]["champion"] == pytest.approx(weak["metrics"]["auc"], abs=1e-5)
    better = full["metrics"]["auc"] > weak["metrics"]["auc"]
    assert second["promoted"] is better and second["alias"] == ("champion" if better else "challenger")
    champ = store.champion_version("health")
    assert str(champ.version) == ("2" if better else "1")

    again = _cli("experiment", "promote", full["run_id"])
    assert again.exit_code == 2 and "already registered" in again.output


def test_promote_refuses_other_data_and_unknown_runs(health_report, small_portfolio, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(small_portfolio, other)
    t = pd.read_parquet(other / "touches.parquet")
    t.iloc[:-1].to_parquet(other / "touches.parquet", index=False)
    rid = health_report["variants"][1]["run_id"]
    res = _cli("experiment", "promote", rid, "--data", str(other))
    assert res.exit_code == 2 and "not the data" in res.output
    res = _cli("experiment", "promote", "0" * 32)
    assert res.exit_code == 2 and "no MLflow run" in res.output
    res = _cli("experiment", "promote", health_report["parent_run_id"])
    assert res.exit_code == 2 and "parent run" in res.output


def test_run_table_output(home, small_portfolio):
    spec = home / "tiny.toml"
    spec.write_text('family = "health"\nbootstrap = 50\n[[variants]]\nname = "all"\n'
                    '[[variants]]\nname = "no_support"\ndrop_components = ["support"]\n')
    res = _cli("experiment", "run", str(spec), "--data", str(small_portfolio))
    assert res.exit_code == 0, res.output
    assert "difference to baseline" in res.stdout and "no_support" in res.stdout and "Δ" in res.stdout
    assert "MLflow parent run" in res.stdout


def test_bad_data_or_spec_exits_2_and_writes_nothing(small_portfolio, tmp_path, monkeypatch):
    from csforecast.config import reset_settings

    h = tmp_path / "fresh_home"
    h.mkdir()
    monkeypatch.setenv("CSFORECAST_HOME", str(h))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{h}/mlflow.db")
    reset_settings()
    try:
        bad = tmp_path / "bad"
        shutil.copytree(small_portfolio, bad)
        c = pd.read_parquet(bad / "contracts.parquet")
        c.loc[c.index[0], "arr"] = -5.0
        c.to_parquet(bad / "contracts.parquet", index=False)
        spec = tmp_path / "s.toml"
        spec.write_text('family = "health"\n[[variants]]\nname = "a"\n')
        res = _cli("experiment", "run", str(spec), "--data", str(bad))
        assert res.exit_code == 2 and "nothing was written" in res.output
        spec.write_text('family = "health"\n[[variants]]\nname = "a"\ndrop_components = ["vibes"]\n')
        res = _cli("experiment", "run", str(spec), "--data", str(small_portfolio))
        assert res.exit_code == 2 and "vibes" in res.output
        spec.write_text('family = "health"\n[[variants]]\nname = "a"\n')
        res = _cli("experiment", "run", str(spec))
        assert res.exit_code == 2 and "--data" in res.output
        assert not (h / "mlflow.db").exists() and not (h / "mlruns").exists()
    finally:
        reset_settings()


@pytest.mark.slow
def test_churn_feature_group_ablation(home, small_portfolio):
    """Churn variants: same rows, the feature subset really changes, CIs bracket the differences."""
    from csforecast.data.sources import open_source
    from csforecast.tracking import runs as tracking_ext
    from csforecast.experiments.runner import feature_group, run_experiment
    from csforecast.simulate.truth import oracle_for
    from csforecast.experiments.spec import ExperimentSpec

    spec = ExperimentSpec.model_validate({
        "name": "ablation_test", "family": "churn", "bootstrap": 200,
        "variants": [{"name": "all", "algorithm": "logistic"},
                     {"name": "without_usage", "algorithm": "logistic", "drop_groups": ["usage"]}]})
    src = open_source(small_portfolio)
    r = run_experiment(spec, src, oracle=oracle_for(src))
    a, b = r["variants"]
    assert a["metrics"]["auc"] is not None and b["metrics"]["auc"] is not None
    for k, (lo, hi) in b["ci"].items():
        if lo is not None and k != "calibration_slope":
            assert lo - 1e-9 <= b["delta"][k] <= hi + 1e-9, k
    feats = tracking_ext.load_run_json(b["run_id"], "features.json")["features"]
    allf = tracking_ext.load_run_json(a["run_id"], "features.json")["features"]
    assert not [f for f in feats if feature_group(f) == "usage"]
    assert set(feats) < set(allf) and "seat_utilisation" in allf
    assert r["validation_rows"] == a["detail"]["n_valid"] == b["detail"]["n_valid"]


@pytest.mark.slow
def test_forecast_methods_experiment(home, small_portfolio):
    from csforecast.data.sources import open_source
    from csforecast.experiments.runner import run_experiment
    from csforecast.simulate.truth import oracle_for
    from csforecast.experiments.spec import ExperimentSpec

    spec = ExperimentSpec.model_validate({
        "name": "fc_test", "family": "forecast", "bootstrap": 100,
        "backtest": {"quarters": 2, "warmup": 1, "draws": 200},
        "variants": [{"name": "model", "method": "model"}, {"name": "last_year", "method": "last_year"}]})
    src = open_source(small_portfolio)
    r = run_experiment(spec, src, oracle=oracle_for(src))
    assert r["family"] == "forecast" and r["parent_run_id"]
    m, ly = r["variants"]
    assert m["metrics"]["wape"] is not None and ly["metrics"]["wape"] is not None
    assert ly["delta"]["wape"] == pytest.approx(ly["metrics"]["wape"] - m["metrics"]["wape"], abs=2e-6)
    assert len(ly["ci"]["wape"]) == 2
    res = _cli("experiment", "promote", m["run_id"])
    assert res.exit_code == 2 and "nothing to register" in res.output
