"""What the server serves: one immutable `ServingState` (models + scores + data), swapped atomically.

A request takes ``holder.current`` once and uses that object to the end, so a reload never mixes two
model sets in one response. `StateHolder.reload` builds a complete new state and only then replaces the one
reference; if any part fails it raises `LoadError` and the old state keeps serving.

A reload reloads only what changed. A local file (the sqlite registry, the scores database) whose size,
time stamp and inode are those seen at the last load has not changed, and is not read at all. Otherwise it
asks, cheaply, which model version of each family is to be served (the registry's aliases or the pins)
and which score set is the latest (one row of the scores store); estimators whose version did not change,
the churn scorer and the pre-serialised score set are reused as they are. When nothing changed the current state stays (no swap: the generation and the
dashboard's computed pages stay too). Concurrent reloads coalesce: a reload asked for while another runs
waits for it and then shares one follow-up round, so N simultaneous requests cost at most two rounds, and
every caller gets a state loaded after it asked.

At start the registry is the source of the models. If it cannot be reached, the last good model set,
pickled to ``settings.model_cache`` after every successful registry load, is used with a warning; with
no cache the server refuses to start (`StartupError`). A registry file that has gone (moved or deleted) or
a registry that lost the champion it served before counts as unreachable, not as "nothing trained". Anything
else missing (no champion yet, no score set) starts the server not ready (/readyz 503 says why) so that a
later reload can fix it.

The parts live in their own modules: registry.py and modelcache.py (models), fastscore.py (on-demand
scoring), scoreset.py (pre-serialised scores), datacontext.py (the data source).
"""
from __future__ import annotations

import contextlib
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from csforecast.api.datacontext import DataContext
from csforecast.api.errors import LoadError, RegistryUnavailable, StartupError
from csforecast.api.fastscore import ChurnScorer, churn_scorer
from csforecast.api.modelcache import cache_path, cached_versions, load_model_cache, save_model_cache
from csforecast.api.registry import ModelSet, load_models_from_registry, registry_file
from csforecast.api.scoreset import ScoreSet, load_score_set, load_score_set_apart

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


@dataclass(frozen=True)
class Reload:
    """The outcome of one reload round: the state served after it, the one before, and what changed
    ("models", "score_set"; empty when the current state stayed)."""

    new: ServingState
    old: ServingState
    changed: tuple[str, ...]


class StateHolder:
    """Owns the current ServingState; `reload` swaps in a complete new one or raises and keeps the old."""

    def __init__(self, settings, on_swap: Callable[[ServingState], None] | None = None):
        self.settings = settings
        self.current = ServingState(0, None, None, None, DataContext(settings.data, settings.column_map),
                                    ("not loaded yet",))
        self._on_swap = on_swap
        self._cv = threading.Condition()
        self._asked = 0             # reload requests so far (each caller takes the next number)
        self._covered = 0           # requests up to this number are answered by the last finished round
        self._running = False
        self._last: Reload | BaseException | None = None
        self._stamps: dict[str, tuple | None] = {}   # "registry"/"scores" -> file_stamp at the last good read

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
        registry_stamp, scores_stamp = self._registry_stamp(), file_stamp(s.scores_db)
        try:
            models = load_models_from_registry(s, served_before=cached_versions(s))
            self._stamps["registry"] = registry_stamp
            save_model_cache(s, models)
        except RegistryUnavailable as e:
            models = load_model_cache(s)
            if models is None:
                raise StartupError(f"{e}; and no cached model set at {cache_path(s)} to fall "
                                   "back to. Check MLFLOW_TRACKING_URI / CSFORECAST_HOME.") from e
            log.warning("%s; serving the CACHED model set %s saved at %s", e, models.versions,
                        models.loaded_at.isoformat())
            problems.append(_degraded(models, e))
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
            self._stamps["scores"] = scores_stamp
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

    def reload(self) -> Reload:
        """A state with the current champions and the latest score set, reloading only what changed.

        Coalesced: while a round runs, callers wait, and those that asked after it started share the next
        round. Raises LoadError (RegistryUnavailable when the registry cannot be read) and keeps the old
        state."""
        with self._cv:
            self._asked += 1
            ticket = self._asked
            while self._covered < ticket:
                if not self._running:
                    self._running = True
                    covers = self._asked
                    break
                self._cv.wait()
            else:
                return self._outcome()
        outcome: Reload | BaseException
        try:
            outcome = self._reload_once()
        except BaseException as e:  # noqa: BLE001 - handed to every caller of this round
            outcome = e
        with self._cv:
            self._running = False
            self._covered = covers
            self._last = outcome
            self._cv.notify_all()
            return self._outcome()

    def _outcome(self) -> Reload:
        if isinstance(self._last, BaseException):
            raise self._last
        return self._last

    def _reload_once(self) -> Reload:
        s = self.settings
        old = self.current
        from_registry = old.models is not None and old.churn is not None and old.models.source == "registry"
        registry_stamp, scores_stamp = self._registry_stamp(), file_stamp(s.scores_db)
        if from_registry and registry_stamp is not None and registry_stamp == self._stamps.get("registry"):
            models = old.models                         # the registry file has not changed since it was read
        else:
            models = load_models_from_registry(s, previous=old.models,
                                               served_before=old.versions or cached_versions(s))
        same_models = from_registry and models.versions == old.models.versions
        if same_models:
            models, scorer = old.models, old.churn      # nothing to rebuild (and the same objects stay served)
        else:
            scorer = churn_scorer(models)
        if old.scores is not None and scores_stamp is not None and scores_stamp == self._stamps.get("scores"):
            scores = old.scores
        else:
            scores = load_score_set_apart(s, previous=old.scores)
        changed = tuple(name for name, same in (("models", same_models), ("score_set", scores is old.scores))
                        if not same)
        self._stamps.update(registry=registry_stamp, scores=scores_stamp)
        if not changed and not old.problems:
            return Reload(old, old, ())
        data = DataContext(s.data, s.column_map) if changed else old.data
        new = ServingState(old.generation + 1, models, scores, scorer, data, ())
        self._swap(new)
        if not same_models:
            save_model_cache(s, models)
        return Reload(new, old, changed or ("problems",))


    def _registry_stamp(self) -> tuple | None:
        db = registry_file(self.settings.tracking_uri)
        return file_stamp(db) if db is not None else None


def file_stamp(path: Path) -> tuple | None:
    """(inode, size, mtime) of ``path`` and of its journal / WAL files beside it, or None when it does not
    exist: equal stamps mean the file was not written in between."""
    out = []
    for p in (Path(path), *(Path(f"{path}{suffix}") for suffix in ("-journal", "-wal", ".wal"))):
        try:
            st = os.stat(p)
        except OSError:
            if p == Path(path):
                return None
            out.append(None)
            continue
        out.append((st.st_ino, st.st_size, st.st_mtime_ns))
    return tuple(out)


def _degraded(models: ModelSet, why: Exception) -> str:
    return (f"degraded: serving the cached model set {models.versions} saved at {models.loaded_at.isoformat()} "
            f"({why})")
