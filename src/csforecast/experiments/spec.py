"""Experiment specs: one TOML file names a model family, the data and its time split, and the variants to
compare. docs/analyst-walkthrough.md shows a complete example.

    name = "churn_lgbm_vs_logistic"          # optional, default: the file name
    family = "churn"                          # churn | health | survival | forecast
    data = "path/to/portfolio"               # optional; `--data` overrides it
    as_of = "2026-07-01"                     # optional; default: the data end
    validation_months = 9                    # optional
    baseline = "lightgbm"                    # optional; default: the first variant
    bootstrap = 500                          # resamples for the CIs of the differences (0 = none)

    [[variants]]
    name = "lightgbm"
    algorithm = "lightgbm"

    [[variants]]
    name = "logistic"
    algorithm = "logistic"
    drop_groups = ["nps"]                     # feature groups: usage, support, nps, engagement, profile
    drop_features = ["tickets_p1_*"]          # names or glob patterns
    params = { refit = true }                 # passed to the family's estimator

Churn variants start from the churn pipeline's default feature set (``keep_features`` may name columns it leaves
out). Health variants pick components (``components = [...]`` or ``drop_components = ["nps"]``); survival
variants take ``covariates`` / ``drop_covariates`` and ``params`` (kinds, penalizer, ...); forecast variants take
``method`` (model | last_year | time_series) and the spec a ``[backtest]`` table (quarters, warmup, draws).
"""
from __future__ import annotations

import fnmatch
import tomllib
from datetime import date
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from csforecast.errors import InputError
from csforecast.models.health import COMPONENTS
from csforecast.scoring import families as family_registry

# the model families (scoring.families) and the renewal forecast's back-test
FAMILIES = (*family_registry.names(), "forecast")
FEATURE_GROUPS = ("usage", "support", "nps", "engagement", "profile")
HEALTH_COMPONENTS = tuple(COMPONENTS)
FORECAST_METHODS = ("model", "last_year", "time_series")

# default metrics shown per family, and whether higher is better (None: neither, e.g. bias or coverage)
FAMILY_METRICS: dict[str, dict[str, bool | None]] = {
    **{f.name: dict(f.metrics) for f in family_registry.FAMILIES.values()},
    "forecast": {"wape": False, "wape_overall": False, "bias": None, "coverage_p10_p90": None, "grr_mae": False,
                 "nrr_mae": False},
}


class SpecError(InputError, ValueError):
    """The spec file cannot be read or is invalid; the message lists every problem."""


class Variant(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=60, pattern=r"^[A-Za-z0-9_.\-]+$")
    description: str = ""
    # churn
    algorithm: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    drop_features: list[str] = Field(default_factory=list)
    keep_features: list[str] | None = None
    drop_groups: list[str] = Field(default_factory=list)
    keep_groups: list[str] | None = None
    # health
    components: list[str] | None = None
    drop_components: list[str] = Field(default_factory=list)
    # survival
    covariates: list[str] | None = None
    drop_covariates: list[str] = Field(default_factory=list)
    # forecast
    method: str | None = None

    @field_validator("drop_groups", "keep_groups")
    @classmethod
    def _groups(cls, v):
        bad = [g for g in (v or []) if g not in FEATURE_GROUPS]
        if bad:
            raise ValueError(f"unknown feature group(s) {bad}; known: {', '.join(FEATURE_GROUPS)}")
        return v

    @field_validator("components", "drop_components")
    @classmethod
    def _components(cls, v):
        bad = [c for c in (v or []) if c not in HEALTH_COMPONENTS]
        if bad:
            raise ValueError(f"unknown health component(s) {bad}; known: {', '.join(HEALTH_COMPONENTS)}")
        return v

    @field_validator("method")
    @classmethod
    def _method(cls, v):
        if v is not None and v not in FORECAST_METHODS:
            raise ValueError(f"unknown forecast method {v!r}; known: {', '.join(FORECAST_METHODS)}")
        return v

    @property
    def selects_features(self) -> bool:
        return bool(self.drop_features or self.keep_features is not None or self.drop_groups
                    or self.keep_groups is not None)

    def estimator_params(self) -> dict:
        p = dict(self.params)
        if self.algorithm is not None:
            p["algorithm"] = self.algorithm
        return p

    def select_features(self, columns: list[str], group_of) -> list[str]:
        """The columns this variant uses, in their original order. `group_of(col)` names a column's group."""
        cols = list(columns)
        if self.keep_groups is not None:
            cols = [c for c in cols if group_of(c) in self.keep_groups]
        if self.keep_features is not None:
            cols = [c for c in cols if any(_match(c, p) for p in self.keep_features)]
        cols = [c for c in cols if group_of(c) not in self.drop_groups]
        cols = [c for c in cols if not any(_match(c, p) for p in self.drop_features)]
        return cols

    def select_components(self, available: list[str]) -> list[str] | None:
        if self.components is None and not self.drop_components:
            return None
        base = list(self.components) if self.components is not None else list(available)
        return [c for c in base if c not in self.drop_components]


def _match(col: str, pattern: str) -> bool:
    if any(ch in pattern for ch in "*?["):
        return fnmatch.fnmatchcase(col, pattern)
    return col == pattern


class Backtest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    quarters: int = Field(4, ge=1, le=12)
    warmup: int = Field(2, ge=0, le=8)
    draws: int = Field(2000, ge=100, le=100_000)


class ExperimentSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=80, pattern=r"^[A-Za-z0-9_.\-]+$")
    description: str = ""
    family: Literal[FAMILIES]  # type: ignore[valid-type] - the registry's names, fixed at import
    data: str | None = None
    as_of: date | None = None
    validation_months: int = Field(9, ge=1, le=36)
    baseline: str | None = None
    bootstrap: int = Field(500, ge=0, le=5000)
    seed: int = 0
    metrics: list[str] | None = None
    backtest: Backtest = Field(default_factory=Backtest)
    variants: list[Variant] = Field(min_length=1)

    @model_validator(mode="after")
    def _check(self):
        names = [v.name for v in self.variants]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"variant names must be unique; repeated: {dup}")
        if self.baseline is None:
            self.baseline = names[0]
        elif self.baseline not in names:
            raise ValueError(f"baseline {self.baseline!r} is not a variant ({', '.join(names)})")
        if self.metrics is not None:
            bad = [m for m in self.metrics if m not in FAMILY_METRICS[self.family]]
            if bad:
                raise ValueError(f"unknown {self.family} metric(s) {bad}; known: "
                                 f"{', '.join(FAMILY_METRICS[self.family])}")
        problems = []
        if self.family == "forecast" and self.as_of is not None:
            problems.append("forecast experiments back-test the last quarters before the data end: as_of is not "
                            "supported")
        if self.family != "forecast" and "backtest" in self.model_fields_set:
            problems.append(f"[backtest] applies to the forecast family only, not {self.family}")
        for v in self.variants:
            wrong = _fields_for_other_families(v, self.family)
            if wrong:
                problems.append(f"variant {v.name!r}: {', '.join(wrong)} does not apply to family {self.family} "
                                f"(it takes: {', '.join(sorted(_FAMILY_FIELDS[self.family]))})")
            if self.family == "forecast" and v.method is None:
                problems.append(f"variant {v.name!r}: forecast variants need `method` "
                                f"({', '.join(FORECAST_METHODS)})")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def baseline_variant(self) -> Variant:
        return next(v for v in self.variants if v.name == self.baseline)

    @property
    def metric_keys(self) -> list[str]:
        return list(self.metrics or FAMILY_METRICS[self.family])


_FAMILY_FIELDS = {
    "churn": {"algorithm", "params", "drop_features", "keep_features", "drop_groups", "keep_groups"},
    "health": {"params", "components", "drop_components"},
    "survival": {"params", "covariates", "drop_covariates"},
    "forecast": {"method"},
}
_ALL_FIELDS = set().union(*_FAMILY_FIELDS.values())


def _fields_for_other_families(v: Variant, family: str) -> list[str]:
    out = []
    for f in sorted(_ALL_FIELDS - _FAMILY_FIELDS[family]):
        val = getattr(v, f)
        if val not in (None, [], {}):
            out.append(f)
    return out


def load_spec(path: str | Path) -> tuple[ExperimentSpec, str]:
    """Parse and validate a spec file. Returns (spec, the file's text); raises SpecError."""
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as e:
        raise SpecError(f"cannot read spec {p}: {e}") from e
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise SpecError(f"{p}: not valid TOML: {e}") from e
    raw.setdefault("name", p.stem)
    try:
        return ExperimentSpec.model_validate(raw), text
    except ValidationError as e:
        msgs = []
        for err in e.errors():
            loc = ".".join(str(x) for x in err["loc"])
            msg = err["msg"].removeprefix("Value error, ")
            msgs.append(f"{loc}: {msg}" if loc else msg)
        raise SpecError(f"{p}: invalid experiment spec: " + "; ".join(msgs)) from e
