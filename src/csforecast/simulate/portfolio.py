"""Portfolio simulator with ground truth.

A latent daily health drives everything a CS team can see (usage, tickets, surveys, touches) and the
churn decision at each renewal. `truth/` records the latent health and the true probabilities, so every
model can be measured against the best possible. Nothing in training or scoring reads `truth/`.

Generative story (health is on a logit-like scale, about N(0, 1) across accounts):
  h(d) = mu(d) + x(d);  x(d) = phi * x(d-1) + sigma * eps + transient shocks (AR(1), mean-reverting);
  mu(d) is the account's long-run level; it jumps when a champion leaves and when a playbook works.
  At each renewal (end_date E) the decision uses h(E - NOTICE_DAYS):
  P(churn) = p_unavoidable + (1 - p_unavoidable) * sigmoid(base_logit + B_HEALTH * h(E - NOTICE_DAYS)).
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

DEFAULT_END = date(2026, 10, 1)  # data runs through 2026-09-30; fixed so output is a function of the seed only
SEGMENTS = ("Enterprise", "Mid-Market", "SMB")
SEGMENT_SHARE = (0.15, 0.35, 0.50)
INDUSTRIES = ("Software", "Healthcare", "Financial Services", "Retail", "Manufacturing", "Education", "Media")
REGIONS = ("North America", "EMEA", "APAC", "LATAM")
REGION_SHARE = (0.45, 0.30, 0.15, 0.10)
AVOIDABLE_REASONS = ("budget", "low_adoption", "product_gap", "competitor", "champion_left")
UNAVOIDABLE_REASONS = ("acquired", "bankrupt")


@dataclass(frozen=True)
class Params:
    """Every number of the generative process; written to truth/params.json."""
    phi: float = float(np.exp(-1 / 45))       # daily persistence of the transient part of health
    sd_x: float = 0.35                         # stationary sd of the transient part
    mu_segment: dict = field(default_factory=lambda: {"Enterprise": 0.3, "Mid-Market": 0.1, "SMB": -0.1})
    sd_mu: float = 0.75
    onboarding_x: float = -0.6                 # new customers start below their level and ramp up
    champion_left_rate: float = 0.20           # per account-year
    champion_left_transient: float = -0.7
    champion_left_permanent: float = -0.35
    sponsor_changed_rate: float = 0.15
    sponsor_changed_transient: float = -0.3
    incident_rate: float = 0.40
    incident_transient: float = -0.5
    notice_days: int = 60
    b0: float = -2.6
    b_health: float = -1.6
    b_segment: dict = field(default_factory=lambda: {"Enterprise": -0.5, "Mid-Market": 0.0, "SMB": 0.45})
    b_first_renewal: float = 0.45
    b_auto_renew: float = -0.3
    p_unavoidable: float = 0.016
    playbook_effect_mu: float = 0.45           # adoption_workshop (randomised) shifts mu by this
    rescue_effect_mu: float = 0.25             # exec_rescue (given to the unhealthiest) shifts mu by this
    # ARR change at renewal: seats x exp(seat_change_health * h + N(seat_change_mean, seat_change_sd^2)),
    # rounded (at least 1); the price per seat rises by price_uplift at every renewal
    seat_change_health: float = 0.12
    seat_change_mean: float = 0.02
    seat_change_sd: float = 0.08
    price_uplift: float = 0.03
    # mid-term add-on (terms of a year or more): one chance per term, on a day drawn uniformly in
    # [start + 90, end - 60), taken with P = sigmoid(addon_b0 + addon_b_health * h(day)); it adds
    # max(1, round(seats x U(addon_share_low, addon_share_high))) seats, co-termed with the main contract
    addon_b0: float = -2.2
    addon_b_health: float = 1.2
    addon_share_low: float = 0.1
    addon_share_high: float = 0.3
    # drift (off by default): renewal decisions dated on or after churn_shift_at (a fraction of the data
    # window) get churn_shift added to their churn logit
    churn_shift: float = 0.0
    churn_shift_at: float = 0.5


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


@dataclass
class Portfolio:
    tables: dict[str, pd.DataFrame]
    truth: dict[str, pd.DataFrame]
    truth_meta: dict

    def write(self, out: Path, fmt: str = "parquet") -> None:
        out = Path(out)
        (out / "truth").mkdir(parents=True, exist_ok=True)
        for name, df in self.tables.items():
            if fmt == "csv":
                df.to_csv(out / f"{name}.csv", index=False)
            else:
                df.to_parquet(out / f"{name}.parquet", index=False)
        for name, df in self.truth.items():
            df.to_parquet(out / "truth" / f"{name}.parquet", index=False)
        (out / "truth" / "params.json").write_text(json.dumps(self.truth_meta, indent=2, default=str))


def simulate_portfolio(n_accounts: int = 2000, years: int = 3, seed: int = 0, end: date = DEFAULT_END,
                       params: Params | None = None, progress=None) -> Portfolio:
    """Simulate `n_accounts` accounts whose observed data covers the last `years` years before `end`."""
    p = params or Params()
    rng = np.random.default_rng(seed)
    tick = progress or (lambda *_: None)
    end64 = np.datetime64(end, "D")
    window_start = end64 - np.timedelta64(365 * years, "D")
    origin = window_start - np.timedelta64(3 * 365, "D")  # pre-history: contracts before the data window
    n_days = int((end64 - origin).astype(int))
    w0 = int((window_start - origin).astype(int))
    N = n_accounts

    # --- accounts -------------------------------------------------------------------------------------
    seg = rng.choice(3, size=N, p=SEGMENT_SHARE)
    existing = rng.random(N) < 0.55
    created = np.where(existing, rng.integers(0, w0 - 30, N), rng.integers(w0, n_days - 45, N))
    n_csm = max(3, N // 70)
    assigned = (seg < 2) | (rng.random(N) < 0.5)
    csm = np.where(assigned, rng.integers(1, n_csm + 1, N), 0)
    accounts = pd.DataFrame({
        "account_id": [f"A{i:05d}" for i in range(1, N + 1)],
        "name": _names(rng, N),
        "segment": np.array(SEGMENTS)[seg],
        "industry": rng.choice(INDUSTRIES, N),
        "region": rng.choice(REGIONS, N, p=REGION_SHARE),
        "csm_id": pd.array([f"CSM-{c:03d}" if c else None for c in csm], dtype="string"),
        "created_at": origin + created.astype("timedelta64[D]"),
    })
    tick("accounts")

    # --- latent health: mu(d) + x(d) --------------------------------------------------------------------
    mu0 = np.array([p.mu_segment[s] for s in SEGMENTS])[seg] + rng.normal(0, p.sd_mu, N)
    sigma = p.sd_x * np.sqrt(1 - p.phi ** 2)
    days = np.arange(n_days)
    alive_days = days[None, :] >= created[:, None]
    inputs = sigma * rng.standard_normal((N, n_days)).astype(np.float64)
    inputs[np.arange(N), created] += p.onboarding_x + rng.normal(0, p.sd_x, N)
    mu_jump = np.zeros((N, n_days))
    events = []  # (account index, day, kind)
    for kind, rate, transient, permanent in (
            ("champion_left", p.champion_left_rate, p.champion_left_transient, p.champion_left_permanent),
            ("sponsor_changed", p.sponsor_changed_rate, p.sponsor_changed_transient, 0.0),
            ("incident", p.incident_rate, p.incident_transient, 0.0)):
        hits = (rng.random((N, n_days)) < rate / 365) & alive_days
        ai, di = np.nonzero(hits)
        inputs[ai, di] += transient
        if permanent:
            mu_jump[ai, di] += permanent
        events += [(a, d, kind) for a, d in zip(ai, di)]
    from scipy.signal import lfilter  # imported here: seconds to import, and every CLI command imports this module

    # playbooks: a randomised 50/50 adoption workshop, and an exec rescue given to the unhealthiest
    x = lfilter([1.0], [1.0, -p.phi], np.where(alive_days, inputs, 0.0), axis=1)
    mu = mu0[:, None] + np.cumsum(mu_jump, axis=1)
    h_untreated = mu + x
    # who is a customer on a playbook's assignment day: the contract path before any treatment exists
    # (each account's contract draws come from its own stream, so this dry run agrees with the real one
    # up to the assignment day)
    shift_day = w0 + int(p.churn_shift_at * (n_days - w0))
    active_untreated = _contracts(seed, p, accounts, seg, created, h_untreated, origin, n_days, shift_day)[3]
    interventions, playbook_truth = _assign_playbooks(rng, p, accounts, created, h_untreated, w0, n_days, mu_jump,
                                                      active_untreated)
    mu = mu0[:, None] + np.cumsum(mu_jump, axis=1)
    h = mu + x
    tick("latent health")

    # --- contracts: renewal decisions on the health path -----------------------------------------------
    contracts, renewals_truth, seats_daily, active, terms_truth = _contracts(seed, p, accounts, seg, created, h,
                                                                           origin, n_days, shift_day)
    tick("contracts")

    # --- observables inside the data window ---------------------------------------------------------------
    win = slice(w0, n_days)
    hw, act, seats_w = h[:, win], active[:, win], seats_daily[:, win]
    dates = origin + np.arange(w0, n_days).astype("timedelta64[D]")
    weekday = ((dates.astype("datetime64[D]").astype(int) + 3) % 7) < 5  # 1970-01-01 was a Thursday
    tenure = (np.arange(w0, n_days)[None, :] - created[:, None]).clip(0)
    util = _sigmoid(0.2 + 1.1 * hw) * (1 - 0.5 * np.exp(-tenure / 45))
    wf = np.where(weekday, 1.0, 0.35)[None, :]
    active_users = rng.binomial(seats_w.astype(np.int64), np.clip(util * wf, 0, 1))
    logins = rng.poisson(active_users * 2.2)
    ai, di = np.nonzero(act)
    acc_ids = accounts["account_id"].to_numpy()
    usage_parts = [pd.DataFrame({"account_id": acc_ids[ai], "date": dates[di], "metric": "active_users",
                                 "value": active_users[ai, di].astype(float)}),
                   pd.DataFrame({"account_id": acc_ids[ai], "date": dates[di], "metric": "logins",
                                 "value": logins[ai, di].astype(float)})]
    monday = ((dates.astype(int) + 3) % 7) == 0
    mi, md = np.nonzero(act & monday[None, :])
    kf = rng.binomial(10, _sigmoid(-0.3 + 1.0 * hw[mi, md]))
    usage_parts.append(pd.DataFrame({"account_id": acc_ids[mi], "date": dates[md], "metric": "key_features_used",
                                     "value": kf.astype(float)}))
    usage = pd.concat(usage_parts, ignore_index=True).sort_values(["date", "account_id", "metric"],
                                                                  ignore_index=True)
    tick("usage")

    incident = np.zeros((N, n_days), dtype=bool)
    for a, d, kind in events:
        if kind == "incident":
            incident[a, d:d + 10] = True
    inc_w = incident[:, win]
    tickets = _tickets(rng, hw, act, seats_w, inc_w, acc_ids, dates, end64)
    surveys, nps_truth = _surveys(rng, h, act, acc_ids, dates, w0)
    touches = _touches(rng, hw, act, seg, accounts["csm_id"].to_numpy(dtype=object), acc_ids, dates)
    stake = pd.DataFrame([(acc_ids[a], origin + np.timedelta64(d, "D"), k) for a, d, k in events
                          if k != "incident" and d >= w0 and active[a, d]],
                         columns=["account_id", "date", "kind"]).sort_values(["date", "account_id"],
                                                                             ignore_index=True)
    tick("tickets, surveys, touches")

    health_daily = pd.DataFrame({"account_id": acc_ids[ai], "date": dates[di],
                                 "health": hw[ai, di].astype(np.float32), "mu": mu[:, win][ai, di].astype(np.float32)})
    meta = {"params": asdict(p), "seed": seed, "n_accounts": N, "years": years,
            "window_start": str(window_start), "data_end": str(end64), "playbooks": playbook_truth}
    tables = {"accounts": accounts, "contracts": contracts, "usage": usage, "tickets": tickets,
              "surveys": surveys, "touches": touches, "stakeholder_events": stake}
    if len(interventions):
        tables["interventions"] = interventions
    # issue 17 (voice of the customer, churn reasons, the expansion pipeline): own random streams, so the
    # tables above are the same as without them
    voc_truth = _add_voc_tables(seed, tables, renewals_truth, h, act, seg, acc_ids, dates, w0, nps_truth,
                                terms_truth)
    # the scorecard's optional tables (CSM sentiment, success-plan value reviews): own random streams too
    from csforecast.simulate.scorecard import simulate_scorecard_tables

    tables.update(simulate_scorecard_tables(seed, h, act, seg, accounts["csm_id"].to_numpy(dtype=object), acc_ids,
                                            dates, w0))
    meta["churn_shift_date"] = str(origin + np.timedelta64(shift_day, "D")) if p.churn_shift else None
    truth = {"renewals": renewals_truth, "health_daily": health_daily, "terms": terms_truth, **voc_truth}
    _add_calls(seed, p, accounts, contracts, terms_truth, renewals_truth, h, origin, n_days, w0, shift_day,
               tables, truth, meta)
    tick("CSM calls")
    return Portfolio(tables, truth, meta)


def _add_calls(seed, p, accounts, contracts, terms, renewals, h, origin, n_days, w0, shift_day, tables, truth,
               meta) -> None:
    """CSM renewal calls (``simulate/calls.py``, their own random stream: the other tables are unchanged):
    the ``forecast_calls`` table, ``truth/calls`` and each CSM's optimism in the meta."""
    from csforecast.simulate.calls import CallParams, simulate_calls

    calls, calls_truth, optimism = simulate_calls(seed, p, accounts, contracts, terms, renewals, h, origin, n_days,
                                                  w0, shift_day)
    if len(calls):
        tables["forecast_calls"] = calls
        truth["calls"] = calls_truth
    meta["calls"] = {"params": asdict(CallParams()), "csm_optimism": optimism}


def _names(rng, n):
    a = np.array(["Blue", "North", "Bright", "Iron", "Silver", "Rapid", "Clear", "Summit", "Nova", "Atlas",
                  "Cedar", "Harbor", "Vertex", "Pioneer", "Quantum", "Golden"])
    b = np.array(["Logistics", "Health", "Capital", "Foods", "Labs", "Systems", "Media", "Retail", "Energy",
                  "Robotics", "Analytics", "Works", "Partners", "Networks"])
    c = np.array(["Inc", "LLC", "GmbH", "Ltd", "Co", "Group", "SA"])
    return [f"{x} {y} {z}" for x, y, z in zip(rng.choice(a, n), rng.choice(b, n), rng.choice(c, n))]


def _assign_playbooks(rng, p, accounts, created, h, w0, n_days, mu_jump, active):
    """Randomised adoption_workshop (50/50) and a non-randomised exec_rescue for the unhealthiest."""
    N = len(accounts)
    rows, truth = [], {}
    d_rand = w0 + int(0.35 * (n_days - w0))
    eligible = np.nonzero((created < d_rand - 60) & active[:, d_rand])[0]
    enrolled = rng.choice(eligible, size=int(0.3 * len(eligible)), replace=False) if len(eligible) else []
    arm = rng.random(len(enrolled)) < 0.5
    for a, t in zip(enrolled, arm):
        day = d_rand + int(rng.integers(0, 30))
        rows.append((a, day, "adoption_workshop", "treatment" if t else "control"))
        if t:
            mu_jump[a, day] += p.playbook_effect_mu
    truth["adoption_workshop"] = {"randomised": True, "effect_on_health_mu": p.playbook_effect_mu,
                                  "assigned_day": str(d_rand)}
    d_rescue = w0 + int(0.55 * (n_days - w0))
    alive = np.nonzero((created < d_rescue - 60) & active[:, d_rescue])[0]
    if len(alive):
        worst = alive[np.argsort(h[alive, d_rescue])[: max(1, int(0.12 * len(alive)))]]
        for a in worst:
            rows.append((a, d_rescue, "exec_rescue", "treatment"))
            mu_jump[a, d_rescue] += p.rescue_effect_mu
    truth["exec_rescue"] = {"randomised": False, "effect_on_health_mu": p.rescue_effect_mu,
                            "rule": "given to the 12% unhealthiest accounts that are customers on the day"}
    acc = accounts["account_id"].to_numpy()
    origin = accounts["created_at"].min() - pd.Timedelta(days=int(created.min()))
    df = pd.DataFrame([(acc[a], origin + pd.Timedelta(days=int(d)), pb, arm) for a, d, pb, arm in rows],
                      columns=["account_id", "date", "playbook", "arm"])
    return df, truth


def _contracts(seed, p, accounts, seg, created, h, origin, n_days, shift_day=None):
    """Contract streams on the health path. Returns (contracts, renewals truth, seats per day, active per day,
    terms truth). Each account draws from its own stream, so recording truth never changes the data."""
    N = len(accounts)
    rng = np.random.default_rng([seed, 101])
    price = np.array([1000.0, 700.0, 400.0])[seg] * rng.lognormal(0, 0.15, N)
    seats0 = np.maximum(1, np.round(rng.lognormal(np.array([6.0, 4.2, 2.8])[seg], 0.5)))
    auto = rng.random(N) < np.array([0.2, 0.4, 0.7])[seg]
    seats_daily = np.zeros((N, n_days + 1), dtype=np.int64)
    active = np.zeros((N, n_days + 1), dtype=np.int64)
    rows, truth, terms = [], [], []
    cid = 0
    ids = accounts["account_id"].to_numpy()
    seg_names = np.array(SEGMENTS)[seg]
    shift_day = n_days if shift_day is None else shift_day

    def day(d):
        return origin + np.timedelta64(int(d), "D")

    for a in range(N):
        rng = np.random.default_rng([seed, 102, a])
        start, seats, renewals = int(created[a]), float(seats0[a]), 0
        term = 365
        if seg[a] == 0 and rng.random() < 0.3:
            term = int(rng.choice([730, 1095]))
        while start < n_days:
            end = start + term
            cid += 1
            main_id = f"C{cid:06d}"
            arr = round(seats * price[a], 2)
            group = [[main_id, ids[a], day(start), day(end), arr, seats, bool(auto[a]), None, None]]
            seats_daily[a, start:min(end, n_days)] += int(seats)
            active[a, start:min(end, n_days)] = 1
            total_seats = seats
            term_row = {"contract_id": main_id, "account_id": ids[a], "start_date": day(start), "end_date": day(end),
                        "seats": seats, "price": float(price[a]), "addon_window_start": pd.NaT,
                        "addon_window_end": pd.NaT, "addon_date": pd.NaT, "addon_p": np.nan, "addon_taken": False,
                        "addon_seats": 0.0, "addon_arr": 0.0, "addon_contract_id": None}
            # mid-term add-on, co-termed with the main contract
            if term >= 365:
                d_add = start + int(rng.integers(90, term - 60))
                term_row.update(addon_window_start=day(start + 90), addon_window_end=day(end - 60))
                if d_add < n_days:
                    p_add = _sigmoid(p.addon_b0 + p.addon_b_health * h[a, min(d_add, n_days - 1)])
                    term_row.update(addon_date=day(d_add), addon_p=float(p_add))
                    if rng.random() < p_add:
                        extra = max(1.0, round(seats * rng.uniform(p.addon_share_low, p.addon_share_high)))
                        cid += 1
                        add_arr = round(extra * price[a], 2)
                        group.append([f"C{cid:06d}", ids[a], day(d_add), day(end), add_arr, extra,
                                      bool(auto[a]), None, None])
                        seats_daily[a, d_add:min(end, n_days)] += int(extra)
                        total_seats += extra
                        term_row.update(addon_taken=True, addon_seats=float(extra), addon_arr=float(add_arr),
                                        addon_contract_id=f"C{cid:06d}")
            terms.append(term_row)
            if end >= n_days:  # due on or after the data end: outcome unknown (a successor would be cut off)
                rows += group
                break
            dd = end - p.notice_days
            hd = h[a, dd]
            shift = p.churn_shift if dd >= shift_day else 0.0
            base = (p.b0 + p.b_segment[seg_names[a]] + p.b_first_renewal * (renewals == 0) + p.b_auto_renew * auto[a]
                    + shift)
            p_avoid = _sigmoid(base + p.b_health * hd)
            p_churn = p.p_unavoidable + (1 - p.p_unavoidable) * p_avoid
            u = rng.random()
            unavoidable = u < p.p_unavoidable
            churned = u < p_churn
            due_arr = float(sum(g[4] for g in group))
            record = [main_id, ids[a], day(end), day(dd), float(hd), float(base), float(p_churn), bool(churned),
                      bool(unavoidable), renewals, due_arr, float(total_seats), float(price[a]), np.nan, np.nan,
                      float(shift)]
            if churned:
                truth.append(record)
                reason = (rng.choice(UNAVOIDABLE_REASONS) if unavoidable else
                          _avoidable_reason(rng, hd, h[a, max(0, dd - 180):dd + 1]))
                for g in group:
                    g[8] = str(reason)
                rows += group
                break
            new_seats = max(1.0, round(total_seats * np.exp(p.seat_change_health * hd
                                                            + rng.normal(p.seat_change_mean, p.seat_change_sd))))
            price[a] *= 1 + p.price_uplift
            record[13], record[14] = round(new_seats * price[a], 2), float(new_seats)
            truth.append(record)
            for g in group:
                g[7] = f"C{cid + 1:06d}"
            rows += group
            start, seats, renewals = end, new_seats, renewals + 1
    contracts = pd.DataFrame(rows, columns=["contract_id", "account_id", "start_date", "end_date", "arr", "seats",
                                            "auto_renew", "renewed_by", "churn_reason"])
    contracts["renewed_by"] = contracts["renewed_by"].astype("string")
    contracts["churn_reason"] = contracts["churn_reason"].astype("string")
    renewals_truth = pd.DataFrame(truth, columns=["contract_id", "account_id", "end_date", "decision_date",
                                                  "health_at_decision", "base_logit", "p_churn", "churned",
                                                  "unavoidable", "renewals_before", "due_arr", "due_seats",
                                                  "price_due", "successor_arr", "successor_seats", "churn_shift"])
    terms_truth = pd.DataFrame(terms, columns=["contract_id", "account_id", "start_date", "end_date", "seats",
                                               "price", "addon_window_start", "addon_window_end", "addon_date",
                                               "addon_p", "addon_taken", "addon_seats", "addon_arr",
                                               "addon_contract_id"])
    return contracts, renewals_truth, seats_daily[:, :n_days], active[:, :n_days].astype(bool), terms_truth


def _avoidable_reason(rng, hd, recent):
    if hd < -1.0:
        return rng.choice(["low_adoption", "product_gap", "competitor"], p=[0.5, 0.3, 0.2])
    if len(recent) and recent.max() - hd > 1.0:
        return "champion_left"
    return rng.choice(["budget", "competitor", "product_gap", "low_adoption"], p=[0.4, 0.25, 0.2, 0.15])


def _tickets(rng, hw, act, seats, inc, acc_ids, dates, end64):
    # ticket volume is mostly a habit of the account (and its size), only partly pain
    habit = rng.lognormal(0, 0.7, hw.shape[0])[:, None]
    lam = (0.01 + 0.0025 * np.power(seats, 0.6)) * habit * np.exp(-0.3 * hw) * np.where(inc, 4.0, 1.0)
    n = rng.poisson(np.where(act, lam, 0.0))
    ai, di = np.nonzero(n)
    reps = n[ai, di]
    ai, di = np.repeat(ai, reps), np.repeat(di, reps)
    hh, ii = hw[ai, di], inc[ai, di]
    m = len(ai)
    p1 = _sigmoid(-3.2 - 0.8 * hh + 2.0 * ii)
    p2 = _sigmoid(-1.6 - 0.4 * hh)
    u = rng.random(m)
    prio = np.where(u < p1, "P1", np.where(u < p1 + (1 - p1) * p2, "P2", np.where(rng.random(m) < 0.5, "P3", "P4")))
    res_days = np.round(rng.lognormal(np.where(prio == "P1", 0.3, 1.2) - 0.2 * hh, 0.6), 1)
    opened = dates[di]
    closed = opened + (res_days * 24).astype("timedelta64[h]")
    still_open = closed >= end64
    csat = np.clip(np.round(4.0 + 0.35 * hh - 0.06 * res_days + rng.normal(0, 0.8, m)), 1, 5)
    csat = np.where((rng.random(m) < 0.55) | still_open, np.nan, csat)
    df = pd.DataFrame({"ticket_id": [f"T{i:07d}" for i in range(1, m + 1)], "account_id": acc_ids[ai],
                       "opened_at": opened, "closed_at": pd.Series(closed).where(~still_open),
                       "priority": prio, "csat": csat})
    df = df.sort_values(["opened_at", "account_id"], ignore_index=True)
    df["ticket_id"] = [f"T{i:07d}" for i in range(1, m + 1)]
    return df


def _surveys(rng, h, act, acc_ids, dates, w0):
    N, W = act.shape
    phase = rng.integers(0, 180, N)
    harshness = rng.normal(0, 1.5, N)  # some respondents rate low whatever the product does
    rows_a, rows_d, kinds, scores, roles = [], [], [], [], []
    inv_a, inv_d, inv_pro, inv_det, inv_resp = [], [], [], [], []
    for k in range(0, W, 1):
        due = ((k + phase) % 182 == 0) & act[:, k]
        if not due.any():
            continue
        idx = np.nonzero(due)[0]
        for _ in range(3):
            answered = rng.random(len(idx)) < 0.45
            resp = idx[answered]
            # truth: each invited contact's P(promoter) and P(detractor) (score = round(m + N(0, 2)))
            m_inv = 7.2 + 0.9 * h[idx, max(0, w0 + k - 90)] + harshness[idx]
            inv_a.append(idx); inv_d.append(np.full(len(idx), k)); inv_resp.append(answered)
            inv_pro.append(1 - _norm_cdf((8.5 - m_inv) / 2.0)); inv_det.append(_norm_cdf((6.5 - m_inv) / 2.0))
            lag = h[resp, max(0, w0 + k - 90)]  # NPS lags health by a quarter and is noisy
            s = np.clip(np.round(7.2 + 0.9 * lag + harshness[resp] + rng.normal(0, 2.0, len(resp))), 0, 10)
            rows_a.append(resp); rows_d.append(np.full(len(resp), k)); kinds.append(np.full(len(resp), "nps"))
            scores.append(s); roles.append(rng.choice(["user", "admin", "executive"], len(resp), p=[.6, .3, .1]))
        due_c = ((k + phase) % 91 == 45) & act[:, k] & (rng.random(N) < 0.3)
        resp = np.nonzero(due_c)[0]
        s = np.clip(np.round(3.9 + 0.7 * h[resp, w0 + k] + rng.normal(0, 0.7, len(resp))), 1, 5)
        rows_a.append(resp); rows_d.append(np.full(len(resp), k)); kinds.append(np.full(len(resp), "csat"))
        scores.append(s); roles.append(np.full(len(resp), "user"))
    a, d = np.concatenate(rows_a), np.concatenate(rows_d)
    role = np.concatenate(roles).astype(object)
    role[rng.random(len(role)) < 0.15] = None
    df = pd.DataFrame({"account_id": acc_ids[a], "responded_at": dates[d], "kind": np.concatenate(kinds),
                       "score": np.concatenate(scores), "respondent_role": role}
                      ).sort_values(["responded_at", "account_id"], ignore_index=True)
    ia = np.concatenate(inv_a) if inv_a else np.zeros(0, dtype=int)
    idd = np.concatenate(inv_d) if inv_d else np.zeros(0, dtype=int)
    truth = pd.DataFrame({"account_id": acc_ids[ia], "invited_at": dates[idd], "kind": "nps",
                          "responded": np.concatenate(inv_resp) if inv_resp else np.zeros(0, bool),
                          "p_promoter": np.concatenate(inv_pro) if inv_pro else np.zeros(0),
                          "p_detractor": np.concatenate(inv_det) if inv_det else np.zeros(0)})
    return df, truth


def _touches(rng, hw, act, seg, csm, acc_ids, dates):
    has_csm = np.array([c is not None and c is not pd.NA for c in csm])
    base = np.where(has_csm, np.array([0.12, 0.06, 0.025])[seg], 0.006)
    rate = base[:, None] * (1.0 + 2.0 * _sigmoid(-3.0 * (hw + 0.3)))  # CSMs spend their time on accounts at risk
    hit = (rng.random(act.shape) < rate) & act
    ai, di = np.nonzero(hit)
    kinds = rng.choice(["email", "call", "meeting", "qbr"], len(ai), p=[0.5, 0.2, 0.24, 0.06])
    kinds = np.where(~has_csm[ai], "email", kinds)
    # executive meetings: roughly quarterly for engaged Enterprise, rarer elsewhere, rarer when unhealthy
    affinity = rng.lognormal(0, 0.8, len(seg))  # executive access is mostly a trait of the account
    ex_rate = (np.where(has_csm, np.array([1 / 80, 1 / 200, 1 / 500])[seg], 0.0) * affinity)[:, None] \
        * np.where(hw > -0.5, 1.0, 0.8)
    ei, ed = np.nonzero((rng.random(act.shape) < ex_rate) & act)
    df = pd.DataFrame({"account_id": acc_ids[np.concatenate([ai, ei])],
                       "date": dates[np.concatenate([di, ed])],
                       "kind": np.concatenate([kinds, np.full(len(ei), "exec_meeting")]),
                       "csm_id": pd.array(csm[np.concatenate([ai, ei])], dtype="string")})
    return df.sort_values(["date", "account_id"], ignore_index=True)


# ------------------------------------------------------------------------------------------------------------
# issue 17: CES surveys, the reasons as reported, the expansion pipeline. Each draws from its own stream
# ([seed, 2xx]), so every table above is the same with or without them.
# ------------------------------------------------------------------------------------------------------------
RESPONDENT_ROLES = ("user", "admin", "executive")
# CES: one invitation per contact per quarter; response rates by role, scaled by segment (enterprise contacts
# answer more, SMB users less); CES = round(5 + 0.8 h + N(0, 1.1)) on 1-7 (7 = very easy)
CES_RESPONSE_RATE = {"user": 0.15, "admin": 0.30, "executive": 0.10}
CES_SEGMENT_FACTOR = {"Enterprise": 1.25, "Mid-Market": 1.0, "SMB": 0.7}
CES_CONTACTS = {"user": 2, "admin": 1, "executive": 1}
REASON_UNREPORTED = 0.08         # share of churned renewals whose reason is not written down (missing)
CONTRACTION_REASON_SHARE = 0.6   # share of contracted renewals with a written reason
# the expansion pipeline: stages in order, the base probability of moving on from each (health shifts it),
# days spent in a stage, and arrival rate of opportunities per account-year
PIPELINE_STAGES = ("emailed", "discussion", "contract_sent", "verbal", "signed")
PIPELINE_ADVANCE = {"emailed": 0.40, "discussion": 0.50, "contract_sent": 0.70, "verbal": 0.90}
PIPELINE_HEALTH = 0.5
OPPORTUNITY_RATE = {"Enterprise": 1.6, "Mid-Market": 0.9, "SMB": 0.35}
OPPORTUNITY_AMOUNT = {"Enterprise": 30_000.0, "Mid-Market": 9_000.0, "SMB": 2_500.0}
# a won opportunity is an add-on contract: days spent in each stage before signing (as the drawn ones), the
# share of add-ons sold as a cross-sell, and the spread of the rep's expected close around the real one
ADDON_CROSS_SELL_SHARE = 0.3
EXPECTED_CLOSE_SD_DAYS = 21


def _norm_cdf(z):
    from scipy.special import ndtr

    return ndtr(z)


def _add_voc_tables(seed, tables, renewals_truth, h, act, seg, acc_ids, dates, w0, nps_truth, terms_truth) -> dict:
    """Add CES responses to `surveys`, write the reported churn and contraction reasons into `contracts`, add
    `opportunities` and `opportunity_history` (every add-on contract signed in the data window is a won
    opportunity; `_won_from_addons`); returns the truth tables (`voc_invitations`, `opportunities`)."""
    ces, ces_truth = _ces_surveys(np.random.default_rng([seed, 201]), h, act, seg, acc_ids, dates, w0)
    tables["surveys"] = pd.concat([tables["surveys"], ces], ignore_index=True).sort_values(
        ["responded_at", "account_id"], kind="stable", ignore_index=True)
    _report_reasons(np.random.default_rng([seed, 202]), tables["contracts"], renewals_truth)
    opps, history, opp_truth = _opportunities(np.random.default_rng([seed, 203]), h, act, seg, acc_ids, dates, w0)
    opps, history, opp_truth = _with_won_addons(np.random.default_rng([seed, 204]), opps, history, opp_truth,
                                                terms_truth, dates)
    if len(opps):
        tables["opportunities"], tables["opportunity_history"] = opps, history
    return {"voc_invitations": pd.concat([nps_truth, ces_truth], ignore_index=True), "opportunities": opp_truth}


def _ces_surveys(rng, h, act, seg, acc_ids, dates, w0):
    """CES responses (quarterly, per contact) and the invitations behind them (truth)."""
    N, W = act.shape
    phase = rng.integers(0, 91, N)
    seg_factor = np.array([CES_SEGMENT_FACTOR[s] for s in SEGMENTS])[seg]
    rows = []
    for k in range(W):
        due = ((k + phase) % 91 == 30) & act[:, k]
        if not due.any():
            continue
        idx = np.nonzero(due)[0]
        m = 5.0 + 0.8 * h[idx, w0 + k]
        for role in RESPONDENT_ROLES:
            for _ in range(CES_CONTACTS[role]):
                p_resp = np.clip(CES_RESPONSE_RATE[role] * seg_factor[idx], 0, 1)
                answered = rng.random(len(idx)) < p_resp
                score = np.clip(np.round(m + rng.normal(0, 1.1, len(idx))), 1, 7)
                rows.append(pd.DataFrame({"a": idx, "k": k, "role": role, "p_resp": p_resp, "answered": answered,
                                          "score": score, "p_good": 1 - _norm_cdf((4.5 - m) / 1.1)}))
    if not rows:
        empty = pd.DataFrame(columns=["account_id", "responded_at", "kind", "score", "respondent_role"])
        return empty, pd.DataFrame()
    inv = pd.concat(rows, ignore_index=True)
    truth = pd.DataFrame({"account_id": acc_ids[inv["a"]], "invited_at": dates[inv["k"]], "kind": "ces",
                          "respondent_role": inv["role"], "p_respond": inv["p_resp"], "responded": inv["answered"],
                          "p_good": inv["p_good"]})
    got = inv[inv["answered"]]
    ces = pd.DataFrame({"account_id": acc_ids[got["a"]], "responded_at": dates[got["k"]], "kind": "ces",
                        "score": got["score"].to_numpy(), "respondent_role": got["role"].to_numpy().astype(object)})
    return ces, truth


def _report_reasons(rng, contracts, renewals_truth):
    """The reasons as a CS team records them: the true churn reason (drawn from the account's state at the
    decision) goes to renewals truth; REASON_UNREPORTED of churned renewals lose it in `contracts`; a share of
    renewals that came back with less ARR get a contraction reason on the renewed contract."""
    reason = contracts.set_index("contract_id")["churn_reason"]
    renewals_truth["reason"] = renewals_truth["contract_id"].map(reason).astype("string")
    churned = contracts["churn_reason"].notna().to_numpy()
    drop = churned & (rng.random(len(contracts)) < REASON_UNREPORTED)
    # the whole renewal (main contract and co-termed add-ons) loses its reason together
    lost_keys = set(zip(contracts.loc[drop, "account_id"], contracts.loc[drop, "end_date"]))
    same = [(a, e) in lost_keys for a, e in zip(contracts["account_id"], contracts["end_date"])]
    contracts.loc[np.asarray(same) & churned, "churn_reason"] = pd.NA
    renewals_truth["reason_reported"] = renewals_truth["contract_id"].map(contracts.set_index("contract_id")[
        "churn_reason"]).astype("string")
    r = renewals_truth
    shrank = (~r["churned"]) & r["successor_arr"].notna() & (r["successor_arr"] < r["due_arr"])
    pick = shrank & (rng.random(len(r)) < CONTRACTION_REASON_SHARE)
    hd = r.loc[pick, "health_at_decision"].to_numpy()
    why = np.where(hd < -0.5, rng.choice(["low_adoption", "product_gap"], len(hd), p=[0.7, 0.3]),
                   rng.choice(["budget", "low_adoption", "consolidation"], len(hd), p=[0.6, 0.2, 0.2]))
    contraction = pd.Series(why, index=r.loc[pick, "contract_id"].to_numpy())
    on = contracts["contract_id"].isin(contraction.index)
    contracts.loc[on, "churn_reason"] = contracts.loc[on, "contract_id"].map(contraction)
    renewals_truth["contraction_reason"] = renewals_truth["contract_id"].map(contraction).astype("string")


def _advance(stage, health):
    """P(an opportunity in `stage` moves on to the next stage) at this health."""
    base = PIPELINE_ADVANCE[stage]
    return _sigmoid(np.log(base / (1 - base)) + PIPELINE_HEALTH * health)


def _opportunities(rng, h, act, seg, acc_ids, dates, w0):
    """Upsell and cross-sell opportunities moving through the stages (a healthier account moves on more
    often), cut at the data end: the open ones in their current stage, the closed ones signed (won) or lost."""
    N, W = act.shape
    rate = np.array([OPPORTUNITY_RATE[s] for s in SEGMENTS])[seg][:, None] / 365 * np.exp(0.3 * h[:, w0:])
    ai, di = np.nonzero((rng.random((N, W)) < rate) & act)
    amount_base = np.array([OPPORTUNITY_AMOUNT[s] for s in SEGMENTS])[seg]
    opp_rows, hist_rows, truth_rows = [], [], []
    for n, (a, d) in enumerate(zip(ai, di), start=1):
        oid = f"O{n:06d}"
        amount = float(np.round(amount_base[a] * rng.lognormal(0, 0.5), -2) or 100.0)
        kind = "upsell" if rng.random() < 0.7 else "cross_sell"
        expected = d + int(rng.integers(45, 150))
        day, stage, closed, won = d, "emailed", None, None
        hist_rows.append((oid, "emailed", dates[d]))
        p_win = float(np.prod([_advance(s, h[a, w0 + d]) for s in PIPELINE_STAGES[:-1]]))
        for s in PIPELINE_STAGES[:-1]:
            p_adv = _advance(s, h[a, w0 + min(day, W - 1)])
            nxt = day + 7 + int(rng.exponential(25))
            moves = rng.random() < p_adv
            if nxt >= W:        # still open in stage s at the data end
                break
            day = nxt
            if not moves:
                stage, closed, won = "lost", day, False
                hist_rows.append((oid, "lost", dates[day]))
                break
            stage = PIPELINE_STAGES[PIPELINE_STAGES.index(s) + 1]
            hist_rows.append((oid, stage, dates[day]))
            if stage == "signed":
                closed, won = day, True
        truth_rows.append((oid, acc_ids[a], p_win))
        opp_rows.append((oid, acc_ids[a], kind, stage, amount, dates[d], dates[0] + np.timedelta64(expected, "D"),
                         dates[closed] if closed is not None else pd.NaT, won))
    opps = pd.DataFrame(opp_rows, columns=["opportunity_id", "account_id", "kind", "stage", "amount", "created_at",
                                           "expected_close", "closed_at", "won"])
    opps["won"] = opps["won"].astype("boolean")
    history = pd.DataFrame(hist_rows, columns=["opportunity_id", "stage", "entered_at"])
    truth = pd.DataFrame(truth_rows, columns=["opportunity_id", "account_id", "p_win_at_creation"])
    return opps, history, truth


def _with_won_addons(rng, opps, history, truth, terms_truth, dates):
    """Make the pipeline and the contracts one story: the drawn opportunities that would have been signed are
    dropped (the lost and still-open ones stay), and every add-on contract starting in the data window becomes
    a won opportunity - same account, amount = the add-on's ARR, ``closed_at`` = the add-on's start, created
    earlier and passing through every stage (``7 + Exp(25)`` days in each, like the drawn ones), an expected
    close near the real one. Ids are renumbered by creation day so the table reads in time order. The truth
    gains ``addon_contract_id`` (null for the drawn ones); ``p_win_at_creation`` of a won one is the add-on's
    probability (``truth/terms.addon_p``). Deterministic for a given stream."""
    won_ids = set(opps.loc[opps["won"].fillna(False).astype(bool), "opportunity_id"])
    opps = opps[~opps["opportunity_id"].isin(won_ids)]
    history = history[~history["opportunity_id"].isin(won_ids)]
    truth = truth[~truth["opportunity_id"].isin(won_ids)].assign(addon_contract_id=None)
    t = terms_truth[terms_truth["addon_taken"].astype(bool)]
    t = t[pd.to_datetime(t["addon_date"]) >= pd.Timestamp(dates[0])]
    day = np.timedelta64(1, "D")
    o_rows, h_rows, tr_rows = [], [], []
    for n, r in enumerate(t.itertuples(index=False)):
        oid = f"W{n:06d}"
        close = np.datetime64(pd.Timestamp(r.addon_date), "D")
        stays = 7 + np.floor(rng.exponential(25, len(PIPELINE_STAGES) - 1)).astype(int)
        entered = close - np.concatenate([np.cumsum(stays[::-1])[::-1], [0]]) * day
        kind = "cross_sell" if rng.random() < ADDON_CROSS_SELL_SHARE else "upsell"
        expected = close + int(round(rng.normal(0, EXPECTED_CLOSE_SD_DAYS))) * day
        o_rows.append((oid, r.account_id, kind, "signed", float(r.addon_arr), entered[0], expected, close, True))
        h_rows += [(oid, s, e) for s, e in zip(PIPELINE_STAGES, entered)]
        tr_rows.append((oid, r.account_id, float(r.addon_p), r.addon_contract_id))
    won = pd.DataFrame(o_rows, columns=opps.columns)
    won["won"] = won["won"].astype("boolean")
    for c in ("created_at", "expected_close", "closed_at"):
        won[c] = pd.to_datetime(won[c])
    opps = pd.concat([opps, won], ignore_index=True) if len(won) else opps.reset_index(drop=True)
    history = pd.concat([history, pd.DataFrame(h_rows, columns=history.columns)], ignore_index=True)
    truth = pd.concat([truth, pd.DataFrame(tr_rows, columns=truth.columns)], ignore_index=True)
    opps["won"] = opps["won"].astype("boolean")
    opps = opps.sort_values(["created_at", "account_id", "opportunity_id"], kind="stable", ignore_index=True)
    new_id = dict(zip(opps["opportunity_id"], [f"O{i:06d}" for i in range(1, len(opps) + 1)]))
    opps["opportunity_id"] = opps["opportunity_id"].map(new_id)
    history = history.assign(opportunity_id=history["opportunity_id"].map(new_id)).sort_values(
        ["opportunity_id", "entered_at"], kind="stable", ignore_index=True)
    truth = truth.assign(opportunity_id=truth["opportunity_id"].map(new_id)).sort_values(
        "opportunity_id", ignore_index=True)
    return opps, history, truth
