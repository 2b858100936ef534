"""What every training pipeline shares: the source, the as-of date, the point-in-time snapshots (built once)
and the time split. Train on decisions resolved before `validation_start`, validate on those after it."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import cached_property

import pandas as pd

from csforecast.data.sources import Source
from csforecast.features.snapshot import build_snapshots, data_end, feature_columns, monthly_grid
from csforecast.simulate.truth import Truth, load_truth

VALIDATION_MONTHS = 9
WARMUP_DAYS = 90  # usage history a snapshot needs before its trailing windows are complete


@dataclass
class TrainingContext:
    source: Source
    as_of: date                      # nothing on or after this date is read
    validation_months: int = VALIDATION_MONTHS
    grid: list[date] = field(default_factory=list)

    @classmethod
    def build(cls, source: Source, as_of: date | None = None, validation_months: int = VALIDATION_MONTHS):
        end = data_end(source)
        as_of = min(as_of or end, end)
        u = source.table("usage") if source.has("usage") else source.table("contracts")
        col = "date" if source.has("usage") else "start_date"
        first = u[col].min().to_pyarrow().as_py()
        first = pd.Timestamp(first).date() + timedelta(days=WARMUP_DAYS)
        grid = [d for d in monthly_grid(first, as_of) if d < as_of]
        if len(grid) < 6:
            raise ValueError(f"too little history before {as_of}: need at least 6 monthly snapshots after a "
                             f"{WARMUP_DAYS}-day warm-up, found {len(grid)}")
        return cls(source, as_of, validation_months, grid)

    @property
    def validation_start(self) -> date:
        return (pd.Timestamp(self.as_of) - pd.DateOffset(months=self.validation_months)).date()

    @cached_property
    def snapshots(self) -> pd.DataFrame:
        """Monthly snapshots before as_of, labels known only for renewals due before as_of."""
        return build_snapshots(self.source, self.grid, end=self.as_of)

    @cached_property
    def truth(self) -> Truth | None:
        return load_truth(self.source.location)

    @property
    def data_hash(self) -> str:
        return self.source.data_hash

    def decision_rows(self) -> pd.DataFrame:
        """Rows for the renewal models: snapshots in the year before a renewal whose outcome is known."""
        s = self.snapshots
        return s[s["label_churn"].notna() & (s["days_to_renewal"] <= 365)].copy()

    def split(self, rows: pd.DataFrame, time_col: str = "renewal_date") -> tuple[pd.DataFrame, pd.DataFrame]:
        vs = pd.Timestamp(self.validation_start)
        return rows[rows[time_col] < vs].copy(), rows[rows[time_col] >= vs].copy()

    @staticmethod
    def features(rows: pd.DataFrame) -> list[str]:
        return feature_columns(rows)
