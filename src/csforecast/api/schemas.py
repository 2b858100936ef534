"""Request and response models of the HTTP API (they are the OpenAPI schema shown at /docs).

Field names are a contract. Families that are not served (no survival or health champion) leave their
objects null or their keys out: nothing here is ever filled with a made-up value.
"""
from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

SORT_KEYS = ("risk_arr", "churn_probability", "arr", "health_score", "renewal_date")
SortKey = Literal["risk_arr", "churn_probability", "arr", "health_score", "renewal_date"]
Band = Literal["red", "yellow", "green"]
Band5 = Literal["critical", "poor", "fair", "good", "excellent"]
Quadrant = Literal["healthy", "false_positive", "quiet_value", "at_risk"]
# the scorecard beside the health score (docs/health.md, "The scorecard people can own"); null without health
OUTCOMES_DOC = "Outcomes sub-score 0-100 (deployment, adoption, engagement, value); null when no such component."
EXPERIENCE_DOC = "Experience sub-score 0-100 (NPS, support, sentiment); null when no such component."
QUADRANT_DOC = ("healthy | false_positive (good experience, poor outcomes) | quiet_value | at_risk, split at "
                "[scorecard] quadrant_cut; null when a sub-score is null.")
BAND5_DOC = "critical | poor | fair | good | excellent at [scorecard] five_bands; health_band stays red/yellow/green."
Period = Literal["month", "quarter", "year"]
RetentionGroup = Literal["segment", "region", "csm_id", "industry", "cohort"]
ForecastGroup = Literal["segment", "region", "csm_id", "industry"]
# group_by of /v1/forecast/renewals: one forecast group column or two separated by a comma ("segment,csm_id")
FORECAST_GROUP_PATTERN = r"^(segment|region|csm_id|industry)(,(segment|region|csm_id|industry))?$"
RowValue = float | str | bool | None


class _Open(BaseModel):
    """Nested objects produced by model pipelines: documented fields, extra fields passed through."""
    model_config = ConfigDict(extra="allow")


class ErrorResponse(BaseModel):
    detail: str | list[Any] = Field(description="What went wrong; for 422 a list of field-level errors.")
    model_config = ConfigDict(json_schema_extra={"examples": [{"detail": "account 'A99999' not found"}]})


# ------------------------------------------------------------------------------------------- accounts
class Driver(_Open):
    feature: str
    value: RowValue = None
    contribution: float | None = Field(None, description="Contribution to the churn log-odds.")
    text: str | None = Field(None, description="The driver in plain words.")
    component: str | None = None
    lever: str | None = Field(None, description="What a CSM can do about it.")


class SurvivalSummary(_Open):
    p_active_90d: float | None = None
    p_active_180d: float | None = None
    p_active_365d: float | None = None
    expected_lifetime_days: float | None = Field(None, description="Expected remaining lifetime in days.")
    p_renewal_survival: float | None = None
    contributions: dict[str, Any] | None = None
    model_version: str | None = None


class HealthComponent(_Open):
    component: str
    score: float | None = None
    band: str | None = None
    contribution: float | None = None
    lever: str | None = None


class HealthSummary(_Open):
    score: float | None = Field(None, description="Health score, 0–100.")
    band: str | None = Field(None, description="red | yellow | green")
    components: list[HealthComponent] = Field(default_factory=list)
    model_version: str | None = None


class Trigger(_Open):
    trigger: str
    evidence: Any = None


class TrendPoint(_Open):
    week: date
    health_score: float | None = None
    components: dict[str, float | None] | None = Field(None, description="Component scores (0–100) that week.")
    change: float | None = Field(None, description="Change vs the previous week.")
    change_explanation: Any = Field(None, description="What moved the score since the previous week.")


_DRIVER_EX = {"feature": "seat_utilisation_90d", "value": 0.31, "contribution": 0.42,
              "text": "seat utilisation (90 days) 31 % (+0.42 log-odds; associated with higher churn risk)",
              "component": "Deployment", "lever": "run a deployment / licence-utilisation review"}


class CallView(BaseModel):
    """The churn model's probability, the CSM's latest call before the as-of date and their blend."""
    p_model: float | None = Field(None, description="The churn model's probability (before any blend).")
    p_call: float | None = Field(None, description="The call category's historical churn rate (mean_p_call).")
    p_blend: float | None = Field(None, description="The blend of model and call (docs/metrics.md).")
    category: str | None = Field(None, description="commit | most_likely | at_risk | churn; null without a call.")
    csm_id: str | None = None
    called_at: date | None = None
    amount: float | None = None
    csm_bias: float | None = Field(None, description="The calling CSM's bias on the log-odds scale (positive: "
                                                      "pessimistic calls, negative: optimistic).")


class AccountDetail(BaseModel):
    account_id: str
    name: str | None = None
    segment: str | None = None
    industry: str | None = None
    region: str | None = None
    csm_id: str | None = None
    arr: float | None = None
    seats: float | None = None
    contract_id: str | None = None
    tenure_days: int | None = Field(None, description="Days since the account's first contract started.")
    renewal_date: date | None = Field(None, description="Next renewal date (end of the current contract).")
    days_to_renewal: int | None = Field(None, description="Days from as_of to renewal_date.")
    churn_probability: float | None = Field(None, description="Calibrated probability of churn at the next renewal.")
    churn_probability_interval: list[float] | None = Field(
        None, description="[P10, P90] of churn_probability under the model's bootstrapped calibration maps "
                          "(docs/forecast.md); null for a model without them.")
    churn_base_logit: float | None = Field(None, description="Base value of the driver decomposition (log-odds).")
    risk_arr: float | None = Field(None, description="churn_probability × arr.")
    drivers: list[Driver] = Field(default_factory=list, description="Top churn drivers, largest first.")
    survival: SurvivalSummary | None = Field(None, description="Null when no survival model is served.")
    health: HealthSummary | None = Field(None, description="Null when no health model is served.")
    triggers: list[Trigger] | None = Field(None, description="Fired risk triggers; null without a health model.")
    health_trend: list[TrendPoint] | None = Field(None, description="Weekly health history, oldest first.")
    outcomes_score: float | None = Field(None, description=OUTCOMES_DOC)
    experience_score: float | None = Field(None, description=EXPERIENCE_DOC)
    health_quadrant: Quadrant | None = Field(None, description=QUADRANT_DOC)
    health_band5: Band5 | None = Field(None, description=BAND5_DOC)
    model_versions: dict[str, str] = Field(default_factory=dict, description="Versions that produced these scores.")
    fallback: dict[str, str] = Field(default_factory=dict, description="Families whose scores came from a small-book "
                                                                       "fallback model, and what it is.")
    churn_probability_source: str | None = Field(
        None, description="Which probability churn_probability is: 'model' (the churn model), 'blend' (the churn "
                          "model blended with the CSM's call) or 'survival' (a renewal beyond the churn model's "
                          "365-day horizon, scored by the survival model: 1 - p_renewal_survival).")
    call: CallView | None = Field(None, description="The model's probability, the CSM's latest call and the "
                                                     "blend side by side; null without a blend model.")
    as_of: date
    data_hash: str
    score_set_version: int
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "account_id": "A00001", "name": "Rapid Capital Inc", "segment": "SMB", "industry": "Software",
        "region": "North America", "csm_id": "CSM03", "arr": 9050.46, "seats": 14, "contract_id": "C000004",
        "tenure_days": 1287, "renewal_date": "2027-03-23", "days_to_renewal": 173, "churn_probability": 0.2576,
        "churn_base_logit": -2.108, "risk_arr": 2331.43, "drivers": [_DRIVER_EX],
        "survival": None, "health": None, "triggers": None, "health_trend": None,
        "model_versions": {"churn": "3"}, "as_of": "2026-10-01", "data_hash": "c366e59399d43ceeb85a5648",
        "score_set_version": 2}]})


class AccountSummary(BaseModel):
    account_id: str
    name: str | None = None
    segment: str | None = None
    industry: str | None = None
    region: str | None = None
    csm_id: str | None = None
    arr: float | None = None
    renewal_date: date | None = None
    days_to_renewal: int | None = Field(None, description="Days from as_of to renewal_date.")
    churn_probability: float | None = None
    health_score: float | None = None
    health_band: str | None = None
    outcomes_score: float | None = Field(None, description=OUTCOMES_DOC)
    experience_score: float | None = Field(None, description=EXPERIENCE_DOC)
    health_quadrant: Quadrant | None = Field(None, description=QUADRANT_DOC)
    health_band5: Band5 | None = Field(None, description=BAND5_DOC)
    risk_arr: float | None = None
    # the same provenance as the single-account response (AccountDetail)
    model_versions: dict[str, str] = Field(default_factory=dict, description="Versions that produced these scores.")
    fallback: dict[str, str] = Field(default_factory=dict, description="Families whose scores came from a small-book "
                                                                       "fallback model, and what it is.")
    as_of: date
    data_hash: str
    score_set_version: int


class AccountPage(BaseModel):
    items: list[AccountSummary]
    next_cursor: str | None = Field(None, description="Pass as `cursor` for the next page; null on the last page.")
    total: int = Field(description="Accounts matching the filters (all pages).")
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "items": [{"account_id": "A00001", "name": "Rapid Capital Inc", "segment": "SMB", "industry": "Software",
                   "region": "North America", "csm_id": "CSM03", "arr": 9050.46, "renewal_date": "2027-03-23",
                   "days_to_renewal": 173, "churn_probability": 0.2576, "health_score": None,
                   "health_band": None, "risk_arr": 2331.43,
                   "model_versions": {"churn": "3", "survival": "2", "health": "2"}, "fallback": {},
                   "as_of": "2026-10-01", "data_hash": "3f2a9c1e77b04d5a", "score_set_version": 4}],
        "next_cursor": "eyJvIjo1MCwidiI6MiwicSI6IjFhMmIzYyJ9", "total": 273}]})


# ------------------------------------------------------------------------------------------- scoring
class ScoreRequest(BaseModel):
    rows: list[dict[str, RowValue]] = Field(
        min_length=1,
        description="Rows in the churn model's input schema (feature name → value; `GET /v1/models` lists the "
                    "inputs). Inputs left out and null values are scored as missing values, and a row that "
                    "leaves inputs out gets a `missing_inputs` warning; a categorical level the model never "
                    "saw gets an `unknown_level` warning. Rejected (422, row and field named): unknown names, "
                    "wrong types, NaN / ±Infinity / numbers beyond the float range, and a row with none of "
                    "the model's inputs.")
    contributions: bool = Field(False, description="Also return per-feature contributions (log-odds).")
    health: bool = Field(True, description="Also return health_score when a health model is served and every row "
                                           "carries all of its inputs; false skips it (churn only, faster).")
    strict: bool = Field(False, description="Reject (422) rows with warnings instead of scoring them: every input "
                                            "must be given (null for a missing value) and every categorical "
                                            "level known to the model.")
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "rows": [{"arr": 24000, "seats": 40, "segment": "Mid-Market", "seat_utilisation_90d": 0.31,
                  "days_since_login": 12, "open_tickets": 3, "nps_latest": 6}],
        "contributions": True}]})


class RowWarning(BaseModel):
    type: Literal["unknown_level", "missing_inputs"]
    msg: str = Field(description="The warning in words.")
    field: str | None = Field(None, description="unknown_level: the input whose level is unknown.")
    value: str | None = Field(None, description="unknown_level: the level sent.")
    fields: list[str] | None = Field(None, description="missing_inputs: the inputs the row leaves out.")


class ScoreResult(BaseModel):
    churn_probability: float
    health_score: float | None = Field(None, description="Only present when the health model could score the row.")
    outcomes_score: float | None = Field(None, description="With health_score: " + OUTCOMES_DOC)
    experience_score: float | None = Field(None, description="With health_score: " + EXPERIENCE_DOC)
    health_quadrant: Quadrant | None = Field(None, description="With health_score: " + QUADRANT_DOC)
    health_band5: Band5 | None = Field(None, description="With health_score: " + BAND5_DOC)
    contributions: dict[str, float | None] | None = Field(
        None, description="Only with contributions=true: feature → contribution to the churn log-odds.")
    base_value: float | None = Field(None, description="Only with contributions=true: base log-odds.")
    warnings: list[RowWarning] | None = Field(None, description="Only present when the row has warnings: levels "
                                                                "the model never saw, inputs left out.")


class ScoreResponse(BaseModel):
    model_versions: dict[str, str]
    results: list[ScoreResult]
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "model_versions": {"churn": "3"},
        "results": [{"churn_probability": 0.183, "contributions": {"seat_utilisation_90d": 0.42, "arr": -0.05},
                     "base_value": -2.11,
                     "warnings": [{"type": "unknown_level", "field": "segment", "value": "Enterprize",
                                   "msg": "segment: level 'Enterprize' was not seen in training, scored as a "
                                          "missing value (known: 'Enterprise', 'Mid-Market', 'SMB')"}]}]}]})


# ------------------------------------------------------------------------------------------- forecast
class ForecastResponse(BaseModel):
    start: date
    end: date
    group_by: str | None = None
    data_hash: str | None = None
    model_versions: dict[str, str] = Field(default_factory=dict)
    forecast: dict[str, Any] = Field(description="The renewal forecast (csforecast.forecast.renewals.forecast_window).")
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "start": "2026-10-01", "end": "2027-01-01", "group_by": "segment", "data_hash": "c366e59399d43ceeb85a5648",
        "model_versions": {"churn": "3"},
        "forecast": {"expected_renewal_arr": 1250000.0, "p10": 1130000.0, "p90": 1360000.0}}]})


# ------------------------------------------------------------------------------------------- metrics
class RetentionRow(_Open):
    period: str
    group: str | None = None
    period_start: date | None = None
    period_end: date | None = None
    starting_arr: float | None = None
    new_arr: float | None = None
    expansion_arr: float | None = None
    contraction_arr: float | None = None
    churned_arr: float | None = None
    ending_arr: float | None = None
    grr: float | None = None
    nrr: float | None = None
    logo_retention: float | None = None
    starting_logos: int | None = None
    new_logos: int | None = None
    churned_logos: int | None = None
    ending_logos: int | None = None
    logo_churn_rate: float | None = None
    renewal_rate: float | None = None
    expected_renewal_arr: float | None = None
    renewed_arr: float | None = None


class RetentionResponse(BaseModel):
    period: Period
    group_by: str | None = None
    data_end: date
    data_hash: str | None = None
    rows: list[RetentionRow]
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "period": "quarter", "group_by": None, "data_end": "2026-10-01", "data_hash": "c366e59399d43ceeb85a5648",
        "rows": [{"period": "2026Q2", "group": None, "period_start": "2026-04-01", "period_end": "2026-07-01",
                  "starting_arr": 5400000.0, "new_arr": 210000.0, "expansion_arr": 95000.0,
                  "contraction_arr": 40000.0, "churned_arr": 180000.0, "ending_arr": 5485000.0,
                  "grr": 0.9593, "nrr": 0.9769, "logo_retention": 0.95, "starting_logos": 260, "new_logos": 14,
                  "churned_logos": 13, "ending_logos": 261, "logo_churn_rate": 0.05, "renewal_rate": 0.88,
                  "expected_renewal_arr": 1500000.0, "renewed_arr": 1320000.0}]}]})


# ------------------------------------------------------------------------------------------- models
class ModelVersionInfo(BaseModel):
    version: str
    run_id: str | None = None
    aliases: list[str] = Field(default_factory=list)
    guard: str | None = None
    decision: str | None = Field(None, description="The promotion guard's decision when the version was registered: "
                                                   "promoted, kept, refused or blocked (docs/operations.md).")
    data_hash: str | None = Field(None, description="Hash of the data the version was trained on.")
    data_profile: dict[str, Any] | None = Field(None, description="Profile of the data the version was trained on: "
                                                                  "per table rows, accounts, first/last date, null "
                                                                  "shares; the label base rate (docs/operations.md).")
    fallback: str | None = Field(None, description="What the version is when it is a small-book fallback; null for "
                                                   "a full model.")
    accept_data_change: str | None = Field(None, description="The data changes a person accepted when training it.")
    dropped_components: dict[str, str] | None = Field(None, description="Health: components dropped or scored from "
                                                                        "fewer inputs, and why.")
    orphan: bool = Field(False, description="Registered by a training run that never finished (its process was "
                                            "killed): not a trained model, never served.")


class FamilyInfo(BaseModel):
    family: str
    registered_model: str
    served_version: str
    source: Literal["registry", "cache"] = Field(description="Where the served estimator was loaded from.")
    pinned: bool = False
    run_id: str | None = None
    aliases: list[str] = Field(default_factory=list, description="Aliases the served version has now.")
    metrics: dict[str, float] = Field(default_factory=dict, description="MLflow metrics of the served version's run.")
    inputs: list[str] = Field(default_factory=list, description="Input columns of the served estimator (the row "
                                                                "keys POST /v1/score accepts).")
    versions: list[ModelVersionInfo] = Field(default_factory=list, description="All registered versions, newest first.")
    fallback: str | None = Field(None, description="What the served version is when it is a small-book fallback "
                                                   "(pooled churn rates, sBG retention, equal-weight health "
                                                   "scorecard); null for a full model.")
    data_hash: str | None = Field(None, description="Hash of the data the served version was trained on.")
    data_profile: dict[str, Any] | None = Field(None, description="Profile of the data the served version was "
                                                                  "trained on (docs/operations.md).")
    dropped_components: dict[str, str] | None = Field(None, description="Health: components dropped or scored from "
                                                                        "fewer inputs, and why.")


class ModelsResponse(BaseModel):
    families: dict[str, FamilyInfo]
    registry_reachable: bool = Field(description="False: aliases/metrics are the snapshot taken when models loaded.")
    loaded_at: datetime
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "families": {"churn": {"family": "churn", "registered_model": "csforecast-churn", "served_version": "3",
                               "source": "registry", "pinned": False, "run_id": "443dc4581ac4444b80bf593a75913b65",
                               "aliases": ["champion"], "metrics": {"auc": 0.72, "ece": 0.015},
                               "versions": [{"version": "3", "run_id": "443dc4581ac4444b80bf593a75913b65",
                                             "aliases": ["champion"], "guard": "no champion yet"}]}},
        "registry_reachable": True, "loaded_at": "2026-11-24T23:20:47Z"}]})


# ------------------------------------------------------------------------------------------- admin / ops
class ScoreSetInfo(BaseModel):
    version: int
    as_of: date
    data_hash: str
    n_accounts: int
    models: dict[str, str] = Field(default_factory=dict)


class ReloadResponse(BaseModel):
    status: Literal["reloaded"]
    generation: int = Field(description="Increments with every (re)load that changed the served state.")
    changed: list[Literal["models", "score_set", "problems"]] = Field(
        default_factory=list, description="What this reload replaced: the model set, the score set, or only the "
                                          "problems of a degraded state; empty when everything served was "
                                          "already the latest (the state stayed as it was).")
    models: dict[str, str]
    score_set: ScoreSetInfo
    previous_models: dict[str, str] = Field(default_factory=dict)
    previous_score_set: int | None = None
    seconds: float
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "status": "reloaded", "generation": 2, "changed": ["models", "score_set"], "models": {"churn": "4"},
        "score_set": {"version": 3, "as_of": "2026-10-01", "data_hash": "c366e59399d43ceeb85a5648",
                      "n_accounts": 273, "models": {"churn": "4"}},
        "previous_models": {"churn": "3"}, "previous_score_set": 2, "seconds": 1.9}]})


class Liveness(BaseModel):
    status: Literal["ok"] = "ok"


class Readiness(BaseModel):
    ready: bool
    models: dict[str, str] = Field(default_factory=dict)
    model_source: str | None = None
    score_set: ScoreSetInfo | None = None
    problems: list[str] = Field(default_factory=list)
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "ready": True, "models": {"churn": "3"}, "model_source": "registry",
        "score_set": {"version": 2, "as_of": "2026-10-01", "data_hash": "c366e59399d43ceeb85a5648",
                      "n_accounts": 273, "models": {"churn": "3"}}, "problems": []}]})
