"""CLI: `metrics`, `forecast` and `backtest` on a small simulated portfolio (real fits, real MLflow)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd
import pytest

BIN = str(Path(sys.executable).with_name("csforecast"))


def _env(home: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CSFORECAST_", "MLFLOW_"))}
    env.update({"CSFORECAST_HOME": str(home), "MLFLOW_TRACKING_URI": f"sqlite:///{home / 'mlflow.db'}",
                "MLFLOW_DISABLE_TELEMETRY": "true"})
    return env


# The commands run in an empty working directory: with CSFORECAST_HOME set, nothing (the forecast calibration,
# a lock, the log) may be written there (checked at the end of the module).
WORKDIR = Path(tempfile.mkdtemp(prefix="csforecast_cwd_"))


def _run(args, home, check=True):
    r = subprocess.run([BIN, *args], capture_output=True, text=True, env=_env(home), timeout=600, cwd=WORKDIR)
    if check and r.returncode != 0:
        raise AssertionError(f"{args} exited {r.returncode}\nstdout:\n{r.stdout[-3000:]}\nstderr:\n{r.stderr[-3000:]}")
    return r


@pytest.fixture(scope="module")
def portfolio(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli_forecast")
    data, home = root / "data", root / "home"
    home.mkdir()
    _run(["simulate", "--out", str(data), "--accounts", "200", "--years", "3", "--seed", "5"], home)
    return data, home


def test_metrics_json_rows_reconcile(portfolio):
    data, home = portfolio
    rows = json.loads(_run(["metrics", "--data", str(data), "--period", "quarter", "--json"], home).stdout)
    assert rows and {"period", "starting_arr", "new_arr", "expansion_arr", "contraction_arr", "churned_arr",
                     "ending_arr", "grr", "nrr", "logo_retention"} <= set(rows[0])
    for r in rows:
        assert r["starting_arr"] + r["new_arr"] + r["expansion_arr"] - r["contraction_arr"] - r["churned_arr"] \
            == pytest.approx(r["ending_arr"], abs=1e-6)
    for a, b in zip(rows, rows[1:]):
        assert a["ending_arr"] == pytest.approx(b["starting_arr"])
    assert rows[-1]["period"] == "2026Q3"          # the simulator's data end is 2026-10-01
    g = json.loads(_run(["metrics", "--data", str(data), "--period", "year", "--group-by", "segment", "--json"],
                        home).stdout)
    assert {r["group"] for r in g} == {"Enterprise", "Mid-Market", "SMB"}
    last = [r for r in g if r["period"] == "2025"]
    total = [r for r in json.loads(_run(["metrics", "--data", str(data), "--period", "year", "--json"],
                                        home).stdout) if r["period"] == "2025"][0]
    assert sum(r["ending_arr"] for r in last) == pytest.approx(total["ending_arr"])
    table = _run(["metrics", "--data", str(data), "--period", "month"], home).stdout
    assert "ARR movements" in table
    assert _run(["metrics", "--data", str(data), "--group-by", "planet"], home, check=False).returncode == 2


def test_forecast_and_backtest(portfolio):
    data, home = portfolio
    _run(["train", "--data", str(data), "--family", "churn"], home)
    r = json.loads(_run(["forecast", "--data", str(data), "--start", "2026-10-01", "--end", "2027-01-01",
                         "--group-by", "segment", "--json", "--draws", "500"], home).stdout)
    assert {"window", "as_of", "renewals_due", "expected", "intervals", "groups", "methods", "forecast_risk",
            "at_risk", "model_version"} <= set(r)
    assert set(r["renewals_due"]) >= {"count", "arr"} and r["renewals_due"]["count"] > 0
    assert set(r["expected"]) >= {"renewed_arr", "churned_arr", "grr", "nrr", "arr_change"}
    for k in ("renewed_arr", "grr", "nrr"):
        iv = r["intervals"][k]
        assert iv["p10"] <= iv["p50"] <= iv["p90"]
    assert set(r["methods"]) == {"model", "last_year", "time_series"}
    assert r["model_version"] == "1" and r["as_of"] == "2026-10-01"
    assert {g["group"] for g in r["groups"]} <= {"Enterprise", "Mid-Market", "SMB"}
    assert sum(g["renewals_due"]["arr"] for g in r["groups"]) == pytest.approx(r["renewals_due"]["arr"])
    assert r["at_risk"] and set(r["at_risk"][0]) >= {"account_id", "contract_id", "arr", "p_churn",
                                                     "expected_churned_arr", "renewal_date", "segment"}
    assert len(r["at_risk"]) <= 25
    assert "Methods" in _run(["forecast", "--data", str(data), "--start", "2026-07-01", "--end", "2026-12-01",
                              "--as-of", "2026-08-15", "--draws", "1000"], home).stdout

    b = json.loads(_run(["backtest", "--data", str(data), "--quarters", "1", "--warmup", "1", "--draws", "500",
                         "--json"], home).stdout)
    assert {"quarters", "summary", "coverage_if_calibrated"} <= set(b)
    noise = b["coverage_if_calibrated"]
    assert noise["probabilities"] == "oracle" and noise["windows"] >= 2 and 0 <= noise["p10"] <= noise["p90"] <= 1
    assert "portfolio" in noise["scopes"] and all(0 <= v <= 1 for v in noise["scopes"].values())
    methods = {"model", "last_year", "time_series", "oracle"}
    assert set(b["summary"]) == methods
    assert len(b["quarters"]) == 1 * 4 and {q["method"] for q in b["quarters"]} == methods
    for q in b["quarters"]:
        assert {"quarter", "method", "forecast_renewed_arr", "p10", "p90", "actual_renewed_arr", "covered",
                "grr_forecast", "grr_actual", "nrr_forecast", "nrr_actual"} <= set(q)
    for s in b["summary"].values():
        assert {"wape", "coverage_p10_p90"} <= set(s) and 0 <= s["coverage_p10_p90"] <= 1
        # churn, contraction and expansion at renewal, each against its actual (the oracle's too)
        assert set(s["parts"]) == {"churned", "contraction", "expansion"}
        assert all(v["actual"] >= 0 and v["forecast"] >= 0 for v in s["parts"].values())
    q = b["quarters"][0]
    assert q["actual_churned_arr"] == pytest.approx(q["arr_due"] - q["actual_renewed_arr"])
    assert q["forecast_churned_arr"] == pytest.approx(q["arr_due"] - q["forecast_renewed_arr"])
    assert b["run_id"] and (home / "forecast_calibration.json").exists()
    cal = json.loads((home / "forecast_calibration.json").read_text())
    assert set(cal["tau"]) == {"model", "last_year", "time_series"}
    # tau per segment (Mondrian split-conformal) beside the pooled one, as the forecast reads it
    for m, t in cal["tau"].items():
        assert t["overall"] == pytest.approx(b["tau"][m]) and t["segments"] == b["tau_segments"][m]
        assert set(t["segments"]) <= {"Enterprise", "Mid-Market", "SMB"} and all(v >= 0 for v in t["segments"].values())
    r2 = json.loads(_run(["forecast", "--data", str(data), "--start", "2026-10-01", "--end", "2027-01-01",
                          "--json", "--draws", "1000"], home).stdout)
    assert r2["simulation"]["tau"] == cal["tau"] and r2["simulation"]["tau_source"].startswith("backtest")


@pytest.mark.parametrize("cmd", [
    ["metrics"],
    ["forecast", "--start", "2026-10-01", "--end", "2027-01-01"],
    ["backtest", "--quarters", "2"],
])
def test_bad_data_exits_2_and_writes_nothing(portfolio, tmp_path, cmd):
    data, _ = portfolio
    bad = tmp_path / "bad"
    shutil.copytree(data, bad, ignore=shutil.ignore_patterns("truth"))
    c = pd.read_parquet(bad / "contracts.parquet")
    c.loc[c.index[0], "arr"] = -100.0
    c.to_parquet(bad / "contracts.parquet", index=False)
    home = tmp_path / "home"
    home.mkdir()
    r = _run([cmd[0], "--data", str(bad), *cmd[1:], "--json"], home, check=False)
    assert r.returncode == 2, r.stderr
    assert r.stdout == ""
    assert list(home.iterdir()) == []


def test_nothing_was_written_into_the_working_directory(portfolio):
    assert sorted(p.name for p in WORKDIR.iterdir()) == []
