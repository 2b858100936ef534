"""Our estimators wrapped as MLflow pyfunc models, so `mlflow models serve` can serve them too."""
from __future__ import annotations

import mlflow.pyfunc
import pandas as pd


class EstimatorModel(mlflow.pyfunc.PythonModel):
    """Holds one fitted estimator; `predict` returns a DataFrame named by `output`."""

    def __init__(self, estimator, output: str):
        self.estimator = estimator
        self.output = output

    def predict(self, context, model_input: pd.DataFrame, params=None):  # noqa: ARG002 - pyfunc signature
        X = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
        if self.output == "churn_probability":
            return pd.DataFrame({"churn_probability": self.estimator.predict_proba(X)[:, 1]}, index=X.index)
        if self.output == "health_score":
            return pd.DataFrame({"health_score": self.estimator.predict(X)}, index=X.index)
        if self.output == "survival":
            s = self.estimator.predict_survival(X, [90, 180, 365])
            s.columns = [f"p_active_{int(c)}d" for c in s.columns]
            return s
        raise ValueError(f"unknown output {self.output}")
