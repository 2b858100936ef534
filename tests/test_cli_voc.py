"""`csforecast voc`, `reasons` and `pipeline` on a small simulated book: JSON with the issue's keys, the
csforecast.toml mapping and stage probabilities honoured, the tables printed, bad options and a source
without the optional tables answered with one error line or a documented fallback, never a traceback.
(Every command validates its source first, a few seconds each: the book is small and the runs few.)"""
import json
import shutil

import pytest
from typer.testing import CliRunner

from csforecast.cli import app


@pytest.fixture(scope="module")
def book(tmp_path_factory):
    from csforecast.simulate import simulate_portfolio

    d = tmp_path_factory.mktemp("sim150")
    simulate_portfolio(150, 2, seed=3).write(d)
    return d


@pytest.fixture()
def run(tmp_path, monkeypatch):
    from csforecast.config import reset_settings

    monkeypatch.setenv("CSFORECAST_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("CSFORECAST_CONFIG", str(tmp_path / "csforecast.toml"))

    def invoke(*args):
        reset_settings()
        return CliRunner().invoke(app, list(args))

    yield invoke
    reset_settings()


def test_json_keys_settings_and_tables(run, book, tmp_path, capsys):
    from csforecast.cli.voc import print_pipeline, print_reasons, print_voc

    (tmp_path / "csforecast.toml").write_text(
        '[churn_reasons]\navoidable = ["low_adoption"]\nunavoidable = ["budget"]\n'
        '[pipeline.stage_probabilities]\nemailed = 0.1\ndiscussion = 0.3\ncontract_sent = 0.6\nverbal = 0.9\n'
        'signed = 1.0\nlost = 0.0\n')
    d = str(book)
    r = run("voc", "--data", d, "--window-days", "365", "--group-by", "respondent_role", "--json")
    assert r.exit_code == 0, r.output
    voc = json.loads(r.stdout)
    assert {"nps", "nps_ci", "n_responses", "response_coverage", "csat_mean", "ces_mean", "matrix", "trend",
            "groups"} <= set(voc)
    reasons = json.loads(run("reasons", "--data", d, "--group-by", "segment", "--json").stdout)
    assert {"reasons", "avoidable_logo_share", "avoidable_arr_share", "groups"} <= set(reasons)
    rows = {x["reason"]: x for x in reasons["reasons"]}
    assert rows["low_adoption"]["avoidable"] is True and rows["budget"]["avoidable"] is False
    assert all(x["avoidable"] is None for k, x in rows.items() if k not in ("low_adoption", "budget"))
    pipe = json.loads(run("pipeline", "--data", d, "--json").stdout)
    assert {"stage_probabilities", "windows", "backtest"} <= set(pipe)
    assert pipe["stage_probabilities"]["discussion"]["default"] == 0.3
    capsys.readouterr()
    print_voc(voc), print_reasons(reasons), print_pipeline(pipe)
    printed = capsys.readouterr().out
    for title in ("VoC matrix", "Churn reasons", "By tenure at renewal", "Stage probabilities", "Back-test"):
        assert title in printed
    (tmp_path / "csforecast.toml").write_text('[pipeline.stage_probabilities]\nverbal = 1.5\n')
    bad = run("pipeline", "--data", d)
    assert bad.exit_code == 2 and "stage_probabilities" in bad.output and "Traceback" not in bad.output


def test_bad_options_and_a_source_with_only_accounts_and_contracts(run, book, tmp_path):
    d = str(book)
    for args in (("voc", "--group-by", "planet"), ("reasons", "--period", "2025Q9"), ("pipeline", "--group-by", "x"),
                 ("voc", "--as-of", "yesterday"), ("voc", "--window-days", "0")):
        r = run(args[0], "--data", d, *args[1:])
        assert r.exit_code == 2 and "Traceback" not in r.output, r.output
    bare = tmp_path / "bare"
    bare.mkdir()
    for t in ("accounts", "contracts"):
        shutil.copy(book / f"{t}.parquet", bare / f"{t}.parquet")
    v = run("voc", "--data", str(bare), "--json")
    assert v.exit_code == 0, v.output
    assert json.loads(v.stdout)["nps"] is None
    p = run("pipeline", "--data", str(bare), "--json")
    assert p.exit_code == 0 and json.loads(p.stdout)["windows"] == [] and "no opportunities" in p.output
    assert run("reasons", "--data", str(bare), "--json").exit_code == 0
