"""The dashboard's data per serving state: the portfolio frame (built at once) and background jobs.

Per state a `UIData` builds the portfolio frame from the pre-serialised score set (once) and computes
everything that needs the data source or the registry -- weekly change explanations, ARR movements, the
renewal forecast of the next 4 quarters, the latest backtest, model artifacts -- in one background thread,
so a page never waits for them: it shows what is ready and says what is still being computed or missing.
A reload makes a new `UIData` (`ui_data_for`) and closes the old one.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Callable

import pandas as pd

from csforecast.api.errors import DataUnavailable
from csforecast.jsonsafe import error_text
from csforecast.tracking.runs import latest_backtest, latest_backtest_id, run_artifacts, run_experiment_id
from csforecast.api.state import ServingState
from csforecast.ui import views

log = logging.getLogger("csforecast.ui")

FORECAST_QUARTERS = 4
MAX_JOBS = 200


@dataclass
class Job:
    """One background computation: its status, value (partial while running, when it has one) and timing."""

    status: str = "pending"          # pending | running | ready | unavailable | failed
    value: Any = None
    message: str | None = None
    progress: str | None = None
    started: float | None = None
    seconds: float | None = None
    created: float = field(default_factory=time.monotonic)

    def describe(self) -> dict:
        return {"status": self.status, "message": self.message, "progress": self.progress,
                "seconds": None if self.seconds is None else round(self.seconds, 2)}



class UIData:
    """What the pages of one ServingState show: the portfolio frame (built at once) and the background jobs."""

    def __init__(self, state: ServingState, settings):
        t0 = time.perf_counter()
        self.state = state
        self.settings = settings
        sc = state.scores
        self.frame = views.build_frame(sc.items, sc.details) if sc is not None else None
        self.options = views.filter_options(self.frame) if self.frame is not None else None
        self.as_of = date.fromisoformat(sc.as_of) if sc is not None and sc.as_of else None
        self.build_seconds = time.perf_counter() - t0
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self._data_lock = threading.Lock()
        self._data: dict | None = None
        self._data_error: BaseException | None = None
        # one daemon worker: jobs run in submission order, and a long forecast never holds up the server's exit
        self.closed = False
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._worker = threading.Thread(target=self._loop, name="csforecast-ui", daemon=True)
        self._worker.start()
        # warm-up, in the order the pages need them
        if sc is not None:
            self.job("history", self.history)
        self.job("data", self.load_data)
        if state.models is not None:
            self.job("registry", self.registry)
        self.backtest_job()
        self.job("movements:", lambda job: self.movements(views.Filters()))
        self.job("forecast:", lambda job: self.forecast(job, None))

    # ---------------------------------------------------------------------------------------- jobs
    def job(self, name: str, fn: Callable[[Job], Any]) -> Job:
        with self._lock:
            j = self._jobs.get(name)
            if j is None:
                if self.closed:
                    return Job("unavailable", message="the served state was replaced; reload the page")
                self._evict()
                j = self._jobs[name] = Job()
                self._queue.put((name, j, fn))
            return j

    def peek(self, name: str) -> Job | None:
        return self._jobs.get(name)

    def _evict(self) -> None:
        if len(self._jobs) < MAX_JOBS:
            return
        done = sorted((j.created, n) for n, j in self._jobs.items()
                      if j.status in ("ready", "unavailable", "failed") and ":" in n and not n.endswith(":"))
        for _, n in done[: len(self._jobs) - MAX_JOBS + 1]:
            del self._jobs[n]

    def _loop(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            self._run(*item)

    def _run(self, name: str, job: Job, fn: Callable[[Job], Any]) -> None:
        if self.closed:
            job.status, job.message = "unavailable", "the served state was replaced"
            return
        job.status, job.started = "running", time.perf_counter()
        try:
            job.value = fn(job)
            job.status = "ready"
        except DataUnavailable as e:
            job.status, job.message = "unavailable", str(e)
        except LookupError as e:              # nothing of that kind exists (no backtest, no champion …)
            job.status, job.message = "unavailable", str(e.args[0] if e.args else e)
        except Exception as e:  # noqa: BLE001 - shown on the page, logged with its traceback
            log.exception("dashboard job %s failed", name)
            job.status, job.message = "failed", error_text(e)
        finally:
            job.seconds = time.perf_counter() - job.started

    def status(self) -> dict:
        return {"generation": self.state.generation, "frame_seconds": round(self.build_seconds, 3),
                "jobs": {n: j.describe() for n, j in sorted(self._jobs.items())}}

    def close(self) -> None:
        self.closed = True
        self._queue.put(None)

    def wait_idle(self, timeout: float = 600) -> bool:
        """Block until every submitted job has finished (tests, benchmarks)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(j.status not in ("pending", "running") for j in list(self._jobs.values())):
                return True
            time.sleep(0.05)
        return False

    # ---------------------------------------------------------------------------------------- job bodies
    def history(self, job: Job) -> dict:
        """The weekly health history's change explanations of this score set (scores store)."""
        import duckdb

        path = Path(self.settings.scores_db)
        if not path.exists():
            raise DataUnavailable(f"no scores database at {path}")
        con = duckdb.connect(str(path), read_only=True)
        try:
            cols = {r[0] for r in con.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = 'health_history'").fetchall()}
            if not {"account_id", "week"} <= cols:
                raise DataUnavailable("this score set has no weekly health history")
            want = [c for c in ("account_id", "week", "health_score", "change", "change_explanation") if c in cols]
            h = con.execute(f"SELECT {', '.join(want)} FROM health_history WHERE version = ?",
                            [int(self.state.scores.version)]).fetchdf()
        finally:
            con.close()
        return {"last": views.last_changes(h), "explanations": views.trend_explanations(h)}

    def load_data(self, job: Job | None = None) -> dict:
        with self._data_lock:
            if self._data is not None:
                return self._data
            if self._data_error is not None:
                raise self._data_error
            d = self.state.data
            try:
                if not d.location:
                    raise DataUnavailable("no data source configured (start the server with `csforecast serve "
                                          "--data SRC` or set CSFORECAST_DATA)")
                contracts = d.frame("contracts")
                try:
                    accounts = d.frame("accounts")
                except DataUnavailable:
                    accounts = None
                end = d.data_end()
            except BaseException as e:
                self._data_error = e
                raise
            by_acc = contracts.groupby(contracts["account_id"].astype(str)).indices
            self._data = {"contracts": contracts, "accounts": accounts, "data_end": end, "by_account": by_acc}
            return self._data

    def data(self) -> tuple[dict | None, str | None]:
        """(data, None) when loaded; (None, why not) otherwise (pending or unavailable)."""
        j = self.job("data", self.load_data)
        if j.status == "ready":
            return j.value, None
        if j.status in ("pending", "running"):
            return None, "loading the data source…"
        return None, j.message

    def movements(self, filters: views.Filters) -> pd.DataFrame:
        from csforecast.metrics.arr import arr_movements

        data = self.load_data()
        contracts = data["contracts"]
        accounts = data["accounts"]
        if accounts is None and filters.active():
            raise DataUnavailable("the data source has no accounts table to filter ARR movements by")
        ids = filters.account_ids(accounts) if accounts is not None else None
        if ids is not None:
            contracts = contracts[contracts["account_id"].astype(str).isin(ids)]
        return arr_movements(contracts, None, period="quarter", data_end=data["data_end"])

    def forecast(self, job: Job, group_by: str | None) -> list[dict]:
        """The renewal forecasts of the next FORECAST_QUARTERS quarters, from the data context's caches (shared
        with the API: computed once per score set and model, kept on disk) or computed there."""
        try:
            from csforecast.scoring.forecasts import next_quarters
        except ImportError as e:
            raise DataUnavailable(f"renewal forecasts are not available in this build ({error_text(e)})") from e
        data = self.load_data()
        d = self.state.data
        est = self.state.models.estimators.get("churn") if self.state.models else None
        if est is None:
            raise DataUnavailable("no churn model is served: the renewal forecast needs one")
        version = self.state.models.versions.get("churn")
        b = self.state.models.estimators.get("blend")
        blend = (b, self.state.models.versions.get("blend")) if b is not None else None
        sv = self.state.models.estimators.get("survival")
        survival = (sv, self.state.models.versions.get("survival")) if sv is not None else None
        scores_version = self.state.scores.version if self.state.scores is not None else None
        out = []
        quarters = next_quarters(data["data_end"], FORECAST_QUARTERS)
        for k, (start, end) in enumerate(quarters):
            job.progress = f"quarter {k + 1} of {FORECAST_QUARTERS} ({pd.Period(pd.Timestamp(start), freq='Q')})"
            out.append(d.forecast(start, end, group_by, est, version, scores_version, blend, survival))
            job.value = list(out)       # partial results are shown while the rest is computed
        job.progress = None
        return out

    def registry(self, job: Job) -> dict:
        """Per served family: experiment id, the artifacts shown on the models page (bytes), the health report."""
        out: dict[str, dict] = {}
        for fam in self.state.models.versions:
            info = self.state.models.info.get(fam) or {}
            run_id = info.get("run_id")
            entry: dict = {"experiment_id": None, "artifacts": [], "files": {}, "report": None}
            out[fam] = entry
            if not run_id:
                entry["error"] = "the registry did not say which run produced this version"
                continue
            try:
                entry["experiment_id"] = run_experiment_id(self.settings, run_id)
                wanted = views.FAMILY_ARTIFACTS.get(fam, ()) + ((views.HEALTH_REPORT,) if fam == "health" else ())
                for name, blob in run_artifacts(self.settings, run_id, wanted).items():
                    if name.endswith(".md"):
                        entry["report"] = blob.decode("utf-8", "replace")
                    else:
                        entry["files"][name] = blob
                        entry["artifacts"].append(name)
            except Exception as e:  # noqa: BLE001 - shown beside the family
                entry["error"] = f"artifacts of run {run_id} could not be read: {error_text(e)}"
        return out

    def backtest_job(self) -> Job:
        """The latest backtest's job, keyed by its run id: a backtest run after this state was loaded shows on
        the next page view, without a reload."""
        return self.job(f"backtest:{latest_backtest_id(self.settings) or 'none'}", self.backtest)

    def ledger(self) -> dict | None:
        """The forecast ledger with actuals (``forecast.ledger``), read on every call (a new freeze shows at
        once), measured against the served data source when it is loaded."""
        from csforecast.forecast.ledger import ledger_report
        from csforecast.scoring.process import ledger_entries, process_db

        data, _why = self.data()
        frames = (data["contracts"], data.get("accounts"), data["data_end"]) if data is not None else None
        return ledger_report(ledger_entries(process_db(self.settings.home)), lambda _where: frames)

    def backtest(self, job: Job) -> dict:
        """The latest backtest run (experiment csforecast-forecast, tag kind=backtest) and its backtest.json."""
        return latest_backtest(self.settings)


_ui_lock = threading.Lock()


def ui_data_for(app) -> UIData:
    """The UIData of the app's current serving state (built on first use after a load or reload)."""
    state = app.state.holder.current
    cur = getattr(app.state, "ui_data", None)
    if cur is not None and cur.state is state:
        return cur
    with _ui_lock:
        cur = getattr(app.state, "ui_data", None)
        if cur is not None and cur.state is state:
            return cur
        new = UIData(state, app.state.settings)
        app.state.ui_data = new
        if cur is not None:
            cur.close()
        return new


def ui_data(request) -> UIData:
    """The UIData of the request's app (see `ui_data_for`)."""
    return ui_data_for(request.app)


def warm_up(app) -> None:
    """Build the page data in the background while the user is on the login form."""
    cur = getattr(app.state, "ui_data", None)
    if cur is not None and cur.state is app.state.holder.current:
        return

    def run():
        try:
            ui_data_for(app)
        except Exception:  # noqa: BLE001 - the first page request will retry and show the error
            log.exception("dashboard warm-up failed")
    threading.Thread(target=run, name="csforecast-ui-warmup", daemon=True).start()




def arr_history(contracts: pd.DataFrame, data_end: date) -> pd.Series | None:
    """The account's ARR on the first day of every month from its first contract to the data end."""
    from csforecast.metrics.arr import account_arr_panel

    c = contracts[contracts["start_date"].notna()]
    if c.empty:
        return None
    first = pd.Timestamp(c["start_date"].min()).to_period("M").start_time
    months = pd.date_range(first, pd.Timestamp(data_end), freq="MS")
    if len(months) == 0:
        return None
    panel = account_arr_panel(c, list(months))
    return panel.iloc[0] if len(panel) else None
