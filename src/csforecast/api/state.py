"""What the server serves: one immutable `ServingState` (models + scores + data), swapped atomically.

A request takes ``holder.current`` once and uses that object to the end, so a reload never mixes two
model sets in one response. `StateHolder.reload` builds a complete new state (models from the registry,
the latest score set, a fresh data context) and only then replaces the one reference; if any part fails
it raises `LoadError` and the old state keeps serving.

At start the registry is the source of the models. If it cannot be reached, the last good model set,
pickled to ``settings.model_cache`` after every successful registry load, is used with a warning; with
no cache the server refuses to start (`StartupError`). Anything else missing (no champion yet, no score
set) starts the server not ready (/readyz 503 says why) so that a later reload can fix it.

The parts live in their own modules: registry.py and modelcache.py (models), fastscore.py (on-demand
scoring), scoreset.py (pre-serialised scores), datacontext.py (the data source).
"""
from __future__ import annotations

import contextlib
import logging
import threading
from dataclasses import dataclass
from typing import Callable

from csforecast.api.datacontext import DataContext
from csforecast.api.errors import LoadError, RegistryUnavailable, StartupError
from csforecast.api.fastscore import ChurnScorer, churn_scorer
from csforecast.api.modelcache import cache_path, load_model_cache, save_model_cache
from csforecast.api.registry import ModelSet, load_models_from_registry
from csforecast.api.scoreset import ScoreSet, load_score_set

log = logging.getLogger("csforecast.api")


@dataclass(frozen=True, eq=False)
class ServingState:
    """Everything one request needs, built whole and never changed; `StateHolder` swaps it as a unit."""

    generation: int
    models: ModelSet | None
    scores: ScoreSet | None
    churn: ChurnScorer | None
    data: DataContext
    problems: tuple[str, ...] = ()

    @property
    def ready(self) -> bool:
        return self.models is not None and self.churn is not None and self.scores is not None

    @property
    def versions(self) -> dict[str, str]:
        return dict(self.models.versions) if self.models else {}


class StateHolder:
    """Owns the current ServingState; `reload` swaps in a complete new one or raises and keeps the old."""

    def __init__(self, settings, on_swap: Callable[[ServingState], None] | None = None):
        self.settings = settings
        self.current = ServingState(0, None, None, None, DataContext(settings.data, settings.column_map),
                                    ("not loaded yet",))
        self._reload_lock = threading.Lock()
        self._on_swap = on_swap

    def _swap(self, new: ServingState) -> None:
        self.current = new  # the single reference replacement; readers hold on to the object they took
        if self._on_swap:
            with contextlib.suppress(Exception):
                self._on_swap(new)

    def start(self) -> ServingState:
        """Initial load. Raises StartupError only when the registry is unreachable and nothing is cached."""
        s = self.settings
        problems: list[str] = []
        models = None
        try:
            models = load_models_from_registry(s)
            save_model_cache(s, models)
        except RegistryUnavailable as e:
            models = load_model_cache(s)
            if models is None:
                raise StartupError(f"{e}; and no cached model set at {cache_path(s)} to fall "
                                   "back to. Check MLFLOW_TRACKING_URI / CSFORECAST_HOME.") from e
            log.warning("%s; serving the CACHED model set %s saved at %s", e, models.versions,
                        models.loaded_at.isoformat())
            problems.append(f"degraded: serving the cached model set {models.versions} saved at "
                            f"{models.loaded_at.isoformat()} ({e})")
        except LoadError as e:
            log.error("no models loaded: %s", e)
            problems.append(str(e))
        scorer = None
        if models is not None:
            try:
                scorer = churn_scorer(models)
            except LoadError as e:
                problems.append(str(e))
        scores = None
        try:
            scores = load_score_set(s)
        except LoadError as e:
            log.error("no scores loaded: %s", e)
            problems.append(str(e))
        state = ServingState(1, models, scores, scorer, DataContext(s.data, s.column_map), tuple(problems))
        self._swap(state)
        if state.ready:
            log.info("serving models %s (%s) and score set v%s (%d accounts, as of %s)", models.versions,
                     models.source, scores.version, scores.n, scores.as_of)
        else:
            log.warning("started NOT READY: %s", "; ".join(problems))
        return state

    def reload(self) -> tuple[ServingState, ServingState]:
        """Load new champions + the latest score set; swap. Returns (new, old). Raises LoadError (old kept)."""
        s = self.settings
        with self._reload_lock:
            old = self.current
            models = load_models_from_registry(s)
            scorer = churn_scorer(models)
            scores = load_score_set(s)
            new = ServingState(old.generation + 1, models, scores, scorer, DataContext(s.data, s.column_map), ())
            self._swap(new)
        save_model_cache(s, models)
        return new, old
