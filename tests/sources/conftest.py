"""Source-kind tests: one simulated portfolio (300 accounts × 2 years, the session's `small_portfolio`) put
into every kind of source csforecast reads, and a real PostgreSQL server started by the tests themselves.

PostgreSQL: Debian's `postgresql` package (`.ci/run` installs it). A throwaway cluster (initdb, pg_ctl) in a
temporary folder, listening on a free loopback port only, owned by a non-root user (PostgreSQL refuses to run
as root: as root the cluster runs as the package's `postgres` user), stopped and deleted after the session.
"""
from __future__ import annotations

import glob
import io
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
from kinds_util import portfolio_tables, write_duckdb

PG_TYPES = {"object": "text", "string": "text", "str": "text", "float64": "double precision",
            "int64": "bigint", "bool": "boolean", "boolean": "boolean", "datetime64[ns]": "timestamp",
            "datetime64[us]": "timestamp", "datetime64[ms]": "timestamp"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pg_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(p.split("/")[4]))
    return Path(found[-1]).parent if found else None


@dataclass
class PostgresServer:
    port: int
    user: str = "csforecast"

    def url(self, database: str = "postgres") -> str:
        return f"postgres://{self.user}@127.0.0.1:{self.port}/{database}"

    def connect(self, database: str = "postgres"):
        import psycopg

        return psycopg.connect(host="127.0.0.1", port=self.port, user=self.user, dbname=database,
                               autocommit=True)

    def create_database(self, name: str) -> str:
        with self.connect() as con:
            con.execute(f'DROP DATABASE IF EXISTS "{name}"')
            con.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def load(self, database: str, tables: dict[str, pd.DataFrame]) -> None:
        """Create each table (types from the frame's dtypes) and COPY its rows in."""
        with self.connect(database) as con:
            for name, df in tables.items():
                cols = ", ".join(f'"{c}" {PG_TYPES[str(df[c].dtype)]}' for c in df.columns)
                con.execute(f'DROP TABLE IF EXISTS "{name}"')
                con.execute(f'CREATE TABLE "{name}" ({cols})')
                buf = io.StringIO()
                df.to_csv(buf, index=False, header=False, date_format="%Y-%m-%d %H:%M:%S")
                with con.cursor().copy(f'COPY "{name}" FROM STDIN WITH (FORMAT csv)') as cp:
                    cp.write(buf.getvalue())


@pytest.fixture(scope="session")
def postgres():
    """A real PostgreSQL server on 127.0.0.1:<free port>, for this session only."""
    bindir = _pg_bin()
    if bindir is None:
        msg = "PostgreSQL server not installed (apt-get install postgresql; .ci/run installs it)"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    root = Path(tempfile.mkdtemp(prefix="csforecast-pg-"))
    run_as: list[str] = []
    if os.geteuid() == 0:  # PostgreSQL refuses root: run the cluster as the package's postgres user
        owner = pwd.getpwnam("postgres")
        os.chown(root, owner.pw_uid, owner.pw_gid)
        os.chmod(root, 0o700)
        run_as = ["runuser", "-u", "postgres", "--"]
    data, port = root / "data", _free_port()
    server = PostgresServer(port)
    subprocess.run(run_as + [str(bindir / "initdb"), "-D", str(data), "-U", server.user, "--auth=trust",
                             "-E", "UTF8", "--no-sync"], check=True, capture_output=True, timeout=120)
    opts = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -F"
    started = subprocess.run(run_as + [str(bindir / "pg_ctl"), "-D", str(data), "-o", opts, "-l",
                                       str(root / "server.log"), "-w", "-t", "60", "start"],
                             capture_output=True, text=True, timeout=90)
    if started.returncode != 0:
        log = (root / "server.log").read_text() if (root / "server.log").exists() else ""
        shutil.rmtree(root, ignore_errors=True)
        raise RuntimeError(f"PostgreSQL did not start: {started.stderr}\n{log[-2000:]}")
    try:
        yield server
    finally:
        subprocess.run(run_as + [str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
                       capture_output=True, timeout=60)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def source_kinds(small_portfolio, postgres, tmp_path_factory) -> dict[str, str]:
    """The same portfolio as every kind of source: kind -> the --data location.

    Rows are written in one canonical order (sorted by every column), the order in which csforecast reads a
    database's rows, so every kind holds the same rows in the same order."""
    from csforecast.data.contract import TABLES

    root = tmp_path_factory.mktemp("kinds")
    tables = {name: df.sort_values([c for c in TABLES[name].column_names if c in df.columns], ignore_index=True)
              for name, df in portfolio_tables(small_portfolio).items()}
    folders = {"parquet": root / "parquet", "csv": root / "csv"}
    for kind, folder in folders.items():
        folder.mkdir()
        for name, df in tables.items():
            df.to_parquet(folder / f"{name}.parquet", index=False) if kind == "parquet" \
                else df.to_csv(folder / f"{name}.csv", index=False)
    db = write_duckdb(root / "portfolio.duckdb", folders["parquet"])
    postgres.load("postgres", tables)
    return {"parquet": str(folders["parquet"]), "csv": str(folders["csv"]), "duckdb_file": str(db),
            "duckdb_url": f"duckdb://{db}", "postgres": postgres.url()}
