"""Estimators (scikit-learn conventions: keyword-only parameters stored verbatim, fitted attributes ending in
``_``, ``NotFittedError`` before fit, ``clone``-able):

* ``ChurnClassifier`` - calibrated churn probability at the next renewal, exact per-column explanations;
* ``SurvivalModel`` - Cox PH / Weibull AFT time-to-churn on any DataFrame (lifelines);
* ``SnapshotSurvivalModel`` - the served survival model: snapshot rows in, survival on the renewal clock out;
* ``HealthScoreModel`` - the learned 0–100 health score with exact Shapley component contributions;
* ``ExpansionModel`` - ARR change at renewal, given that the renewal happens;
* ``ShiftedBetaGeometric`` - cohort retention (Fader & Hardie);
* ``PooledChurnModel``, ``RetentionChurnModel`` - the churn family's small-book fallbacks (segment rates
  shrunk toward the portfolio; sBG retention by renewal number);
* ``CallBlend`` - the churn model's logit blended with the CSM's renewal call (per-CSM bias partially pooled).
"""
from csforecast.models.blend import CallBlend
from csforecast.models.churn import ChurnClassifier
from csforecast.models.expansion import ExpansionModel
from csforecast.models.health import HealthScoreModel
from csforecast.models.pooled import PooledChurnModel, RetentionChurnModel
from csforecast.models.sbg import ShiftedBetaGeometric
from csforecast.models.snapshot_survival import SnapshotSurvivalModel
from csforecast.models.survival import SurvivalModel

__all__ = ["ChurnClassifier", "SurvivalModel", "SnapshotSurvivalModel", "HealthScoreModel", "ExpansionModel",
           "ShiftedBetaGeometric", "PooledChurnModel", "RetentionChurnModel", "CallBlend"]
