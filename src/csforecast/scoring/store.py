"""The scores store: a DuckDB file under CSFORECAST_HOME with versioned, atomically written score sets.

Tables:
  score_runs(version INTEGER, as_of DATE, data_hash VARCHAR, created_at TIMESTAMP, n_accounts INTEGER,
             models VARCHAR  -- JSON {family: version})
  scores(version INTEGER, account_id VARCHAR, ... one row per active account; JSON columns hold lists/dicts)
         churn_drivers: the top drivers kept compact, JSON [feature, value, contribution, ...]; sets written
         before hold rendered dicts. Readers put both into words with features.catalogue.render_drivers.
  health_history(version INTEGER, account_id VARCHAR, week DATE, health_score DOUBLE, components VARCHAR)
  served_outcomes(version, as_of, account_id, renewal_date, segment, days_to_renewal, churn_probability,
                  churn_model_version, churned)  -- the probabilities served by earlier sets whose renewal has
                  resolved, against what happened; replaced whole by each new set (scoring/monitor.py)
  drift(version INTEGER, family VARCHAR, column VARCHAR, psi DOUBLE, warning BOOLEAN, n INTEGER)
                  -- each set's distributions against its champion's training data (scoring/monitor.py)
A score set is written in one transaction: readers see the previous version or the new one, never half.
Readers take the latest version (max version in score_runs).

Faults are errors that say what happened, never a DuckDB traceback (`StorageError`): a full disk, a
read-only file system or no permission (the transaction is rolled back and the earlier sets stay readable),
a file in use by another process, and a damaged file. A damaged file is never written to: before a new
set is added, the latest set is read back completely, and when the file cannot be opened or read the error
says which earlier sets can still be read and how to start a fresh file; the file is left as it is.
"""
from __future__ import annotations

import contextlib
import json
from datetime import datetime, timezone
from pathlib import Path

import duckdb
import pandas as pd

from csforecast.errors import StorageError, check_writable, storage_error

JSON_COLUMNS = ("churn_drivers", "health_components", "triggers", "survival_contributions", "models")

# json.dumps(v, default=str), with one encoder made once: json.dumps makes a new encoder on every call that
# passes an option, which at a million rows was a large share of writing a score set
json_text = json.JSONEncoder(default=str).encode


def _run(con, sql: str, params=None) -> list:
    """Execute and drain (DuckDB 2 refuses new work while a result is unfetched)."""
    return con.execute(sql, params or []).fetchall()


def _connect(path: Path, read_only: bool = False, action: str | None = None):
    """A connection to the store, or StorageError (damaged, in use, disk or permission fault) saying what
    could not be done (``action``: "read" or "write"; default from ``read_only``)."""
    path = Path(path)
    try:
        if not read_only:
            path.parent.mkdir(parents=True, exist_ok=True)
        return duckdb.connect(str(path), read_only=read_only)
    except (OSError, duckdb.Error) as e:
        raise store_error(path, e, action or ("read" if read_only else "write")) from e


def store_error(path: Path, error: BaseException, action: str) -> StorageError:
    """What went wrong with the store at ``path`` as a StorageError: a disk or permission fault, the file in
    use by another process, or (any other database error) a damaged file with what can still be read."""
    fault = storage_error(error, path, action)
    if fault is not None:
        return fault
    text = str(error).replace("\n", " ")
    if "lock" in text.lower() and "conflicting" in text.lower():
        return StorageError(f"the scores database {path} is in use by another process (another `csforecast "
                            "score`?); try again when it has finished")
    readable = readable_versions(path)
    return StorageError(
        f"the scores database {path} is damaged ({text[:200]})"
        + ("; it was left as it is and nothing was written. " if action == "write" else ". ")
        + (f"Score sets that can still be read: {', '.join(f'v{v}' for v in readable)}. " if readable else
           "No score set in it can be read. ")
        + f"To start a fresh file, move it aside (mv {path} {path}.damaged) and run `csforecast score` again; "
        "a running server keeps serving the set it has loaded.")


def readable_versions(path: Path, limit: int = 50) -> list[int]:
    """The score set versions (the latest ``limit``) that can still be read completely from ``path``; best
    effort, for the message about a damaged file (never raises)."""
    found: list[int] = []
    try:
        con = duckdb.connect(str(path), read_only=True)
    except Exception:  # noqa: BLE001 - a file that does not open has nothing readable
        return found
    try:
        versions = [int(r[0]) for r in _run(con, "SELECT version FROM score_runs ORDER BY version DESC LIMIT ?",
                                             [limit])]
        for v in versions:
            with contextlib.suppress(Exception):
                _read_set(con, v)
                found.append(v)
    except Exception:  # noqa: BLE001
        pass
    finally:
        with contextlib.suppress(Exception):
            con.close()
    return sorted(found)


def _read_set(con, version: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every row of score set ``version`` (scores, health history): reads all of its blocks, so a damaged
    block is found here and not by a reader later."""
    scores = con.execute("SELECT * FROM scores WHERE version = ?", [version]).fetchdf()
    tables = {r[0] for r in _run(con, "SELECT table_name FROM information_schema.tables")}
    hist = (con.execute("SELECT * FROM health_history WHERE version = ?", [version]).fetchdf()
            if "health_history" in tables else pd.DataFrame())
    return scores, hist


def check_store(path: Path) -> None:
    """Fail early, before any scoring work, when a new score set could not be written to ``path``: the
    file is damaged (its latest set cannot be read back) or in use, or its folder cannot be written (a
    probe file is written, synced and removed). Raises StorageError naming the path and the cause."""
    path = Path(path)
    if path.exists():
        ro = _connect(path, read_only=True, action="write")
        try:
            _check_latest(ro, path)
        finally:
            ro.close()
    check_writable(path.parent)


def latest_run(path: Path) -> dict:
    """The score_runs row of the latest score set (version, as_of, data_hash, created_at, n_accounts,
    models) without reading its scores. FileNotFoundError when there is none; StorageError when the file
    cannot be read."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no scores database at {path}: run `csforecast score --data …` first")
    con = _connect(path, read_only=True)
    try:
        run = con.execute("SELECT * FROM score_runs ORDER BY version DESC LIMIT 1").fetchdf()
    except duckdb.Error as e:
        raise store_error(path, e, "read") from e
    finally:
        con.close()
    if run.empty:
        raise FileNotFoundError(f"no score sets in {path}")
    meta = run.iloc[0].to_dict()
    meta["models"] = json.loads(meta["models"])
    return meta


def write_scores(path: Path, scores: pd.DataFrame, *, as_of, data_hash: str, models: dict,
                 history: pd.DataFrame | None = None, outcomes: pd.DataFrame | None = None,
                 drift: pd.DataFrame | None = None) -> int:
    """Append a new score set; returns its version. ``outcomes`` (when given) replaces the served outcomes
    table and ``drift`` rows are stored under the new version, in the same transaction. All-or-nothing: on any
    failure the transaction is rolled back and the earlier sets stay as they were. Raises StorageError (naming the path and the
    cause) for a disk or permission fault, a file in use, or a damaged file, which is never written to."""
    path = Path(path)
    df = scores.copy()
    for c in JSON_COLUMNS:
        if c in df.columns:
            df[c] = [None if v is None else json_text(v) for v in df[c]]
    if path.exists():  # read-only first: a damaged file is never opened for writing
        ro = _connect(path, read_only=True, action="write")
        try:
            _check_latest(ro, path)
        finally:
            ro.close()
    con = _connect(path)
    try:
        _run(con, """CREATE TABLE IF NOT EXISTS score_runs(version INTEGER PRIMARY KEY, as_of DATE,
                       data_hash VARCHAR, created_at TIMESTAMP, n_accounts INTEGER, models VARCHAR)""")
        _run(con, "BEGIN TRANSACTION")
        version = con.execute("SELECT coalesce(max(version), 0) + 1 FROM score_runs").fetchall()[0][0]
        df.insert(0, "version", version)
        con.register("new_scores", df)
        exists = con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name='scores'").fetchall()[0][0]
        if exists:
            # a family scored for the first time (or a new output) adds its columns; older sets read NULL there
            have = {r[0] for r in con.execute("SELECT column_name FROM information_schema.columns "
                                              "WHERE table_name = 'scores'").fetchall()}
            for name, kind in con.execute("SELECT column_name, column_type FROM (DESCRIBE new_scores)").fetchall():
                if name not in have:
                    kind = "VARCHAR" if kind == '"NULL"' else kind      # a column with no value yet
                    _run(con, f'ALTER TABLE scores ADD COLUMN "{name}" {kind}')
            _run(con, "INSERT INTO scores BY NAME SELECT * FROM new_scores")
        else:
            _run(con, "CREATE TABLE scores AS SELECT * FROM new_scores")
        if history is not None and len(history):
            h = history.copy()
            h.insert(0, "version", version)
            if "components" in h.columns:
                h["components"] = [json_text(v) for v in h["components"]]
            con.register("new_hist", h)
            hx = con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name='health_history'"
                             ).fetchall()[0][0]
            _run(con, "INSERT INTO health_history BY NAME SELECT * FROM new_hist" if hx
                        else "CREATE TABLE health_history AS SELECT * FROM new_hist")
        if outcomes is not None:
            con.register("new_outcomes", outcomes)
            _run(con, "CREATE OR REPLACE TABLE served_outcomes AS SELECT * FROM new_outcomes")
        if drift is not None and len(drift):
            d = drift.copy()
            d.insert(0, "version", version)
            con.register("new_drift", d)
            _run(con, "CREATE TABLE IF NOT EXISTS drift(version INTEGER, family VARCHAR, \"column\" VARCHAR, "
                      "psi DOUBLE, warning BOOLEAN, n INTEGER)")
            _run(con, "INSERT INTO drift BY NAME SELECT * FROM new_drift")
        _run(con, "INSERT INTO score_runs VALUES (?, ?, ?, ?, ?, ?)",
                    [version, pd.Timestamp(as_of).date(), data_hash, datetime.now(timezone.utc).replace(tzinfo=None),
                     len(df), json.dumps(models)])
        _run(con, "COMMIT")
    except Exception as e:
        with contextlib.suppress(Exception):  # a failed rollback must not hide why the write failed
            _run(con, "ROLLBACK")
        if isinstance(e, StorageError):
            raise
        if isinstance(e, (OSError, duckdb.Error)):
            raise store_error(path, e, "write") from e
        raise
    finally:
        with contextlib.suppress(Exception):
            con.close()
    return int(version)


SERVED_COLUMNS = ("account_id", "renewal_date", "segment", "days_to_renewal", "churn_probability",
                  "churn_model_version")


def served_probabilities(path: Path) -> pd.DataFrame:
    """The churn probabilities every score set served: for each as-of date its latest set's rows (a date
    scored again counts once), with ``version`` and ``as_of``. Empty when there is no store or no set with
    churn scores. StorageError when the file cannot be read."""
    path = Path(path)
    empty = pd.DataFrame(columns=["version", "as_of", *SERVED_COLUMNS])
    if not path.exists():
        return empty
    con = _connect(path, read_only=True)
    try:
        cols = {r[0] for r in _run(con, "SELECT column_name FROM information_schema.columns "
                                        "WHERE table_name = 'scores'")}
        if not {"churn_probability", "renewal_date"} <= cols:
            return empty
        pick = ", ".join(f's."{c}"' if c in cols else f'NULL AS "{c}"' for c in SERVED_COLUMNS)
        return con.execute(f"""
            SELECT s.version, r.as_of, {pick} FROM scores s JOIN score_runs r USING (version)
            WHERE s.version IN (SELECT max(version) FROM score_runs GROUP BY as_of)
              AND s.churn_probability IS NOT NULL""").fetchdf()
    except duckdb.Error as e:
        raise store_error(path, e, "read") from e
    finally:
        con.close()


def load_monitoring(path: Path) -> tuple[pd.DataFrame, pd.DataFrame, int | None]:
    """(served outcomes, drift rows, the latest version) — empty frames when the store has none yet. The drift
    rows are those of the latest set that has any (their ``version`` says which: a set written without them, e.g.
    loaded from Spark, does not hide the last measurement). StorageError when the file cannot be read."""
    path = Path(path)
    if not path.exists():
        return pd.DataFrame(), pd.DataFrame(), None
    con = _connect(path, read_only=True)
    try:
        tables = {r[0] for r in _run(con, "SELECT table_name FROM information_schema.tables")}
        latest = _run(con, "SELECT max(version) FROM score_runs")[0][0] if "score_runs" in tables else None
        outcomes = (con.execute("SELECT * FROM served_outcomes").fetchdf() if "served_outcomes" in tables
                    else pd.DataFrame())
        drift = (con.execute("SELECT * FROM drift WHERE version = (SELECT max(version) FROM drift) "
                             "ORDER BY family, psi DESC").fetchdf() if "drift" in tables else pd.DataFrame())
        return outcomes, drift, latest
    except duckdb.Error as e:
        raise store_error(path, e, "read") from e
    finally:
        con.close()


def _check_latest(con, path: Path) -> None:
    """Read the latest score set back completely before a new one is added; StorageError if it cannot be."""
    try:
        tables = {r[0] for r in _run(con, "SELECT table_name FROM information_schema.tables")}
        if "score_runs" not in tables:
            return
        latest = _run(con, "SELECT max(version) FROM score_runs")[0][0]
        if latest is not None:
            _read_set(con, int(latest))
    except duckdb.Error as e:
        raise store_error(path, e, "write") from e


def load_latest(path: Path) -> tuple[dict, pd.DataFrame, pd.DataFrame]:
    """(run metadata, scores, health history) of the latest score set. Raises FileNotFoundError if none,
    StorageError when the file cannot be read (damaged, in use, permissions)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no scores database at {path}: run `csforecast score --data …` first")
    con = _connect(path, read_only=True)
    try:
        run = con.execute("SELECT * FROM score_runs ORDER BY version DESC LIMIT 1").fetchdf()
        if run.empty:
            raise FileNotFoundError(f"no score sets in {path}")
        meta = run.iloc[0].to_dict()
        meta["models"] = json.loads(meta["models"])
        scores, hist = _read_set(con, int(meta["version"]))
    except duckdb.Error as e:
        raise store_error(path, e, "read") from e
    finally:
        con.close()
    for c in JSON_COLUMNS:
        if c in scores.columns:
            scores[c] = scores[c].map(lambda s: json.loads(s) if isinstance(s, str) else s)
    if "components" in hist.columns:
        hist["components"] = hist["components"].map(lambda s: json.loads(s) if isinstance(s, str) else s)
    return meta, scores, hist
