"""The model families the API serves: a view onto the one registry, ``csforecast.scoring.families``.

On-demand scoring (``POST /v1/score``) returns the score alone, so it asks each estimator for that score
through its family's ``pyfunc`` answer rather than the batch scorer (which also builds components and
triggers).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from csforecast.scoring import families as _registry

FAMILIES: tuple[str, ...] = _registry.names()


def model_inputs(estimator: Any) -> list[str]:
    """The estimator's input column names (``feature_names_in_``); [] when there is no estimator or it does not
    declare them."""
    if estimator is None or getattr(estimator, "feature_names_in_", None) is None:
        return []
    return _registry.feature_names(estimator)


def health_scores(estimator: Any, frame: pd.DataFrame) -> np.ndarray:
    """The health score (0-100) of each row of ``frame`` (the health model's inputs) as floats."""
    out = _registry.get("health").pyfunc(estimator, frame)
    return np.asarray(out["health_score"], dtype=float)
