"""Tests for csforecast.metrics.arr: a worked example by hand, randomised identities, a brute-force oracle."""
from __future__ import annotations

import json
import math
import time

import numpy as np
import pandas as pd
import pytest

from csforecast.metrics import account_arr_at, annualized_churn_rate, arr_movements, renewal_rate
from csforecast.metrics.arr import (MOVEMENT_COLUMNS, UNITS_PER_CURRENCY, account_arr_panel, periodic_churn_rate,
                                    to_records)

MONEY = ["starting_arr", "new_arr", "expansion_arr", "contraction_arr", "churned_arr", "ending_arr",
         "expected_renewal_arr", "renewed_arr"]
LOGOS = ["starting_logos", "new_logos", "churned_logos", "ending_logos"]


def _frame(rows):
    c = pd.DataFrame(rows, columns=["contract_id", "account_id", "start_date", "end_date", "arr", "renewed_by"])
    c["start_date"] = pd.to_datetime(c["start_date"])
    c["end_date"] = pd.to_datetime(c["end_date"])
    c["renewed_by"] = c["renewed_by"].astype("string")
    c["seats"] = 1.0
    c["auto_renew"] = False
    c["churn_reason"] = pd.Series([None] * len(c), dtype="string")
    return c


# ------------------------------------------------------------------------------------------------------
# worked example
# ------------------------------------------------------------------------------------------------------
WORKED = _frame([
    # id    account start         end (exclusive) arr     renewed_by
    ("A1", "A", "2024-02-15", "2025-02-15", 12000, None),   # new in Q1
    ("B1", "B", "2023-03-01", "2024-03-01", 10000, None),   # churns in Q1
    ("C1", "C", "2023-05-01", "2024-05-01", 20000, "C2"),   # expands at renewal in Q2
    ("C2", "C", "2024-05-01", "2025-05-01", 25000, None),
    ("D1", "D", "2023-04-01", "2024-04-01", 8000, "D2"),    # contracts at renewal; renewal date 04-01
    ("D2", "D", "2024-04-01", "2025-04-01", 6000, None),
    ("E1", "E", "2023-07-01", "2024-07-01", 30000, "E3"),   # mid-term add-on in Q1, co-termed,
    ("E2", "E", "2024-02-01", "2024-07-01", 6000, "E3"),    # consolidated into E3 at renewal
    ("E3", "E", "2024-07-01", "2025-07-01", 33000, None),
    ("F1", "F", "2023-06-01", "2024-06-01", 5000, "F2"),    # late renewal: successor starts 2024-08-15
    ("F2", "F", "2024-08-15", "2025-08-15", 5500, None),
    ("G1", "G", "2023-09-01", "2024-09-01", 4000, "G2"),    # early renewal: successor starts 2024-05-15
    ("G2", "G", "2024-05-15", "2025-05-15", 4800, None),
    ("H1", "H", "2023-10-01", "2024-10-01", 1000, None),    # unchanged over the window
])
WORKED_ACCOUNTS = pd.DataFrame({
    "account_id": list("ABCDEFGH"),
    "segment": ["SMB", "SMB", "Enterprise", "SMB", "Enterprise", "SMB", "SMB", "Enterprise"],
    "csm_id": pd.array(["CSM-1", None, "CSM-2", "CSM-1", "CSM-2", None, "CSM-1", "CSM-2"], dtype="string"),
})


def test_worked_example():
    """Quarters 2024Q1 and 2024Q2, by hand.

    ARR on 2024-01-01: B 10,000  C 20,000  D 8,000  E 30,000  F 5,000  G 4,000  H 1,000  (A 0)
                       = 78,000, 7 logos.
    ARR on 2024-04-01: A 12,000 (new)  B 0 (churned 10,000)  C 20,000  D 6,000 (D1 ends and D2 starts
                       on 04-01: contraction 2,000 booked in Q1)  E 36,000 (add-on E2: expansion 6,000)
                       F 5,000  G 4,000  H 1,000  = 84,000, 7 logos.
        Q1: 78,000 + 12,000 new + 6,000 expansion - 2,000 contraction - 10,000 churned = 84,000.
        GRR = (78,000 - 2,000 - 10,000) / 78,000 = 66/78 = 0.846154
        NRR = (78,000 + 6,000 - 2,000 - 10,000) / 78,000 = 72/78 = 0.923077
        logos: 7 start, 1 new (A), 1 churned (B), 7 end; logo retention 6/7, logo churn 1/7.
        Due in Q1 (last covered day in Q1, i.e. end_date in (01-01, 04-01]): B1 10,000 (churned),
        D1 8,000 (renewed). Expected 18,000, renewed 8,000, renewal rate 8/18 = 0.444444.
    ARR on 2024-07-01: A 12,000  C 25,000 (+5,000)  D 6,000  E 33,000 (E1 + E2 = 36,000 consolidate into
                       E3 = 33,000: -3,000)  F 5,000 (F1 ended 06-01 but F2 only starts 08-15: late
                       renewal, F1 keeps counting, no churn)  G 4,800 (G2 started 05-15 and replaced G1:
                       +800, no double counting)  H 1,000  = 86,800, 7 logos.
        Q2: 84,000 + 0 new + 5,800 expansion - 3,000 contraction - 0 churned = 86,800.
        GRR = 81,000 / 84,000 = 0.964286; NRR = 86,800 / 84,000 = 1.033333; logo retention 1, churn 0.
        Due in Q2: C1 20,000, F1 5,000 (late, still renewed in the period it was due), E1 30,000 and
        E2 6,000 (end_date 07-01: last covered day 06-30). Expected 61,000, renewed 61,000, rate 1.
        G1 (end 09-01) is due in Q3 even though it was renewed early.
    """
    m = arr_movements(WORKED, start="2024-01-01", end="2024-07-01")
    assert list(m.columns) == [c for c in MOVEMENT_COLUMNS if c != "group"]
    assert list(m["period"]) == ["2024Q1", "2024Q2"]
    assert list(m["period_start"]) == [pd.Timestamp("2024-01-01"), pd.Timestamp("2024-04-01")]
    assert list(m["period_end"]) == [pd.Timestamp("2024-04-01"), pd.Timestamp("2024-07-01")]
    q1, q2 = m.iloc[0], m.iloc[1]
    expected_q1 = dict(starting_arr=78000, new_arr=12000, expansion_arr=6000, contraction_arr=2000,
                       churned_arr=10000, ending_arr=84000, starting_logos=7, new_logos=1, churned_logos=1,
                       ending_logos=7, expected_renewal_arr=18000, renewed_arr=8000)
    expected_q2 = dict(starting_arr=84000, new_arr=0, expansion_arr=5800, contraction_arr=3000,
                       churned_arr=0, ending_arr=86800, starting_logos=7, new_logos=0, churned_logos=0,
                       ending_logos=7, expected_renewal_arr=61000, renewed_arr=61000)
    for row, exp in ((q1, expected_q1), (q2, expected_q2)):
        for k, v in exp.items():
            assert row[k] == v, (row["period"], k, row[k], v)
    assert q1["grr"] == pytest.approx(66 / 78)
    assert q1["nrr"] == pytest.approx(72 / 78)
    assert q1["logo_retention"] == pytest.approx(6 / 7)
    assert q1["logo_churn_rate"] == pytest.approx(1 / 7)
    assert q1["renewal_rate"] == pytest.approx(8 / 18)
    assert q2["grr"] == pytest.approx(81 / 84)
    assert q2["nrr"] == pytest.approx(86.8 / 84)
    assert q2["logo_retention"] == 1.0 and q2["logo_churn_rate"] == 0.0
    assert q2["renewal_rate"] == 1.0


def test_worked_example_grouped_by_segment():
    """Enterprise = C, E, H; SMB = A, B, D, F, G.
    Q1 Enterprise: start 20,000 + 30,000 + 1,000 = 51,000; expansion 6,000 (E); end 57,000.
    Q1 SMB: start 10,000 + 8,000 + 5,000 + 4,000 = 27,000; new 12,000; contraction 2,000; churned 10,000;
            end 27,000; GRR 15/27; NRR 15/27; logos 4 -> 4.
    Q2 Enterprise: 57,000 + 5,000 - 3,000 = 59,000. Q2 SMB: 27,000 + 800 = 27,800.
    """
    g = arr_movements(WORKED, WORKED_ACCOUNTS, group_by="segment", start="2024-01-01", end="2024-07-01")
    assert list(g.columns) == MOVEMENT_COLUMNS
    g = g.set_index(["period", "group"])
    ent1, smb1 = g.loc[("2024Q1", "Enterprise")], g.loc[("2024Q1", "SMB")]
    assert (ent1.starting_arr, ent1.expansion_arr, ent1.ending_arr) == (51000, 6000, 57000)
    assert (smb1.starting_arr, smb1.new_arr, smb1.contraction_arr, smb1.churned_arr, smb1.ending_arr) == \
        (27000, 12000, 2000, 10000, 27000)
    assert smb1.grr == pytest.approx(15 / 27) and smb1.nrr == pytest.approx(15 / 27)
    assert (smb1.starting_logos, smb1.new_logos, smb1.churned_logos, smb1.ending_logos) == (4, 1, 1, 4)
    assert g.loc[("2024Q2", "Enterprise")].ending_arr == 59000
    assert g.loc[("2024Q2", "SMB")].ending_arr == 27800


def test_worked_example_csm_unassigned_and_cohort():
    g = arr_movements(WORKED, WORKED_ACCOUNTS, group_by="csm_id", start="2024-01-01", end="2024-07-01")
    q1 = g[g.period == "2024Q1"].set_index("group")
    assert set(q1.index) == {"CSM-1", "CSM-2", "unassigned"}
    assert q1.loc["unassigned", "starting_arr"] == 15000   # B 10,000 + F 5,000
    assert q1.loc["unassigned", "churned_arr"] == 10000
    c = arr_movements(WORKED, group_by="cohort", period="year", end="2024-07-01")
    # every account but A started in 2023; year 2024 is incomplete at 2024-07-01, so only 2023 is emitted
    assert list(c["period"]) == ["2023"] and list(c["group"]) == ["2023"]
    assert c.iloc[0]["new_arr"] == 78000 and c.iloc[0]["new_logos"] == 7


def test_account_arr_at_late_and_early_renewal():
    arr = account_arr_at(WORKED, "2024-06-15")
    assert arr.to_dict() == {"A": 12000, "C": 25000, "D": 6000, "E": 36000, "F": 5000, "G": 4800, "H": 1000}
    assert "B" not in arr.index                                 # zero ARR omitted by default
    full = account_arr_at(WORKED, "2024-06-15", include_zero=True)
    assert full["B"] == 0 and len(full) == 8
    assert account_arr_at(WORKED, "2024-08-14")["F"] == 5000    # still F1 (late renewal)
    assert account_arr_at(WORKED, "2024-08-15")["F"] == 5500    # F2 from its start
    assert account_arr_at(WORKED, "2024-05-14")["G"] == 4000    # G1 until the early successor starts
    assert account_arr_at(WORKED, "2024-05-15")["G"] == 4800
    assert account_arr_at(WORKED, "2024-07-01")["E"] == 33000   # end_date exclusive: E1, E2 gone on 07-01
    assert account_arr_at(WORKED, "2024-06-30")["E"] == 36000
    panel = account_arr_panel(WORKED, ["2024-07-01", "2024-01-01"])
    assert panel.loc["E"].tolist() == [33000, 30000]
    assert panel.loc["A"].tolist() == [12000, 0]


def test_renewal_rate_function():
    r = renewal_rate(WORKED, "2024-01-01", "2024-04-01")
    assert r["expected_renewal_arr"] == 18000 and r["renewed_arr"] == 8000 and r["churned_arr"] == 10000
    assert r["count_due"] == 2 and r["count_renewed"] == 1 and r["count_churned"] == 1
    assert r["renewal_rate"] == pytest.approx(8 / 18)
    r2 = renewal_rate(WORKED, "2024-04-01", "2024-07-01")
    assert (r2["expected_renewal_arr"], r2["renewed_arr"], r2["count_due"], r2["count_renewed"]) == \
        (61000, 61000, 4, 4)
    # H1 is due in Q3 (end 2024-10-01) with no successor; data end 2024-08-16 -> still pending
    r3 = renewal_rate(WORKED, "2024-07-01", "2024-10-01", data_end="2024-08-16")
    assert r3["count_due"] == 2 and r3["count_renewed"] == 1 and r3["count_pending"] == 1
    assert r3["pending_arr"] == 1000 and r3["renewal_rate"] == 1.0
    r4 = renewal_rate(WORKED, "2024-07-01", "2024-10-01", data_end="2024-10-01")
    assert r4["count_churned"] == 1 and r4["renewal_rate"] == pytest.approx(4000 / 5000)


def test_a_contract_booked_ahead_does_not_move_the_default_data_end():
    """A contract starting after today (a renewal signed early) is not data yet: H1, due 2024-10-01 with no
    successor, stays pending at the default data end (the day after the latest start up to today)."""
    future = pd.Timestamp.today().normalize() + pd.Timedelta(days=60)
    booked = pd.concat([WORKED, _frame([("Z1", "Z", future, future + pd.Timedelta(days=365), 500, None)])])
    got = renewal_rate(booked, "2024-07-01", "2024-10-01")
    assert got == renewal_rate(WORKED, "2024-07-01", "2024-10-01") and got["count_pending"] == 1


def test_periods_are_complete_only_and_labelled():
    m = arr_movements(WORKED, period="month", start="2024-01-01", end="2024-06-30")
    assert list(m["period"]) == ["2024-01", "2024-02", "2024-03", "2024-04", "2024-05"]   # June incomplete
    y = arr_movements(WORKED, period="year", end="2025-01-01")
    assert list(y["period"]) == ["2023", "2024"]
    # default end: the day after the latest contract start (2024-08-15) -> last complete quarter 2024Q2
    assert arr_movements(WORKED)["period"].iloc[-1] == "2024Q2"
    assert arr_movements(WORKED)["period"].iloc[0] == "2023Q1"
    # start in the middle of a quarter: the first period is the first one starting on/after it
    assert arr_movements(WORKED, start="2024-02-10", end="2024-07-01")["period"].tolist() == ["2024Q2"]
    assert arr_movements(WORKED, start="2024-01-01", end="2024-03-31").empty
    with pytest.raises(ValueError):
        arr_movements(WORKED, period="week")
    with pytest.raises(ValueError):
        arr_movements(WORKED, group_by="segment")        # needs accounts


def test_dangling_successor_is_renewed_flat():
    c = _frame([("X1", "X", "2024-01-01", "2024-04-01", 100.5, "X2-not-exported")])
    assert account_arr_at(c, "2024-05-01")["X"] == 100.5
    m = arr_movements(c, start="2024-01-01", end="2024-07-01")
    assert m["churned_arr"].sum() == 0 and m.iloc[0]["renewal_rate"] == 1.0


def test_csv_roundtrip_ids_and_string_dates(tmp_path):
    c = WORKED.copy()
    c["contract_id"] = range(1, len(c) + 1)
    c["renewed_by"] = WORKED["renewed_by"].map(dict(zip(WORKED["contract_id"], c["contract_id"])))
    c.to_csv(tmp_path / "c.csv", index=False)
    back = pd.read_csv(tmp_path / "c.csv")               # renewed_by is float (NaN), dates are strings
    assert back["renewed_by"].dtype == float
    pd.testing.assert_frame_equal(arr_movements(back, start="2024-01-01", end="2024-07-01"),
                                  arr_movements(WORKED, start="2024-01-01", end="2024-07-01"))


def test_empty_contracts():
    m = arr_movements(WORKED.iloc[:0])
    assert m.empty and list(m.columns) == [c for c in MOVEMENT_COLUMNS if c != "group"]
    assert account_arr_at(WORKED.iloc[:0], "2024-01-01").empty


def test_validation():
    bad = WORKED.copy()
    bad.loc[0, "arr"] = -1
    with pytest.raises(ValueError):
        arr_movements(bad)
    dup = pd.concat([WORKED, WORKED.iloc[:1]])
    with pytest.raises(ValueError):
        account_arr_at(dup, "2024-01-01")
    back = WORKED.copy()
    back.loc[0, "end_date"] = pd.Timestamp("2020-01-01")
    with pytest.raises(ValueError):
        account_arr_at(back, "2024-01-01")


# ------------------------------------------------------------------------------------------------------
# annualised churn, JSON
# ------------------------------------------------------------------------------------------------------
def test_annualized_churn_rate():
    assert annualized_churn_rate(0.08, 12) == pytest.approx(0.6323, abs=1e-4)
    assert annualized_churn_rate(0.0, 4) == 0.0 and annualized_churn_rate(1.0, 4) == 1.0
    v = annualized_churn_rate(np.array([0.01, 0.05, np.nan]), 4)
    assert v[:2] == pytest.approx([1 - 0.99 ** 4, 1 - 0.95 ** 4]) and np.isnan(v[2])
    s = annualized_churn_rate(pd.Series([0.02, 0.03], index=["a", "b"]), 12)
    assert list(s.index) == ["a", "b"]
    assert periodic_churn_rate(annualized_churn_rate(0.08, 12), 12) == pytest.approx(0.08)
    with pytest.raises(ValueError):
        annualized_churn_rate(1.2, 12)
    with pytest.raises(ValueError):
        annualized_churn_rate(-0.1, 12)
    with pytest.raises(ValueError):
        annualized_churn_rate(0.1, 0)


def test_to_records_json_safe():
    m = arr_movements(WORKED, WORKED_ACCOUNTS, group_by="cohort", start="2023-01-01", end="2024-07-01")
    recs = to_records(m)
    json.dumps(recs, allow_nan=False)
    first = recs[0]
    assert first["period"] == "2023Q1" and first["period_start"] == "2023-01-01"
    assert first["grr"] is None                       # starting ARR 0 -> NaN -> None
    assert isinstance(first["starting_logos"], int)
    arr = to_records(account_arr_at(WORKED, "2024-06-15"))
    assert arr[0] == {"account_id": "A", "arr": 12000.0}
    odd = pd.DataFrame({"x": [np.inf, pd.NA], "t": [pd.Timestamp("2024-01-01 10:30"), pd.NaT]})
    assert to_records(odd) == [{"x": None, "t": "2024-01-01T10:30:00"}, {"x": None, "t": None}]


# ------------------------------------------------------------------------------------------------------
# randomised contract tables
# ------------------------------------------------------------------------------------------------------
def random_portfolio(seed: int, n_accounts: int = 300, origin: str = "2021-01-01", span_days: int = 1400):
    """Random accounts with renewal chains: expansion/contraction at renewal, co-termed and non-co-termed
    add-ons (consolidated or dropped at renewal), churn, late and early renewals, reactivations, zero-ARR
    contracts, cent amounts, a few dangling successors and accounts missing from the accounts table."""
    rng = np.random.default_rng(seed)
    o = np.datetime64(origin, "D")
    rows, n = [], 0

    def new_id():
        nonlocal n
        n += 1
        return f"C{n:06d}"

    for a in range(n_accounts):
        acc = f"A{a:04d}"
        t = int(rng.integers(0, span_days))
        arr = round(float(rng.lognormal(9, 1.0)), 2)
        for _life in range(1 + int(rng.random() < 0.1)):            # 10 %: reactivation after churn
            cur = new_id()
            for _ in range(int(rng.integers(1, 7))):
                term = int(rng.choice([365, 365, 365, 182, 730, 91, 30]))
                group = [[cur, acc, t, t + term, arr if rng.random() > 0.03 else 0.0, None]]
                if term >= 90 and rng.random() < 0.35:                 # mid-term add-on
                    s = t + int(rng.integers(1, term))
                    e = t + term if rng.random() < 0.8 else int(rng.integers(s + 1, t + term + 1))
                    group.append([new_id(), acc, s, e, round(float(rng.uniform(50, 5000)), 2), None])
                u = rng.random()
                if u < 0.15:                                           # churn everything
                    rows += group
                    break
                nxt = new_id()
                r = rng.random()
                gap = (int(rng.integers(1, 120)) if r < 0.15 else            # late renewal
                       -int(rng.integers(1, max(2, term))) if r < 0.25 else 0)  # early renewal
                for g in group:
                    if g is group[0] or rng.random() < 0.85:           # add-ons usually consolidate
                        g[5] = nxt
                if rng.random() < 0.02:                                # successor never exported
                    for g in group:
                        g[5] = "MISSING-" + g[0]
                    rows += group
                    break
                rows += group
                t = t + term + gap
                arr = round(arr * float(rng.lognormal(0.02, 0.25)), 2)
                cur = nxt
            else:
                rows.append([cur, acc, t, t + 365, arr, None])
            t = t + int(rng.integers(30, 400))
    c = pd.DataFrame(rows, columns=["contract_id", "account_id", "start_date", "end_date", "arr", "renewed_by"])
    c["start_date"] = o + c["start_date"].to_numpy().astype("timedelta64[D]")
    c["end_date"] = o + c["end_date"].to_numpy().astype("timedelta64[D]")
    c["start_date"] = pd.to_datetime(c["start_date"])
    c["end_date"] = pd.to_datetime(c["end_date"])
    c["renewed_by"] = c["renewed_by"].astype("string")
    ids = sorted(c["account_id"].unique())
    ids = [i for i in ids if rng.random() > 0.02]                      # a few accounts missing from accounts
    accounts = pd.DataFrame({
        "account_id": ids,
        "segment": rng.choice(["Enterprise", "Mid-Market", "SMB"], len(ids)),
        "region": rng.choice(["EMEA", "NA", "APAC"], len(ids)),
        "csm_id": pd.array([None if rng.random() < 0.3 else f"CSM-{rng.integers(1, 8)}" for _ in ids],
                           dtype="string"),
    })
    return c, accounts


def _units(x) -> np.ndarray:
    return np.rint(np.asarray(x, dtype=float) * UNITS_PER_CURRENCY).astype(np.int64)


def check_invariants(m: pd.DataFrame, grouped: bool) -> None:
    s, n, e, k, ch, end = (_units(m[c]) for c in MONEY[:6])
    assert np.array_equal(s + n + e - k - ch, end)                   # exact in currency micro-units
    np.testing.assert_allclose(m.starting_arr + m.new_arr + m.expansion_arr - m.contraction_arr
                               - m.churned_arr, m.ending_arr, rtol=0, atol=1e-6)
    assert (m[MONEY] >= 0).all().all() and (m[LOGOS] >= 0).all().all()
    assert (m.starting_logos + m.new_logos - m.churned_logos == m.ending_logos).all()
    has = m.starting_arr > 0
    assert (m.grr[has] <= 1 + 1e-12).all() and (m.grr[has] >= 0).all()
    assert m.grr[~has].isna().all() and m.nrr[~has].isna().all() and m.logo_retention[~has].isna().all()
    np.testing.assert_allclose(m.nrr[has], (m.ending_arr - m.new_arr)[has] / m.starting_arr[has])
    np.testing.assert_allclose(m.logo_retention[has] + m.logo_churn_rate[has], 1.0)
    assert (m.renewed_arr <= m.expected_renewal_arr + 1e-9).all()
    rr = m.renewal_rate.dropna()
    assert ((rr >= 0) & (rr <= 1)).all()
    if not grouped:                                                    # contiguous periods chain
        assert (m.period_end.iloc[:-1].to_numpy() == m.period_start.iloc[1:].to_numpy()).all()
        assert np.array_equal(_units(m.starting_arr)[1:], _units(m.ending_arr)[:-1])
        assert np.array_equal(m.starting_logos.to_numpy()[1:], m.ending_logos.to_numpy()[:-1])


def check_groups_sum(total: pd.DataFrame, grouped: pd.DataFrame) -> None:
    add = MONEY + LOGOS
    g = grouped.groupby("period", sort=False)[add].sum()
    t = total.set_index("period")[add]
    assert set(g.index) <= set(t.index)
    g = g.reindex(t.index, fill_value=0)
    for col in MONEY:
        assert np.array_equal(_units(g[col]), _units(t[col])) or np.allclose(g[col], t[col], atol=1e-6), col
    assert (g[LOGOS].to_numpy() == t[LOGOS].to_numpy()).all()


GROUPS = [None, "segment", "csm_id", "region", "cohort"]


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("period", ["month", "quarter", "year"])
def test_identity_randomised(seed, period):
    c, accounts = random_portfolio(seed, n_accounts=200 + 20 * seed)
    end = "2025-01-01"
    total = arr_movements(c, accounts, period=period, end=end)
    assert len(total) > 0
    check_invariants(total, grouped=False)
    for gb in GROUPS[1:]:
        grouped = arr_movements(c, accounts, period=period, group_by=gb, end=end)
        check_invariants(grouped, grouped=True)
        check_groups_sum(total, grouped)
    # ending ARR = sum of account ARR on period_end
    for _, row in total.iloc[[0, len(total) // 2, -1]].iterrows():
        assert account_arr_at(c, row.period_end).sum() == pytest.approx(row.ending_arr, abs=1e-6)


try:
    from hypothesis import given, settings
    from hypothesis import strategies as st
except ImportError:  # pragma: no cover
    given = None

if given is not None:
    @settings(max_examples=60, deadline=None)
    @given(seed=st.integers(0, 2 ** 31), period=st.sampled_from(["month", "quarter", "year"]),
           group_by=st.sampled_from(GROUPS), n=st.integers(1, 120),
           end=st.dates(min_value=pd.Timestamp("2021-03-01").date(), max_value=pd.Timestamp("2026-06-01").date()))
    def test_identity_hypothesis(seed, period, group_by, n, end):
        c, accounts = random_portfolio(seed, n_accounts=n)
        m = arr_movements(c, accounts, period=period, group_by=group_by, end=end)
        check_invariants(m, grouped=group_by is not None)
        if group_by is not None:
            check_groups_sum(arr_movements(c, accounts, period=period, end=end), m)


# ------------------------------------------------------------------------------------------------------
# brute-force oracle: the rules written out naively, per account and per day
# ------------------------------------------------------------------------------------------------------
def _oracle_arr(c: pd.DataFrame, day: pd.Timestamp) -> dict[str, float]:
    starts = dict(zip(c.contract_id, c.start_date))
    out: dict[str, float] = {}
    for r in c.itertuples():
        if pd.isna(r.renewed_by):
            eff = r.end_date
        elif r.renewed_by in starts:
            eff = max(starts[r.renewed_by], r.start_date)
        else:
            eff = pd.Timestamp.max
        if r.start_date <= day < eff and r.end_date > r.start_date:
            out[r.account_id] = out.get(r.account_id, 0.0) + r.arr
    return out


@pytest.mark.parametrize("seed", [101, 202])
def test_against_brute_force(seed):
    c, accounts = random_portfolio(seed, n_accounts=80)
    m = arr_movements(c, accounts, period="quarter", end="2025-01-01")
    for row in m.itertuples():
        s, e = _oracle_arr(c, row.period_start), _oracle_arr(c, row.period_end)
        new = exp = con = ch = 0.0
        for a in set(s) | set(e):
            x, y = s.get(a, 0.0), e.get(a, 0.0)
            if x == 0 and y > 0:
                new += y
            elif x > 0 and y == 0:
                ch += x
            elif x > 0 and y > 0:
                exp += max(y - x, 0)
                con += max(x - y, 0)
        assert row.starting_arr == pytest.approx(sum(s.values()), abs=1e-6)
        assert (row.new_arr, row.expansion_arr, row.contraction_arr, row.churned_arr) == pytest.approx(
            (new, exp, con, ch), abs=1e-6)
        assert row.starting_logos == sum(v > 0 for v in s.values())
        due = c[(c.end_date > row.period_start) & (c.end_date <= row.period_end) & (c.end_date > c.start_date)]
        assert row.expected_renewal_arr == pytest.approx(due.arr.sum(), abs=1e-6)
        assert row.renewed_arr == pytest.approx(due.arr[due.renewed_by.notna()].sum(), abs=1e-6)
    day = pd.Timestamp("2023-05-17")
    got = account_arr_at(c, day)
    want = {k: v for k, v in _oracle_arr(c, day).items() if v > 0}
    assert got.to_dict() == pytest.approx(want)


# ------------------------------------------------------------------------------------------------------
# performance
# ------------------------------------------------------------------------------------------------------
def _big_portfolio(n_accounts=10_000, seed=7):
    """~40,000 contracts, vectorised: per account up to 4 consecutive yearly contracts, some churn, add-ons."""
    rng = np.random.default_rng(seed)
    o = np.datetime64("2021-01-01", "D")
    first = rng.integers(0, 365, n_accounts)
    k = 4
    acc = np.repeat(np.arange(n_accounts), k)
    step = np.tile(np.arange(k), n_accounts)
    start = first[acc] + 365 * step
    arr = np.round(rng.lognormal(9, 1, n_accounts)[acc] * rng.lognormal(0, 0.2, len(acc)), 2)
    cid = np.array([f"C{i:07d}" for i in range(len(acc))], dtype=object)
    last = step == k - 1
    churn = rng.random(len(acc)) < 0.1
    renewed_by = np.where(last | churn, None, np.roll(cid, -1)).astype(object)
    c = pd.DataFrame({"contract_id": cid, "account_id": np.array([f"A{i:05d}" for i in range(n_accounts)])[acc],
                      "start_date": o + start.astype("timedelta64[D]"),
                      "end_date": o + (start + 365).astype("timedelta64[D]"), "arr": arr,
                      "renewed_by": pd.array(renewed_by, dtype="string")})
    # drop the contracts after a churn
    dead = pd.Series(churn).groupby(acc).cumsum().shift(fill_value=0).to_numpy() > 0
    dead &= step > 0
    c = c[~dead | (step == 0)]
    # co-termed mid-term add-ons on 20 % of the contracts, consolidated into the same successor
    host = c[rng.random(len(c)) < 0.2]
    addon = host.assign(contract_id=["X" + x[1:] for x in host["contract_id"]],
                        start_date=host["start_date"] + pd.to_timedelta(rng.integers(60, 300, len(host)), "D"),
                        arr=np.round(host["arr"].to_numpy() * 0.2, 2))
    c = pd.concat([c, addon], ignore_index=True)
    accounts = pd.DataFrame({"account_id": [f"A{i:05d}" for i in range(n_accounts)],
                             "segment": rng.choice(["Enterprise", "Mid-Market", "SMB"], n_accounts)})
    return c.reset_index(drop=True), accounts


def test_performance_10k_accounts():
    c, accounts = _big_portfolio()
    assert len(c) > 38_000
    t0 = time.perf_counter()
    m = arr_movements(c, accounts, period="quarter", group_by="segment", start="2022-01-01", end="2025-01-01")
    elapsed = time.perf_counter() - t0
    assert m["period"].nunique() == 12
    check_invariants(m, grouped=True)
    assert elapsed < 2.0, elapsed
    assert not math.isnan(m["grr"].iloc[0])
