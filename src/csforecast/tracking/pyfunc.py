"""Our estimators wrapped as MLflow pyfunc models, so `mlflow models serve` can serve them too.

What a family's pyfunc model answers is the family's own business (``scoring.families``: ``Family.pyfunc``);
the wrapper only holds the estimator and the family's name.
"""
from __future__ import annotations

import mlflow.pyfunc
import pandas as pd

from csforecast.scoring import families


class EstimatorModel(mlflow.pyfunc.PythonModel):
    """Holds one fitted estimator of ``family``; ``predict`` returns the family's pyfunc frame."""

    def __init__(self, estimator, family: str):
        self.estimator = estimator
        self.family = families.get(family).name

    def _family(self) -> families.Family:
        # models registered before the family registry pickled the name of their output instead
        name = getattr(self, "family", None)
        return families.get(name) if name else families.by_pyfunc_output(self.output)

    def predict(self, context, model_input: pd.DataFrame, params=None):  # noqa: ARG002 - pyfunc signature
        X = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
        return self._family().pyfunc(self.estimator, X)
