"""The metric rows `csforecast train` prints (the --json output carries everything)."""
from csforecast.cli.train import metric_cells


def test_metric_cells_show_numbers_flags_and_intervals():
    m = {"auc": 0.73, "decile_churn_monotone": False, "auc_ci": [0.69, 0.76],
         "auc_gain_ci": {"equal_weight": [0.0, 0.026], "textbook": [None, None]},
         "components": {"nps": {"coef": -0.1, "se": 0.02}}, "ablation_auc": {"nps": 0.7}, "note": "text"}
    assert list(metric_cells(m)) == [
        ("auc", "0.7300"), ("decile_churn_monotone", "no"), ("auc_ci", "[0.6900, 0.7600]"),
        ("auc_gain_ci.equal_weight", "[0.0000, 0.0260]"), ("auc_gain_ci.textbook", "—")]
