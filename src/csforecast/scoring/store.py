"""The scores store: a DuckDB file under CSFORECAST_HOME with versioned, atomically written score sets.

Tables:
  score_runs(version INTEGER, as_of DATE, data_hash VARCHAR, created_at TIMESTAMP, n_accounts INTEGER,
             models VARCHAR  -- JSON {family: version})
  scores(version INTEGER, account_id VARCHAR, ... one row per active account; JSON columns hold lists/dicts)
  health_history(version INTEGER, account_id VARCHAR, week DATE, health_score DOUBLE, components VARCHAR)
A score set is written in one transaction: readers see the previous version or the new one, never half.
Readers take the latest version (max version in score_runs).
"""
from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import duckdb
import pandas as pd

JSON_COLUMNS = ("churn_drivers", "health_components", "triggers", "survival_contributions", "models")


def _run(con, sql: str, params=None) -> list:
    """Execute and drain (DuckDB 2 refuses new work while a result is unfetched)."""
    return con.execute(sql, params or []).fetchall()


def _connect(path: Path, read_only: bool = False):
    path = Path(path)
    if not read_only:
        path.parent.mkdir(parents=True, exist_ok=True)
    return duckdb.connect(str(path), read_only=read_only)


def write_scores(path: Path, scores: pd.DataFrame, *, as_of, data_hash: str, models: dict,
                 history: pd.DataFrame | None = None) -> int:
    """Append a new score set; returns its version. All-or-nothing."""
    df = scores.copy()
    for c in JSON_COLUMNS:
        if c in df.columns:
            df[c] = df[c].map(lambda v: json.dumps(v, default=str) if v is not None else None)
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
            # columns added by a later version (e.g. churn_probability_p10) are added to the table: older
            # score sets read them as NULL
            have = {r[0] for r in con.execute("SELECT column_name FROM information_schema.columns "
                                               "WHERE table_name='scores'").fetchall()}
            types = {r[0]: r[1] for r in con.execute("DESCRIBE new_scores").fetchall()}
            for c in [c for c in df.columns if c not in have]:
                _run(con, f'ALTER TABLE scores ADD COLUMN "{c}" {types[c]}')
            _run(con, "INSERT INTO scores BY NAME SELECT * FROM new_scores")
        else:
            _run(con, "CREATE TABLE scores AS SELECT * FROM new_scores")
        if history is not None and len(history):
            h = history.copy()
            h.insert(0, "version", version)
            if "components" in h.columns:
                h["components"] = h["components"].map(lambda v: json.dumps(v, default=str))
            con.register("new_hist", h)
            hx = con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name='health_history'"
                             ).fetchall()[0][0]
            _run(con, "INSERT INTO health_history BY NAME SELECT * FROM new_hist" if hx
                        else "CREATE TABLE health_history AS SELECT * FROM new_hist")
        _run(con, "INSERT INTO score_runs VALUES (?, ?, ?, ?, ?, ?)",
                    [version, pd.Timestamp(as_of).date(), data_hash, datetime.now(timezone.utc).replace(tzinfo=None),
                     len(df), json.dumps(models)])
        _run(con, "COMMIT")
    except Exception:
        _run(con, "ROLLBACK")
        raise
    finally:
        con.close()
    return int(version)


def load_latest(path: Path) -> tuple[dict, pd.DataFrame, pd.DataFrame]:
    """(run metadata, scores, health history) of the latest score set. Raises FileNotFoundError if none."""
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
        v = int(meta["version"])
        scores = con.execute("SELECT * FROM scores WHERE version = ?", [v]).fetchdf()
        tables = set(con.execute("SELECT table_name FROM information_schema.tables").fetchdf()["table_name"])
        hist = (con.execute("SELECT * FROM health_history WHERE version = ?", [v]).fetchdf()
                if "health_history" in tables else pd.DataFrame())
    finally:
        con.close()
    for c in JSON_COLUMNS:
        if c in scores.columns:
            scores[c] = scores[c].map(lambda s: json.loads(s) if isinstance(s, str) else s)
    if "components" in hist.columns:
        hist["components"] = hist["components"].map(lambda s: json.loads(s) if isinstance(s, str) else s)
    return meta, scores, hist
