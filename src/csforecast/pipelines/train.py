"""`csforecast train`: validate, build the shared snapshots once, train every model family that exists.

``train_families`` returns typed :class:`TrainingResult` objects (the estimator, the validation rows, the
guard score ...); ``train_all`` is the CLI's JSON-able view of them (the dict ``csforecast train --json``
prints per family).

The oracle (the simulator's truth) is passed in by the caller that owns simulated data (the CLI, with
``simulate.truth.oracle_for``); nothing in training opens truth/.
"""
from __future__ import annotations

from collections.abc import Callable
from datetime import date

from csforecast.data.sources import Source
from csforecast.errors import InputError
from csforecast.pipelines import churn, health, survival
from csforecast.pipelines.context import TrainingContext
from csforecast.pipelines.result import TrainingResult
from csforecast.scoring import families as family_registry
from csforecast.simulate.truth import Truth

__all__ = ["TRAINERS", "available_families", "train_families", "train_all"]

# family -> its trainer: (ctx, estimators trained so far) -> TrainingResult. Survival compares its
# renewal-date probabilities with the churn model trained in the same call.
TRAINERS: dict[str, Callable[[TrainingContext, dict], TrainingResult]] = {
    "churn": lambda ctx, done: churn.train_churn(ctx),
    "survival": lambda ctx, done: survival.train_survival(ctx, churn_estimator=done.get("churn")),
    "health": lambda ctx, done: health.train_health(ctx),
}


def available_families() -> list[str]:
    """The registered families (``scoring.families``) that have a trainer, in training order."""
    return [name for name in family_registry.names() if name in TRAINERS]


def train_families(source: Source, as_of: date | None = None, families: list[str] | None = None,
                   progress: Callable[[str], None] | None = None, *,
                   oracle: Truth | None = None) -> dict[str, TrainingResult]:
    """Train ``families`` (default: all) on ``source`` as of ``as_of``, sharing one TrainingContext; the
    oracle (None for real data) is used for evaluation only. InputError for an unknown family name."""
    wanted = list(families or available_families())
    unknown = [f for f in wanted if f not in TRAINERS]
    if unknown:
        raise InputError(f"unknown model famil{'y' if len(unknown) == 1 else 'ies'} {', '.join(unknown)}; "
                         f"known: {', '.join(available_families())}")
    ctx = TrainingContext.build(source, as_of, oracle=oracle)
    tick = progress or (lambda *_: None)
    tick("building point-in-time snapshots")
    _ = ctx.snapshots
    results: dict[str, TrainingResult] = {}
    for fam in wanted:
        tick(f"training {fam}")
        results[fam] = TRAINERS[fam](ctx, {k: r.estimator for k, r in results.items()})
    return results


def train_all(source: Source, as_of: date | None = None, families: list[str] | None = None,
              progress: Callable[[str], None] | None = None, *, oracle=None) -> dict:
    """``csforecast train``: the JSON-able result per family (:meth:`TrainingResult.to_json`).

    ``oracle``: the simulator's truth (a Truth), reported beside every metric; None for real data."""
    results = train_families(source, as_of, families, progress, oracle=oracle)
    return {fam: r.to_json() for fam, r in results.items()}
