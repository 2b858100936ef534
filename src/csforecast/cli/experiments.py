"""`csforecast experiment run | promote | effect`: compare model variants from a spec file, promote one, and
estimate what a CS playbook did. docs/analyst-walkthrough.md walks through all three."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from csforecast.cli.common import QuietOpt, console, fail, open_valid, oracle_of, out, print_json, progress

experiment_app = typer.Typer(help="Experiments: compare variants (run), register one (promote), playbook effects "
                                  "(effect).", no_args_is_help=True, add_completion=False)


def _resolve_data(data: str | None, spec_data: str | None, spec_path: Path) -> str | None:
    if data:
        return data
    if not spec_data:
        return None
    p = Path(spec_data)
    if "://" not in spec_data and not p.is_absolute() and (spec_path.parent / p).exists():
        return str(spec_path.parent / p)
    return spec_data


@experiment_app.command("run")
def run_cmd(spec: Path = typer.Argument(..., help="Experiment spec (TOML), e.g. experiments/churn_lgbm_vs_logistic.toml"),
            data: Optional[str] = typer.Option(None, "--data", help="Data source; overrides the spec's `data`."),
            as_json: bool = typer.Option(False, "--json", help="Print one JSON document on stdout."),
            quiet: bool = QuietOpt):
    """Train every variant of a spec on the same snapshots and split (child runs under one MLflow parent run),
    then compare them with the baseline: metric, difference and its bootstrap 95 % CI. Nothing is registered."""
    from csforecast.experiments.runner import ExperimentError, run_experiment
    from csforecast.experiments.spec import SpecError, load_spec

    try:
        s, text = load_spec(spec)
    except SpecError as e:
        fail(str(e))
    src_loc = _resolve_data(data, s.data, spec)
    if not src_loc:
        fail(f"no data for experiment {s.name}: pass --data or set `data` in {spec}")
    src = open_valid(src_loc)
    with progress(f"experiment {s.name}", quiet) as tell:
        try:
            report = run_experiment(s, src, spec_text=text, oracle=oracle_of(src), progress=tell)
        except (ExperimentError, ValueError) as e:
            fail(str(e))
    if as_json:
        print_json(report)
    else:
        print_comparison(report, out)
    failed = [v["name"] for v in report["variants"] if v.get("error")]
    if failed:
        for v in report["variants"]:
            if v.get("error"):
                console.print(f"variant {v['name']} failed: {v['error']}", style="red", markup=False,
                              highlight=False)
        raise typer.Exit(1)


def print_comparison(report: dict, out) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    if not out.is_terminal:      # piped or captured: do not squeeze the table into 80 columns
        out = Console(width=max(out.width, 60 + 24 * len(report["variants"])), soft_wrap=True)

    from csforecast.experiments.runner import format_cell

    keys, hib = report["metric_keys"], report["higher_is_better"]
    t = Table(title=f"Experiment {report['experiment']} ({report['family']}): difference to baseline "
                    f"{report['baseline']} with 95 % bootstrap CI", show_lines=True)
    t.add_column("metric", overflow="fold")
    for v in report["variants"]:
        t.add_column(v["name"] + (" (baseline)" if v["baseline"] else ""), justify="right", overflow="fold")
    oracle = next((v.get("oracle") for v in report["variants"] if v.get("oracle")), None) or report.get("oracle")
    if oracle:
        t.add_column("oracle (truth)", justify="right", overflow="fold")
    for k in keys:
        cells = [k + ("" if hib.get(k) is None else (" ↑" if hib[k] else " ↓"))]
        for v in report["variants"]:
            s = format_cell(v, k)
            ci = v["ci"].get(k) or [None, None]
            style = None
            if not v["baseline"] and ci[0] is not None and hib.get(k) is not None and (ci[0] > 0 or ci[1] < 0):
                better = (ci[0] > 0) == bool(hib[k])
                style = "green" if better else "red"
            cells.append(Text(s, style=style or ""))
        if oracle:
            o = oracle.get(k)
            cells.append(f"{o:.4f}" if isinstance(o, (int, float)) and not isinstance(o, bool) else "–")
        t.add_row(*cells)
    out.print(t)
    unit = "quarter × segment rows" if report["family"] == "forecast" else "rows"
    out.print(f"validation: {report['validation_rows']} {unit}"
              + (f" of {report['validation_accounts']} accounts" if report.get("validation_accounts") else "")
              + f", {report['validation_start']} to {report['as_of']}; CI: {report['bootstrap']['resamples']} "
                f"resamples by {report['bootstrap']['cluster']}. Green/red: the CI excludes 0 (better/worse).",
              highlight=False, markup=False)
    out.print(f"MLflow parent run {report['parent_run_id']} (family {report['family']}); variants:", highlight=False,
              markup=False)
    for v in report["variants"]:
        out.print(f"  {v['name']}: run {v.get('run_id') or '–'}" + (f"  FAILED: {v['error']}" if v.get("error") else ""),
                  highlight=False, markup=False)
    if report["family"] != "forecast":
        out.print("promote one with: csforecast experiment promote RUN_ID", highlight=False, markup=False)


@experiment_app.command("promote")
def promote_cmd(run_id: str = typer.Argument(..., help="The variant's MLflow run id (see `experiment run`)."),
                data: Optional[str] = typer.Option(None, "--data", help="Data source (default: the one recorded by "
                                                                         "the experiment's parent run)."),
                as_json: bool = typer.Option(False, "--json", help="Print one JSON document on stdout.")):
    """Register a variant's model; it becomes champion only if it beats the current champion on the run's own
    validation rows (same data, same as-of date)."""
    from csforecast.experiments.runner import PromoteError, promote, promotion_info

    try:
        info = promotion_info(run_id)
    except PromoteError as e:
        fail(str(e))
    src_loc = data or info.get("data")
    if not src_loc:
        fail(f"run {run_id} does not record its data source: pass --data")
    src = open_valid(src_loc)
    try:
        res = promote(run_id, src, info, progress=lambda m: console.print(m, style="dim", markup=False,
                                                                           highlight=False))
    except PromoteError as e:
        fail(str(e))
    if as_json:
        print_json(res)
        return
    sc = res["scores"]
    out.print(f"registered {res['family']} version {res['version']} from run {run_id} → {res['alias']}",
              highlight=False, markup=False)
    out.print(f"validation {sc['metric']}: variant {sc['candidate']}, champion "
              f"{sc['champion'] if sc['champion'] is not None else '– (none)'} on {sc['validation_rows']} rows",
              highlight=False, markup=False)
    out.print(f"guard: {res['guard']}", highlight=False, markup=False)


@experiment_app.command("effect")
def effect_cmd(data: str = typer.Option(..., "--data", help="Data source with an interventions table."),
               playbook: str = typer.Option(..., "--playbook", help="Playbook name in the interventions table."),
               window_days: int = typer.Option(90, "--window-days", min=14, max=365,
                                               help="Usage window before and after assignment."),
               metric: str = typer.Option("seat_utilisation", "--metric",
                                          help="Usage outcome: seat_utilisation or a metric of the usage table."),
               renewal_lag_days: int = typer.Option(0, "--renewal-lag-days", min=0, max=365,
                                                    help="Only count renewals at least this many days after "
                                                         "assignment (e.g. your notice period)."),
               weighting: str = typer.Option("att", "--weighting", help="Non-randomised: att, ate or overlap."),
               bootstrap: int = typer.Option(200, "--bootstrap", min=0, max=5000,
                                             help="Non-randomised: bootstrap resamples for the CIs."),
               seed: int = typer.Option(0, "--seed"),
               as_json: bool = typer.Option(False, "--json", help="Print one JSON document on stdout.")):
    """Effect of a playbook on renewal, usage and time to churn: randomised comparison when the playbook has
    treatment and control arms, else a propensity-weighted estimate beside the naive one (with assumptions)."""
    from csforecast.experiments.effects import EffectError, playbook_effect

    src = open_valid(data)
    try:
        with console.status("estimating"):
            res = playbook_effect(src, playbook, window_days=window_days, usage_metric=metric,
                                  renewal_lag_days=renewal_lag_days, weighting=weighting, n_boot=bootstrap,
                                  seed=seed, oracle=oracle_of(src))
    except EffectError as e:
        fail(str(e))
    if as_json:
        print_json(res)
        return
    print_effect(res, out)


def _fmt(x, pct=False, nd=3):
    if x is None:
        return "–"
    return f"{100 * x:+.1f} pp" if pct else f"{x:+.{nd}f}"


def _ci(ci, pct=False, nd=3):
    if not ci or ci[0] is None:
        return "–"
    return f"[{_fmt(ci[0], pct, nd)}, {_fmt(ci[1], pct, nd)}]"


def print_effect(res: dict, out) -> None:
    from rich.console import Console
    from rich.table import Table

    if not out.is_terminal:
        out = Console(width=max(out.width, 150), soft_wrap=True)

    kind = "randomised (treatment vs control)" if res["randomised"] else "NOT randomised (observational)"
    out.print(f"Playbook {res['playbook']}: {kind}; {res['n_treated']} treated, {res['n_control']} comparison "
              f"({res['comparison']})", highlight=False, markup=False)
    t = Table(title="Effect estimates (treated minus comparison)", show_lines=True)
    for c in ("outcome", "estimate", "treated", "comparison", "difference", "95 % CI", "n (T / C)"):
        t.add_column(c, justify="left" if c in ("outcome", "estimate") else "right")
    r, u, tc = res["renewal_rate"], res["usage"], res["time_to_churn"]
    main = "randomised" if res["randomised"] else f"weighted ({res['settings']['weighting']})"

    def rate(x):
        return "–" if x is None else f"{100 * x:.1f} %"

    t.add_row("renewal rate at first renewal", main, rate(r["treated"]), rate(r["control"]),
              _fmt(r["difference"], True), _ci(r["ci"], True), f"{r['n_treated']} / {r['n_control']}")
    if not res["randomised"]:
        for key, label in (("doubly_robust", "doubly robust"), ("overlap_weighted", "overlap weights")):
            b = r.get(key) or {}
            t.add_row("", label, "", "", _fmt(b.get("difference"), True), _ci(b.get("ci"), True), "")
        n = res["naive"]["renewal_rate"]
        t.add_row("", "naive (unweighted)", rate(n["treated"]), rate(n["control"]), _fmt(n["difference"], True),
                  _ci(n["ci"], True), f"{n['n_treated']} / {n['n_control']}")
    t.add_row(f"{u['metric']} change ({u['window_days']}d after − before)", main, _fmt(u["treated"], nd=4),
              _fmt(u["control"], nd=4), _fmt(u["difference"], nd=4), _ci(u["ci"], nd=4),
              f"{u['n_treated']} / {u['n_control']}")
    if not res["randomised"]:
        for key, label in (("doubly_robust", "doubly robust"), ("overlap_weighted", "overlap weights")):
            b = u.get(key) or {}
            t.add_row("", label, "", "", _fmt(b.get("difference"), nd=4), _ci(b.get("ci"), nd=4), "")
        n = res["naive"]["usage"]
        t.add_row("", "naive (unweighted)", _fmt(n["treated"], nd=4), _fmt(n["control"], nd=4),
                  _fmt(n["difference"], nd=4), _ci(n["ci"], nd=4), f"{n['n_treated']} / {n['n_control']}")
    hr = tc.get("hazard_ratio")
    t.add_row("time to churn: hazard ratio", main + " Cox", rate(tc.get("retained_365d_treated")) + " kept 1y",
              rate(tc.get("retained_365d_control")) + " kept 1y", "–" if hr is None else f"HR {hr:.2f}",
              "–" if not tc.get("ci") or tc["ci"][0] is None else f"[{tc['ci'][0]:.2f}, {tc['ci'][1]:.2f}]",
              f"{tc['n_treated']} / {tc['n_control']}")
    if res["randomised"]:
        t.add_row("", "log-rank test", "", "", f"p = {tc['logrank_p_value']:.3g}", "", "")
    else:
        n = res["naive"]["time_to_churn"]
        t.add_row("", "naive Cox", "", "", "–" if n["hazard_ratio"] is None else f"HR {n['hazard_ratio']:.2f}",
                  "–" if n["ci"][0] is None else f"[{n['ci'][0]:.2f}, {n['ci'][1]:.2f}]", "")
    out.print(t)
    tr = res.get("truth")
    if tr:
        rr, ud = tr.get("renewal_rate_difference") or {}, tr.get("usage_difference") or {}
        tgt = tr["compared_with"]
        cov = tr.get("ci_covers_truth") or {}

        def yn(k):
            return "–" if k not in cov else ("yes" if cov[k] else "NO")
        out.print(f"Truth (simulator; {tr['estimand']}): renewal rate {_fmt(rr.get(tgt), True)} (CI covers it: "
                  f"{yn('renewal_rate')}), {ud.get('metric', 'usage')} {_fmt(ud.get(tgt), nd=4)} (CI covers it: "
                  f"{yn('usage')})", highlight=False, markup=False)
        if "renewal_rate_naive_error" in cov:
            out.print(f"  error vs truth, renewal rate: weighted {_fmt(cov.get('renewal_rate_error'), True)}, doubly "
                      f"robust {_fmt(cov.get('renewal_rate_doubly_robust_error'), True)}, naive "
                      f"{_fmt(cov.get('renewal_rate_naive_error'), True)}", highlight=False, markup=False)
    if not res["randomised"]:
        d = res["diagnostics"]
        out.print(f"Diagnostics: propensity treated {d['propensity_treated']}, comparison {d['propensity_control']}; "
                  f"effective comparison n {d['effective_control_n']} of {d['control_n']}; max |SMD| "
                  f"{d['max_abs_smd_before']} before → {d['max_abs_smd_after']} after weighting",
                  highlight=False, markup=False)
    out.print("Assumptions:", highlight=False, markup=False)
    for a in res["assumptions"]:
        out.print(f"  - {a}", highlight=False, markup=False)
    for n in res.get("notes", []):
        out.print(f"note: {n}", style="yellow", highlight=False, markup=False)
