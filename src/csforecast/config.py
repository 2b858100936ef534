"""Settings: one optional csforecast.toml, overridden by CSFORECAST_* environment variables.

Everything has a default, so csforecast works with no file at all. All state lives under `home`
(CSFORECAST_HOME, default a `.csforecast/` folder in the working directory, which .gitignore covers): the
MLflow store, the scores database, API keys, the dashboard's session key, the forecast calibration, the
model cache and their lock files. Nothing else is written into the working directory.
"""
from __future__ import annotations

import math
import os
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, TomlConfigSettingsSource


DEFAULT_HOME = ".csforecast"     # in the working directory, when CSFORECAST_HOME is not set
HOME_MODE = 0o700                 # a home csforecast creates is the owner's only: it holds keys and secrets


class HealthBands(BaseModel):
    """Cut-offs on the 0–100 health score: below `red` is red, below `yellow` is yellow, else green."""
    red: float = 40.0
    yellow: float = 70.0
    mode: str = Field("fixed", description="fixed cut-offs, or 'quantile' of the current base")


class TriggerSettings(BaseModel):
    utilisation_below_benchmark: float = 0.25
    active_users_drop: float = 0.25
    exec_silence_days: int = 90
    nps_below: float = 9.0
    champion_left_days: int = 90


class ForecastSettings(BaseModel):
    draws: int = 10_000
    seed: int = 20261124
    disagreement_share: float = 0.05


class ServeSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = 8000
    max_batch: int = 1000
    pinned_versions: dict[str, str] = Field(default_factory=dict)


class GuardSettings(BaseModel):
    """The promotion guard (docs/operations.md): what blocks a new model version from becoming champion."""
    max_loss_share: float = Field(0.5, description="a table that lost more than this share of its rows or of the "
                                                   "accounts it covers blocks the promotion")
    date_tolerance_days: int = Field(31, description="a table whose last date moved earlier, or whose date span "
                                                     "shrank, by more than this many days blocks the promotion")
    max_base_rate_change: float = Field(0.10, description="a label base rate (share of renewals not renewed) that "
                                                          "moved by more than this (absolute) blocks the promotion")
    bootstrap_resamples: int = Field(200, description="account-clustered resamples of the paired comparisons")
    level: float = Field(0.90, description="two-sided level of the bootstrap intervals: a challenger must be better "
                                           "than the champion in the lower end of its interval (and is refused "
                                           "when worse than a baseline at the upper end)")
    seed: int = 0


class SmallBookSettings(BaseModel):
    """Below these counts in the training window the full models are not fitted (docs/operations.md)."""
    min_decisions: int = Field(200, description="renewal decisions due in the training window")
    min_churns: int = Field(30, description="of which churned")
    prior_strength: float = Field(20.0, description="pooled churn fallback: pseudo-decisions at the portfolio rate "
                                                    "each segment's rate is shrunk toward")


class FeatureSettings(BaseModel):
    max_usage_metrics: int = Field(50, ge=1, description="usage metrics used as features: all of them up to this "
                                                         "cap; above it, the ones covering the most accounts (then "
                                                         "rows); the rest are named by train and features")


class MonitoringSettings(BaseModel):
    """Monitoring of what was served (docs/metrics.md, "Monitoring"): `csforecast monitor`, `/metrics`, the
    models page."""
    ece_bound: float = Field(0.05, gt=0, description="a scope (overall, a segment, a horizon) whose ECE on resolved "
                                                     "outcomes exceeds this — and whose calibration in the large is "
                                                     "off by more than 3 standard deviations — flags its family")
    min_outcomes: int = Field(50, ge=1, description="a scope with fewer resolved outcomes is reported, never "
                                                    "flagged")
    psi_warning: float = Field(0.2, gt=0, description="a feature or prediction whose PSI against the champion's "
                                                      "training data exceeds this is a drift warning")
    reference_rows: int = Field(5000, ge=100, description="rows of the training data kept with each churn model "
                                                          "version as the drift reference")


class SparkSettings(BaseModel):
    """The Spark engine (`engine = "spark"`, or `--engine spark`): the master of the session csforecast builds
    when none is active (under spark-submit or on Databricks the active session is used as it is) and extra
    Spark configuration for it, e.g. `config = {"spark.executor.memory" = "8g"}` (docs/scaling.md)."""
    master: str = "local[2]"
    app_name: str = "csforecast"
    config: dict[str, str] = Field(default_factory=dict)
    # batch scoring: rows per Arrow batch handed to the models in each executor (mapInPandas)
    batch_rows: int = 10_000


class VocSettings(BaseModel):
    """Voice of the customer (issue 17, docs/metrics.md "Voice of the customer")."""
    window_days: int = Field(365, ge=1, description="responses in the window [as-of - window_days, as-of)")
    level: float = Field(0.90, description="two-sided level of the NPS confidence intervals")


class ChurnReasonSettings(BaseModel):
    """Which churn reasons count as avoidable (docs/metrics.md "Churn reasons"). A reason in neither list is
    reported with avoidable = null (unmapped); a missing reason is counted as `unknown`."""
    avoidable: list[str] = Field(default_factory=lambda: [
        "low_adoption", "champion_left", "product_gap", "competitor", "budget", "onboarding", "support", "price",
        "poor_relationship", "consolidation"])
    unavoidable: list[str] = Field(default_factory=lambda: [
        "acquired", "bankrupt", "out_of_business", "merged", "company_closed", "project_ended"])


class PipelineSettings(BaseModel):
    """The expansion pipeline (docs/metrics.md "Expansion pipeline"): the probability that an opportunity in
    each stage is won (the CS handbook's defaults), and the quarters forecast and back-tested."""
    stage_probabilities: dict[str, float] = Field(default_factory=lambda: {
        "emailed": 0.0, "discussion": 0.2, "contract_sent": 0.5, "verbal": 0.8, "signed": 1.0, "lost": 0.0})
    windows: int = Field(4, ge=1, description="quarters of open pipeline shown, from the data end")
    backtest_quarters: int = Field(6, ge=1, description="past quarters each weighting is tested on")
    level: float = Field(0.90, description="two-sided level of the learned probabilities' intervals")


class ScorecardSettings(BaseModel):
    """The health scorecard people can own (docs/health.md): a weight set of their own, scored on the same
    validation rows as the learned weights at every `train`; five bands; the experience/outcomes 2x2 cut."""
    weights: dict[str, float] = Field(default_factory=dict, description="component -> weight >= 0 (empty: none)")
    five_bands: list[float] = Field(default_factory=lambda: [20.0, 40.0, 60.0, 80.0],
                                    description="cut-offs of critical | poor | fair | good | excellent")
    quadrant_cut: float = Field(50.0, description="Outcomes / Experience sub-score splitting good from poor")

    @field_validator("five_bands")
    @classmethod
    def _four_rising(cls, v: list[float]) -> list[float]:
        if len(v) != 4 or any(not math.isfinite(x) for x in v) or any(b <= a for a, b in zip(v, v[1:])):
            raise ValueError(f"[scorecard] five_bands needs four rising finite cut-offs on 0-100, not {v}")
        return v


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CSFORECAST_", env_nested_delimiter="__",
                                      toml_file="csforecast.toml", extra="ignore")

    home: Path = Field(default_factory=lambda: Path.cwd() / DEFAULT_HOME)
    data: str | None = None
    # where features and batch scores are computed: "duckdb" (in process) or "spark" (see [spark])
    engine: Literal["duckdb", "spark"] = "duckdb"
    mlflow_tracking_uri: str | None = None
    # column_map: {table: {our_name: their_name}} because nobody's CRM export uses our names
    column_map: dict[str, dict[str, str]] = Field(default_factory=dict)
    health_bands: HealthBands = Field(default_factory=HealthBands)
    triggers: TriggerSettings = Field(default_factory=TriggerSettings)
    forecast: ForecastSettings = Field(default_factory=ForecastSettings)
    serve: ServeSettings = Field(default_factory=ServeSettings)
    guard: GuardSettings = Field(default_factory=GuardSettings)
    small_book: SmallBookSettings = Field(default_factory=SmallBookSettings)
    features: FeatureSettings = Field(default_factory=FeatureSettings)
    spark: SparkSettings = Field(default_factory=SparkSettings)
    monitoring: MonitoringSettings = Field(default_factory=MonitoringSettings)
    voc: VocSettings = Field(default_factory=VocSettings)
    churn_reasons: ChurnReasonSettings = Field(default_factory=ChurnReasonSettings)
    pipeline: PipelineSettings = Field(default_factory=PipelineSettings)
    scorecard: ScorecardSettings = Field(default_factory=ScorecardSettings)

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, env_settings, dotenv_settings,
                                   file_secret_settings) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls, _config_file()))

    @property
    def tracking_uri(self) -> str:
        uri = os.environ.get("MLFLOW_TRACKING_URI") or self.mlflow_tracking_uri
        if uri:
            return uri
        return f"sqlite:///{(self.home / 'mlruns' / 'mlflow.db').resolve()}"

    @property
    def artifact_root(self) -> str:
        return str((self.home / "mlruns" / "artifacts").resolve())

    @property
    def scores_db(self) -> Path:
        return self.home / "scores.duckdb"

    @property
    def apikeys_file(self) -> Path:
        return self.home / "apikeys.json"

    @property
    def model_cache(self) -> Path:
        return self.home / "model_cache"


def _config_file() -> Path:
    explicit = os.environ.get("CSFORECAST_CONFIG")
    if explicit:
        return Path(explicit)
    home = Path(os.environ.get("CSFORECAST_HOME") or DEFAULT_HOME)
    for cand in (home / "csforecast.toml", Path("csforecast.toml")):
        if cand.exists():
            return cand
    return Path("csforecast.toml")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    settings = Settings()
    try:
        settings.home.mkdir(parents=True, exist_ok=True, mode=HOME_MODE)
    except OSError:  # a home that cannot be created fails, naming its path, where a command writes to it
        pass
    return settings


def reset_settings() -> None:
    get_settings.cache_clear()


def settings_dict(settings: Settings) -> dict[str, Any]:
    return settings.model_dump(mode="json")
