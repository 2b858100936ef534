"""The examples under each command's ``--help`` (and under ``csforecast --help``): one list, added to the wired
app by :func:`add_examples`, so the command modules stay about their commands.

Each example is a command that works as written after ``csforecast demo`` or ``csforecast simulate --out demo``
(the folder ``demo`` below is such a simulated portfolio). Commands are keyed by their path
(``"apikey create"``); tests/test_cli_help.py checks that every command has some."""
from __future__ import annotations

import typer

APP = """Examples (a first hour):

  csforecast demo --accounts 300 --years 2 --no-serve   # simulate, train, score; prints the dashboard key

  csforecast simulate --out demo --accounts 500 --years 3

  csforecast validate --data demo

  csforecast train --data demo && csforecast score --data demo

  csforecast serve   # then open http://127.0.0.1:8000/ (dashboard at /ui/, API docs at /docs)

Every command has its own examples: csforecast COMMAND --help"""

COMMANDS: dict[str, list[str]] = {
    "simulate": ["csforecast simulate --out demo --accounts 500 --years 3 --seed 7",
                 "csforecast simulate --out demo-csv --accounts 200 --years 2 --format csv"],
    "validate": ["csforecast validate --data demo",
                 "csforecast validate --data warehouse.duckdb --json > problems.json"],
    "features": ["csforecast features --data demo --as-of 2026-01-01 --out snapshot.parquet",
                 "csforecast features --data demo --as-of 2026-01-01 --out snapshot.csv --no-labels"],
    "train": ["csforecast train --data demo",
              "csforecast train --data demo --family churn --as-of 2026-01-01 --json"],
    "demo": ["csforecast demo   # 2,000 accounts x 3 years, served on 127.0.0.1:8000",
             "csforecast demo --accounts 300 --years 2 --no-serve   # quick; serve later with csforecast serve"],
    "score": ["csforecast score --data demo",
              "csforecast score --data demo --as-of 2026-01-01 --json"],
    "monitor": ["csforecast monitor   # after csforecast score has run on a later data export",
                "csforecast monitor --json --top 20"],
    "ledger": ["csforecast ledger", "csforecast ledger --data demo --json"],
    "voc": ["csforecast voc --data demo", "csforecast voc --data demo --group-by segment --window-days 180 --json"],
    "reasons": ["csforecast reasons --data demo", "csforecast reasons --data demo --group-by segment --json"],
    "pipeline": ["csforecast pipeline --data demo", "csforecast pipeline --data demo --json"],
    "metrics": ["csforecast metrics --data demo",
                "csforecast metrics --data demo --period month --group-by segment --json"],
    "forecast": ["csforecast forecast --data demo --start 2026-01-01 --end 2026-04-01",
                 "csforecast forecast --data demo --start 2026-01-01 --end 2026-07-01 --group-by segment,csm_id"],
    "backtest": ["csforecast backtest --data demo --quarters 4 --warmup 2",
                 "csforecast backtest --data demo --json > backtest.json"],
    "serve": ["csforecast serve   # http://127.0.0.1:8000/: dashboard at /ui/, API docs at /docs",
              "csforecast serve --data demo --port 8080 --no-access-log"],
    "apikey": ["csforecast apikey create --scope read --name dashboard",
               "csforecast apikey list", "csforecast apikey revoke 3f2a9c1e77b0"],
    "apikey create": ["csforecast apikey create --scope read --name dashboard",
                      "csforecast apikey create --scope admin --json"],
    "apikey list": ["csforecast apikey list", "csforecast apikey list --json"],
    "apikey revoke": ["csforecast apikey list   # find the id", "csforecast apikey revoke 3f2a9c1e77b0"],
    "experiment": ["csforecast experiment run experiments/health_without_nps.toml --data demo",
                   "csforecast experiment promote RUN_ID --data demo",
                   "csforecast experiment effect --data demo --playbook adoption_workshop"],
    "experiment run": ["csforecast experiment run experiments/health_without_nps.toml --data demo",
                       "csforecast experiment run experiments/churn_lgbm_vs_logistic.toml --data demo --json"],
    "experiment promote": ["csforecast experiment promote RUN_ID   # the run id `experiment run` printed",
                           "csforecast experiment promote RUN_ID --data demo --json"],
    "experiment effect": ["csforecast experiment effect --data demo --playbook adoption_workshop",
                          "csforecast experiment effect --data demo --playbook exec_rescue --bootstrap 200 --json"],
}


def epilog(lines: list[str]) -> str:
    """An epilog of example commands, one per line (typer prints each paragraph on its own line)."""
    return "Examples:\n\n" + "\n\n".join(f"  {x}" for x in lines)


def _name(info) -> str:
    return info.name or info.callback.__name__.replace("_", "-")


def add_examples(app: typer.Typer, prefix: str = "") -> None:
    """Give every command of ``app`` (and of its sub-apps) its examples from :data:`COMMANDS` as help epilog
    (a command's own epilog wins). A command missing from :data:`COMMANDS` keeps working without examples;
    tests/test_cli_help.py fails for it, so a new command does not ship without them."""
    for cmd in app.registered_commands:
        lines = COMMANDS.get(f"{prefix}{_name(cmd)}")
        if lines:
            cmd.epilog = cmd.epilog or epilog(lines)
    for group in app.registered_groups:
        name = f"{prefix}{group.name}"
        if COMMANDS.get(name):
            group.epilog = group.epilog or epilog(COMMANDS[name])
        add_examples(group.typer_instance, f"{name} ")
