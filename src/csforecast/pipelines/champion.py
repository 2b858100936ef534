"""The champion/challenger rule, once for every family and for promotions.

Decide, then commit: :func:`champion_rule` builds the decision (does the candidate beat the current champion on
the same validation rows, by the family's guard metric in the family's direction?);
``tracking.store.register_with_guard`` loads the champion, asks the decision and only then registers the
version and moves the aliases. :func:`register_candidate` is that commit step for a logged model.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

from csforecast.scoring.families import Family
from csforecast.tracking import store
from csforecast.tracking.pyfunc import EstimatorModel

__all__ = ["GuardScore", "champion_rule", "register_candidate", "log_and_register"]


@dataclass(frozen=True)
class GuardScore:
    """A candidate's score on the validation rows by its family's guard metric."""

    metric: str                 # a key of Family.metrics, e.g. "log_loss"
    value: float
    higher_is_better: bool
    n_rows: int

    @classmethod
    def of(cls, family: Family, value: float, n_rows: int) -> "GuardScore":
        return cls(family.guard_metric, float(value), family.guard_higher_is_better, int(n_rows))

    def beats(self, champion_value: float) -> bool:
        """Strictly better than ``champion_value`` (a NaN on either side never beats)."""
        return bool(self.value > champion_value if self.higher_is_better else self.value < champion_value)


def champion_rule(candidate: GuardScore, score: Callable[[object], float], *, label: str, note: str = ""
                  ) -> Callable[[object], tuple[bool, str]]:
    """The decision ``register_with_guard`` asks: ``score(champion)`` on the candidate's validation rows,
    compared with the candidate's; returns (candidate wins, the sentence recorded as the version's guard)."""
    def decide(champion) -> tuple[bool, str]:
        theirs = float(score(champion))
        return candidate.beats(theirs), (f"validation {label} {candidate.value:.5f} vs champion {theirs:.5f} on "
                                         f"{candidate.n_rows} rows{note}")
    return decide


def register_candidate(family: Family, model_uri: str, run_id: str, candidate: GuardScore,
                       score: Callable[[object], float], *, register: bool = True, label: str | None = None,
                       note: str = "") -> store.Registration:
    """Register ``model_uri`` as the family's new version under the guard (``champion`` moves only when it
    wins); with ``register=False`` nothing is registered and the run is only reported."""
    if not register:
        return store.Registration(run_id, None, None, "not registered")
    decide = champion_rule(candidate, score, label=label or family.guard_label, note=note)
    return store.register_with_guard(family.name, model_uri, run_id, decide)


def log_and_register(family: Family, estimator, example_rows: pd.DataFrame, run_id: str, candidate: GuardScore,
                     score: Callable[[object], float], *, register: bool = True) -> store.Registration:
    """The last step of a training run: log ``estimator`` as the run's pyfunc model (its signature from
    ``example_rows`` and the family's pyfunc answer to them), then :func:`register_candidate` it."""
    info = store.log_pyfunc(EstimatorModel(estimator, family.name), example_rows,
                            family.pyfunc(estimator, example_rows))
    return register_candidate(family, info.model_uri, run_id, candidate, score, register=register)
