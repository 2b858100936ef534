"""What a family's trainer returns: the validation rows it was judged on and a typed training result."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from csforecast.jsonsafe import jsonable
from csforecast.pipelines.champion import GuardScore
from csforecast.tracking.store import Registration

__all__ = ["ValidationSet", "TrainingResult"]


@dataclass(frozen=True)
class ValidationSet:
    """The validation rows of a family and their outcomes.

    rows : the snapshot rows (after ``validation_start``); outcomes : outcome arrays by name (churn and health:
    ``y``; survival: ``T`` durations and ``E`` events); clusters : the account of each row (the bootstrap
    resamples accounts)."""

    rows: pd.DataFrame
    outcomes: dict[str, np.ndarray]
    clusters: np.ndarray

    @property
    def y(self) -> dict[str, np.ndarray]:       # the experiments' historical name for ``outcomes``
        return self.outcomes

    @classmethod
    def of_decisions(cls, rows: pd.DataFrame) -> "ValidationSet":
        """Renewal-decision rows: ``y`` = churned at that renewal (``label_churn``)."""
        return cls(rows, {"y": rows["label_churn"].astype(int).to_numpy()}, rows["account_id"].to_numpy())

    @classmethod
    def of_snapshots(cls, rows: pd.DataFrame) -> "ValidationSet":
        """Snapshot rows with their follow-up: ``T`` = ``label_duration_days``, ``E`` = ``label_event``."""
        return cls(rows, {"T": rows["label_duration_days"].to_numpy(float),
                          "E": rows["label_event"].to_numpy(float)}, rows["account_id"].to_numpy())


@dataclass(frozen=True)
class TrainingResult:
    """One family's training: metrics (and the oracle's on the same rows, None without truth), detail, the
    fitted estimator, the validation rows, the guard score (metric, value, direction), the registration
    (run id, version, alias, why the champion moved or not, the guard's decision) and, for a small-book
    fallback, what it is (None for the full model)."""

    family: str
    metrics: dict
    oracle: dict | None
    detail: dict
    estimator: Any
    validation: ValidationSet
    guard_score: GuardScore
    registration: Registration
    fallback: str | None = None

    def to_json(self) -> dict:
        """The JSON-able dict ``csforecast train --json`` prints per family (no estimator, no rows)."""
        r = self.registration
        return {"metrics": self.metrics, "oracle": self.oracle, "detail": self.detail,
                "run_id": r.run_id, "version": r.version, "alias": r.alias, "guard": r.guard,
                "decision": r.decision, "fallback": self.fallback, "guard_checks": jsonable(r.checks)}
