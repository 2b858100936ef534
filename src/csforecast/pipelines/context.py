"""What every training pipeline shares: the source, the as-of date, the point-in-time snapshots (built once),
the time split, the profile of the data (computed once, recorded with every version), the size of the book in
the training window (small books get the documented fallbacks), the promotion policy and the oracle (the
simulator's truth, passed in by the caller that owns simulated data; None for real data). Train on decisions
resolved before `validation_start`, validate on those after it."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import cached_property
from typing import TYPE_CHECKING

import pandas as pd

from csforecast.config import get_settings
from csforecast.data.contract import TABLES
from csforecast.data.profile import profile_source
from csforecast.data.sources import Source
from csforecast.errors import TrainingDataError
from csforecast.features.snapshot import build_snapshots, data_end, feature_columns, monthly_grid
from csforecast.models.snapshot_survival import CHURN_MODEL_HORIZON_DAYS
from csforecast.pipelines.champion import PromotionPolicy

if TYPE_CHECKING:
    from csforecast.simulate.truth import Truth

VALIDATION_MONTHS = 9
WARMUP_DAYS = 90  # usage history a snapshot needs before its trailing windows are complete
# the optional tables that carry account activity (a source with none of them has only accounts + contracts)
ACTIVITY_TABLES = tuple(name for name, spec in TABLES.items() if spec.features)


@dataclass(frozen=True)
class BookSize:
    """Renewal decisions (distinct account and renewal date) and churns among them in the training window,
    against the ``small_book`` thresholds below which the full models are not fitted (docs/operations.md)."""

    decisions: int
    churns: int
    min_decisions: int
    min_churns: int

    @property
    def small(self) -> bool:
        return self.decisions < self.min_decisions or self.churns < self.min_churns

    def describe(self) -> str:
        return (f"{self.decisions} renewal decisions and {self.churns} churns in the training window (the full "
                f"models need at least {self.min_decisions} and {self.min_churns})")

    def to_json(self) -> dict:
        return {"decisions": self.decisions, "churns": self.churns, "min_decisions": self.min_decisions,
                "min_churns": self.min_churns, "small": self.small}


@dataclass
class TrainingContext:
    source: Source
    as_of: date                      # nothing on or after this date is read
    validation_months: int = VALIDATION_MONTHS
    grid: list[date] = field(default_factory=list)
    oracle: Truth | None = None      # evaluation only: metrics beside the model's, never used to fit
    policy: PromotionPolicy = field(default_factory=PromotionPolicy.from_settings)

    @classmethod
    def build(cls, source: Source, as_of: date | None = None, validation_months: int = VALIDATION_MONTHS, *,
              oracle: Truth | None = None, policy: PromotionPolicy | None = None) -> "TrainingContext":
        """The monthly snapshot grid from the first activity (+ warm-up) to ``as_of`` (default and cap: the
        data end). Raises TrainingDataError with fewer than 6 monthly snapshots."""
        end = data_end(source)
        as_of = min(as_of or end, end)
        u = source.table("usage") if source.has("usage") else source.table("contracts")
        col = "date" if source.has("usage") else "start_date"
        first = u[col].min().to_pyarrow().as_py()
        first = pd.Timestamp(first).date() + timedelta(days=WARMUP_DAYS)
        grid = [d for d in monthly_grid(first, as_of) if d < as_of]
        if len(grid) < 6:
            raise TrainingDataError(f"too little history before {as_of}: need at least 6 monthly snapshots after "
                                    f"a {WARMUP_DAYS}-day warm-up, found {len(grid)}")
        return cls(source, as_of, validation_months, grid, oracle, policy or PromotionPolicy.from_settings())

    @cached_property
    def validation_start(self) -> date:
        """Decisions due before it train, the rest validate: ``validation_months`` before as_of, or, on a book
        with less renewal history than that leaves for training (fewer decisions due before it than after), the
        renewal date that splits the decisions in half, so a young book still trains (a documented fallback,
        docs/churn.md) and validation stays time-ordered."""
        fixed = (pd.Timestamp(self.as_of) - pd.DateOffset(months=self.validation_months)).date()
        due = self.decision_rows().drop_duplicates(["account_id", "renewal_date"])["renewal_date"].sort_values()
        if len(due) < 2 or (due < pd.Timestamp(fixed)).sum() >= len(due) / 2:
            return fixed
        half = pd.Timestamp(due.iloc[len(due) // 2]).date()
        return half if half > pd.Timestamp(due.iloc[0]).date() else fixed

    @cached_property
    def snapshots(self) -> pd.DataFrame:
        """Monthly snapshots before as_of, labels known only for renewals due before as_of."""
        return build_snapshots(self.source, self.grid, end=self.as_of)

    @property
    def data_hash(self) -> str:
        return self.source.data_hash

    @cached_property
    def profile(self) -> dict:
        """The profile of the data (``data.profile``), computed once and recorded with every version."""
        return profile_source(self.source, self.as_of)

    @property
    def has_activity(self) -> bool:
        """The source has at least one activity table (usage, tickets, surveys, touches, stakeholders)."""
        return any(self.source.has(t) for t in ACTIVITY_TABLES)

    def book_size(self) -> BookSize:
        """Renewal decisions and churns due before ``validation_start`` (:class:`BookSize`)."""
        train = self.split(self.decision_rows())[0]
        d = train.drop_duplicates(["account_id", "renewal_date"])
        sb = get_settings().small_book
        return BookSize(int(len(d)), int(d["label_churn"].sum()), sb.min_decisions, sb.min_churns)

    def run_tags(self) -> dict[str, str]:
        """Tags of every training run: the data hash, the as-of date and the profile's headline numbers
        (``profile.<table>.rows``, ``profile.label.base_rate``; the whole profile is the run's
        ``data_profile.json``)."""
        tags = {"data_hash": self.data_hash, "as_of": str(self.as_of)}
        for name, t in self.profile["tables"].items():
            tags[f"profile.{name}.rows"] = str(t.get("rows", 0))
        tags["profile.label.base_rate"] = str(self.profile["label"].get("base_rate"))
        return tags

    def version_tags(self) -> dict[str, str]:
        """Tags of every registered version besides the profile: the data hash and the as-of date."""
        return {"data_hash": self.data_hash, "as_of": str(self.as_of)}

    def run_params(self) -> dict:
        """Parameters every training run logs: as-of, validation start, snapshot grid and data hash."""
        return {"as_of": self.as_of, "validation_start": self.validation_start,
                "snapshot_dates": f"{self.grid[0]}..{self.grid[-1]} ({len(self.grid)} monthly)",
                "data_hash": self.data_hash}

    def decision_rows(self) -> pd.DataFrame:
        """Rows for the renewal models: snapshots in the year before a renewal whose outcome is known."""
        s = self.snapshots
        return s[s["label_churn"].notna() & (s["days_to_renewal"] <= CHURN_MODEL_HORIZON_DAYS)].copy()

    def split(self, rows: pd.DataFrame, time_col: str = "renewal_date") -> tuple[pd.DataFrame, pd.DataFrame]:
        vs = pd.Timestamp(self.validation_start)
        return rows[rows[time_col] < vs].copy(), rows[rows[time_col] >= vs].copy()

    @staticmethod
    def features(rows: pd.DataFrame) -> list[str]:
        return feature_columns(rows)
