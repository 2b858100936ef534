"""Spec parsing/validation, feature groups and the bootstrap machinery (fast, no training)."""
from pathlib import Path

import numpy as np
import pytest

from csforecast.experiments.runner import bootstrap_deltas, feature_group
from csforecast.experiments.spec import SpecError, load_spec
from csforecast.metrics.calibration import classification_metrics, rank_auc
from csforecast.metrics.resampling import cluster_resamples
from csforecast.pipelines.result import ValidationSet

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ["health_without_nps", "churn_lgbm_vs_logistic", "feature_groups_ablation", "forecast_methods"]


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_specs_are_valid(name):
    spec, text = load_spec(ROOT / "experiments" / f"{name}.toml")
    assert spec.name == name
    assert spec.baseline == spec.variants[0].name
    assert len(spec.variants) >= 2
    assert "[[variants]]" in text


def test_shipped_examples_match_the_brief():
    h, _ = load_spec(ROOT / "experiments" / "health_without_nps.toml")
    assert h.family == "health" and h.baseline == "all_components"
    wo = next(v for v in h.variants if v.name == "without_nps")
    assert wo.select_components(["deployment", "adoption", "engagement", "nps", "support"]) == \
        ["deployment", "adoption", "engagement", "support"]
    a, _ = load_spec(ROOT / "experiments" / "feature_groups_ablation.toml")
    dropped = {tuple(v.drop_groups) for v in a.variants}
    assert {("usage",), ("support",), ("nps",), ("engagement",)} <= dropped
    f, _ = load_spec(ROOT / "experiments" / "forecast_methods.toml")
    assert {v.method for v in f.variants} == {"model", "last_year", "time_series"}


def _write(tmp_path, text, name="exp.toml"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_name_defaults_to_file_stem_and_baseline_can_be_named(tmp_path):
    p = _write(tmp_path, 'family = "churn"\nbaseline = "b"\n[[variants]]\nname = "a"\n[[variants]]\nname = "b"\n',
               "my_exp.toml")
    spec, _ = load_spec(p)
    assert spec.name == "my_exp" and spec.baseline == "b" and spec.baseline_variant.name == "b"


@pytest.mark.parametrize("body, needle", [
    ('family = "churn"\n[[variants]]\nname = "a"\n[[variants]]\nname = "a"\n', "unique"),
    ('family = "churn"\nbaseline = "zz"\n[[variants]]\nname = "a"\n', "baseline"),
    ('family = "churn"\n[[variants]]\nname = "a"\ndrop_groups = ["telemetry"]\n', "feature group"),
    ('family = "health"\n[[variants]]\nname = "a"\ndrop_components = ["vibes"]\n', "health component"),
    ('family = "health"\n[[variants]]\nname = "a"\nalgorithm = "lightgbm"\n', "does not apply"),
    ('family = "churn"\n[[variants]]\nname = "a"\ndrop_components = ["nps"]\n', "does not apply"),
    ('family = "forecast"\n[[variants]]\nname = "a"\n', "need `method`"),
    ('family = "forecast"\nas_of = 2026-01-01\n[[variants]]\nname = "a"\nmethod = "model"\n', "as_of"),
    ('family = "churn"\nmetrics = ["rmse"]\n[[variants]]\nname = "a"\n', "metric"),
    ('family = "regression"\n[[variants]]\nname = "a"\n', "family"),
    ('family = "churn"\n[[variants]]\nname = "a"\ntypo_field = 1\n', "typo_field"),
    ('family = "churn"\nvariants = []\n', "variants"),
    ('family = "churn"\n[[variants]\nname = "a"\n', "not valid TOML"),
])
def test_invalid_specs_are_rejected_with_a_reason(tmp_path, body, needle):
    with pytest.raises(SpecError) as e:
        load_spec(_write(tmp_path, body))
    assert needle in str(e.value)


def test_missing_spec_file(tmp_path):
    with pytest.raises(SpecError, match="cannot read"):
        load_spec(tmp_path / "nope.toml")


def test_feature_selection_by_group_name_and_glob(tmp_path):
    p = _write(tmp_path, 'family = "churn"\n[[variants]]\nname = "a"\n'
                         'drop_groups = ["nps"]\ndrop_features = ["tickets_p1_*", "arr"]\n')
    v = load_spec(p)[0].variants[0]
    cols = ["arr", "seats", "nps_latest", "account_nps_365d", "days_since_nps", "tickets_p1_30d", "tickets_p1_90d",
            "tickets_30d", "seat_utilisation"]
    assert v.select_features(cols, feature_group) == ["seats", "tickets_30d", "seat_utilisation"]
    p = _write(tmp_path, 'family = "churn"\n[[variants]]\nname = "a"\nkeep_groups = ["usage", "profile"]\n')
    v = load_spec(p)[0].variants[0]
    assert v.select_features(cols, feature_group) == ["arr", "seats", "seat_utilisation"]


def test_every_snapshot_feature_has_a_sensible_group(small_portfolio):
    from datetime import date

    from csforecast.data.sources import open_source
    from csforecast.features.snapshot import build_snapshots, feature_columns

    snap = build_snapshots(open_source(small_portfolio), [date(2026, 3, 1)], labels=False)
    groups = {c: feature_group(c, ("active_users", "logins", "key_features_used")) for c in feature_columns(snap)}
    for c, g in groups.items():
        if c.startswith(("active_users", "logins", "key_feature", "seat_utilisation")):
            assert g == "usage", c
        if c.startswith(("tickets", "csat", "ticket_csat", "open_tickets")):
            assert g == "support", c
        if "nps" in c:
            assert g == "nps", c
        if c.startswith(("touches", "exec", "qbrs", "days_since_exec", "champion")):
            assert g == "engagement", c
    assert groups["arr"] == groups["segment"] == groups["days_to_renewal"] == "profile"
    assert set(groups.values()) == {"usage", "support", "nps", "engagement", "profile"}


def test_bootstrap_metrics_are_the_metric_definitions():
    """The runner's bootstrap recomputes the family metrics with the one definition of each (metrics/)."""
    from csforecast.experiments.variants import ADAPTERS

    rng = np.random.default_rng(3)
    p = np.clip(rng.beta(1.2, 6, 3000), 1e-4, 1 - 1e-4)
    y = (rng.random(3000) < p * 1.3).astype(float)
    ref = classification_metrics(y, p)
    fns = ADAPTERS["churn"].metric_fns()
    idx = np.arange(len(y))
    for k, fn in fns.items():
        assert fn({"y": y}, {"p": p}, idx) == pytest.approx(ref[k], abs=1e-12), k


def test_cluster_bootstrap_keeps_accounts_whole():
    clusters = np.repeat(np.array(["a", "b", "c", "d"]), [1, 2, 3, 4])
    for idx in cluster_resamples(clusters, 50, seed=1):
        drawn = clusters[idx]
        for c in "abcd":
            k = int((drawn == c).sum())
            assert k % int((clusters == c).sum()) == 0      # whole clusters only
        assert len(np.unique(idx)) <= len(idx)


def test_paired_bootstrap_is_zero_for_identical_variants_and_covers_a_real_gap():
    rng = np.random.default_rng(0)
    n = 4000
    clusters = np.repeat(np.arange(800), 5)
    truth = rng.normal(size=800)[clusters]
    y = (rng.random(n) < 1 / (1 + np.exp(-(truth - 1.5)))).astype(int)
    good = 1 / (1 + np.exp(-(truth - 1.5)))
    bad = 1 / (1 + np.exp(-(0.3 * truth + rng.normal(size=n) - 1.5)))
    val = ValidationSet(rows=None, outcomes={"y": y}, clusters=clusters)
    fns = {"auc": lambda yy, pr, i: rank_auc(yy["y"][i], pr["p"][i])}
    ci = bootstrap_deltas(val, {"base": {"p": good}, "same": {"p": good.copy()}, "bad": {"p": bad}}, "base", fns,
                          200, 0)
    assert ci["same"]["auc"] == [0.0, 0.0]
    lo, hi = ci["bad"]["auc"]
    point = rank_auc(y, bad) - rank_auc(y, good)
    assert lo < point < hi < 0
