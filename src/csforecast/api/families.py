"""The model families the API serves, and the one place it calls a family's own scorer.

REWIRE AFTER MERGE: this module is the API's only tie to the per-family code. When the `scoring/` families
registry lands, the family names and the health scorer below come from it (``csforecast.scoring.families``)
and the import of ``csforecast.pipelines`` goes away; nothing else under api/ or ui/ needs to change.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

FAMILIES = ("churn", "survival", "health")


def model_inputs(estimator: Any) -> list[str]:
    """The estimator's input column names (``feature_names_in_``); [] when it does not declare them."""
    names = getattr(estimator, "feature_names_in_", None) if estimator is not None else None
    return [str(c) for c in names] if names is not None else []


def health_scores(estimator: Any, frame: pd.DataFrame) -> np.ndarray:
    """The health score (0-100) of each row of ``frame`` (the health model's inputs) as floats.

    The score alone: `score_health` also builds components and triggers, which on-demand scoring does not
    return, so the estimator's own ``predict`` is used whenever it has one.
    """
    if hasattr(estimator, "predict"):
        return np.asarray(estimator.predict(frame), dtype=float)
    # TEMPORARY (family scorer, health): rewire to the scoring/ families registry after merging.
    from csforecast.pipelines.health import score_health

    return np.asarray(score_health(estimator, frame)["health_score"], dtype=float)
