"""The glossary: one definition per figure the dashboard shows (also the title text of every label)."""
from __future__ import annotations

from typing import Any, Mapping

GLOSSARY: dict[str, tuple[str, str]] = {
    "arr": ("ARR", "Annual recurring revenue: the annualised value of the account's active contracts."),
    "arr_band": ("ARR band", "Accounts grouped by ARR: <10k, 10k–50k, 50k–200k, ≥200k (currency of the data). "
                             "High-ARR means ARR ≥ 50k; low-tier means ARR < 10k."),
    "churn_probability": ("Churn probability", "Calibrated probability that the account does not renew at its "
                                               "next renewal date, from the champion churn model."),
    "risk_arr": ("Risk × ARR", "Churn probability × ARR: the ARR expected to be lost at the next renewal. "
                               "Lists are sorted by it."),
    "expected_churned_arr": ("Expected churned ARR", "Sum of churn probability × ARR over the accounts: the ARR "
                                                     "expected to be lost at their next renewals."),
    "renewal_date": ("Renewal date", "End of the current contract: the day the next renewal decision is due."),
    "renewals_due": ("Renewals due", "Accounts whose next renewal date falls in the month or quarter, and their ARR."),
    "grr": ("GRR", "Gross revenue retention = (starting ARR − contraction − churned) / starting ARR. Never above "
                   "100 %. For a renewal window: renewed ARR (at the ARR due) / ARR due."),
    "nrr": ("NRR", "Net revenue retention = (starting ARR + expansion − contraction − churned) / starting ARR. "
                   "For a renewal window: ARR of the renewed contracts' successors / ARR due."),
    "logo_retention": ("Logo retention", "Share of the accounts active at the start of a period still active at its "
                                         "end."),
    "p10_p90": ("P10 / P50 / P90", "Percentiles of the Monte Carlo forecast: 10 % of simulated outcomes fall below "
                                   "P10, half below P50, 90 % below P90. P10–P90 is an 80 % interval."),
    "fan_chart": ("Fan chart", "The forecast's P10–P90 band (shaded) around its P50 and expected value, per quarter."),
    "renewed_arr": ("Renewed ARR", "ARR due in the window that renews (valued at the ARR due, before expansion "
                                   "or contraction)."),
    "arr_due": ("ARR due", "ARR of the contracts whose renewal date falls in the window."),
    "new_arr": ("New ARR", "ARR of accounts that had none at the start of the period."),
    "expansion_arr": ("Expansion ARR", "ARR increase of accounts active at both ends of the period."),
    "contraction_arr": ("Contraction ARR", "ARR decrease of accounts still active at the end of the period."),
    "churned_arr": ("Churned ARR", "ARR of accounts active at the start of the period with none at its end."),
    "health_score": ("Health score", "0–100, higher is healthier: component scores weighted by a logistic "
                                     "regression of churn at renewal; the typical account scores 50."),
    "health_band": ("Health band", "red / yellow / green from cut-offs on the health score (see the bands below)."),
    "health_band5": ("Five-band label", "critical / poor / fair / good / excellent from the [scorecard] five_bands "
                                        "cut-offs on the health score (default 20, 40, 60, 80)."),
    "outcomes_score": ("Outcomes", "0–100: the mean of the account's Outcomes component scores (deployment, "
                                   "adoption, engagement, value/ROI)."),
    "experience_score": ("Experience", "0–100: the mean of the account's Experience component scores (NPS, "
                                       "support, CSM sentiment)."),
    "health_quadrant": ("Quadrant", "Outcomes × Experience split at [scorecard] quadrant_cut: healthy, false "
                                    "positive (good experience, poor outcomes: happy but not getting value), quiet "
                                    "value (good outcomes, poor experience) or at risk."),
    "health_component": ("Health component", "Deployment, adoption, engagement, NPS, support (…): each scored "
                                             "0–100 from documented measures."),
    "contribution": ("Contribution", "Points a component adds to (or takes from) the health score relative to the "
                                     "typical account (exact Shapley values; they sum to score − 50)."),
    "health_change": ("Health change", "Health score now minus one week earlier, with the components that moved it."),
    "driver": ("Driver", "A feature that pushes this account's churn probability up or down in the model "
                         "(log-odds contribution). Drivers are associations learned from history, not causes."),
    "lever": ("Lever", "The CS action usually associated with a driver or component (e.g. an executive business "
                       "review for engagement). Associations, not proven effects."),
    "trigger": ("Risk trigger", "A rule that fired on the latest data (e.g. champion left, NPS detractor), with "
                                "its evidence."),
    "survival": ("Survival curve", "Probability the account is still active 90, 180 and 365 days after the as-of "
                                   "date, from the survival model."),
    "expected_lifetime": ("Expected lifetime", "Expected remaining customer lifetime in days (survival model)."),
    "auc": ("AUC", "Area under the ROC curve: probability a churned account is ranked above a renewed one "
                   "(0.5 = chance, 1 = perfect)."),
    "ece": ("ECE", "Expected calibration error: mean |observed churn rate − predicted probability| over 10 "
                   "equal-width probability bins, weighted by rows. 0 = perfectly calibrated."),
    "brier": ("Brier score", "Mean squared error of the predicted probabilities (lower is better)."),
    "log_loss": ("Log loss", "Mean negative log-likelihood of the outcomes under the predicted probabilities."),
    "calibration_slope": ("Calibration slope", "Slope of a logistic fit of the outcome on the predicted log-odds; "
                                               "1 = well spread, < 1 = over-confident."),
    "c_index": ("C-index", "Concordance of predicted risk with observed churn times (0.5 = chance)."),
    "wape": ("WAPE", "Weighted absolute percentage error = Σ|actual − forecast| / Σ|actual| over the backtested "
                     "quarters (and segments)."),
    "bias": ("Bias", "Mean signed forecast error relative to the actuals (positive = forecast too high)."),
    "coverage": ("P10–P90 coverage", "Share of backtested quarters whose actual fell inside the forecast's "
                                     "P10–P90 interval (80 % if the intervals are calibrated)."),
    "oracle": ("Oracle", "The same metric computed from the simulator's true churn probabilities: the best any "
                         "model could do on this (simulated) data. Only known for simulated portfolios."),
    "champion": ("Champion", "The registered model version that is served. A new version becomes champion only if "
                             "it beats the current one on the same validation rows."),
    "as_of": ("As of", "The date the scores describe: features use only data before it."),
    "score_set": ("Score set", "One versioned batch of scores for every active account (scores store)."),
    "coverage_anomaly": ("Coverage anomaly", "High-ARR accounts (≥ 50k) without an assigned CSM, or low-tier "
                                             "accounts (< 10k) with one."),
    "tau": ("τ (common shock)", "Standard deviation of a shared shock on the churn log-odds that widens forecast "
                                "intervals; calibrated by the backtest."),
}


def term(key: str) -> dict:
    """{"key", "name", "definition"} of a glossary entry (for title attributes and links)."""
    name, definition = GLOSSARY[key]
    return {"key": key, "name": name, "definition": definition}


def glossary_view(band_cutoffs: Mapping[str, Any] | None = None) -> dict:
    items = [term(k) for k in sorted(GLOSSARY, key=lambda k: GLOSSARY[k][0].lower())]
    if band_cutoffs:
        mode = band_cutoffs.get("mode", "fixed")
        extra = (f"Configured cut-offs: red below {band_cutoffs.get('red')}, yellow below "
                 f"{band_cutoffs.get('yellow')}, green otherwise ({mode}"
                 f"{' quantiles of the current base' if mode == 'quantile' else ' score points'}).")
        for it in items:
            if it["key"] == "health_band":
                it["definition"] = it["definition"] + " " + extra
    return {"items": items}
