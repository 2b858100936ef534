"""The oracle: the best possible predictions, from the simulator's truth/ folder.

Only the caller that owns simulated data opens truth/ (:func:`oracle_for`, at the entry points: the CLI
commands); training, back-test, forecast and effect code get the resulting :class:`Truth` passed in (an
``oracle=`` argument, None for real data) and use it for evaluation only. For a snapshot row (an account as of date t, its next renewal at E), the oracle
knows the latent health up to the day before t and the generative process, but not the future noise:
  h(E - notice) | h(t-1) ~ Normal(mu(t-1) + phi^k x(t-1) + expected shocks, sd_x^2 (1 - phi^2k) + shock variance)
  P(churn) = p_unavoidable + (1 - p_unavoidable) * E[sigmoid(base_logit + b_health * h)]
with the expectation taken by Gauss–Hermite quadrature. When t is after the decision date, the oracle is the
realised decision probability from truth/renewals.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.special import expit
from scipy.stats import norm

_GH_X, _GH_W = np.polynomial.hermite_e.hermegauss(24)
_GH_W = _GH_W / _GH_W.sum()


@dataclass
class Truth:
    renewals: pd.DataFrame
    health: pd.DataFrame
    meta: dict

    terms: pd.DataFrame | None = None

    @classmethod
    def load(cls, folder: str | Path) -> "Truth":
        folder = Path(folder)
        health = pd.read_parquet(folder / "health_daily.parquet")
        health["date"] = pd.to_datetime(health["date"])
        ren = pd.read_parquet(folder / "renewals.parquet")
        for c in ("end_date", "decision_date"):
            ren[c] = pd.to_datetime(ren[c])
        terms = None
        if (folder / "terms.parquet").exists():      # truth written before the outcome split has no terms
            terms = pd.read_parquet(folder / "terms.parquet")
            for c in ("start_date", "end_date", "addon_window_start", "addon_window_end", "addon_date"):
                terms[c] = pd.to_datetime(terms[c])
        return cls(ren, health, json.loads((folder / "params.json").read_text()), terms)

    @property
    def params(self) -> dict:
        """The generative parameters, with today's defaults for those an older truth folder lacks."""
        from dataclasses import asdict

        from csforecast.simulate.portfolio import Params

        return {**asdict(Params()), **self.meta["params"]}

    def latent_health(self, rows: pd.DataFrame) -> np.ndarray:
        """The simulator's latent health of each snapshot row's account on the day before its as_of (NaN
        where truth/ has no value)."""
        return self._state(rows)["health"].to_numpy(dtype=float)

    def _state(self, rows: pd.DataFrame) -> pd.DataFrame:
        key = pd.DataFrame({"account_id": rows["account_id"].to_numpy(),
                            "date": pd.to_datetime(rows["as_of"]).to_numpy() - np.timedelta64(1, "D")})
        st = key.merge(self.health, on=["account_id", "date"], how="left")
        return st

    def _expected_p(self, base, mean, var):
        p = self.params
        h = mean[:, None] + np.sqrt(np.maximum(var, 0))[:, None] * _GH_X[None, :]
        avoid = (expit(base[:, None] + p["b_health"] * h) * _GH_W[None, :]).sum(axis=1)
        return p["p_unavoidable"] + (1 - p["p_unavoidable"]) * avoid

    def _forecast_health(self, mu, x, k):
        """Mean and variance of health k days after the last known day."""
        p = self.params
        phi = p["phi"]
        k = np.maximum(k, 0).astype(float)
        mean = mu + phi ** k * x
        var = p["sd_x"] ** 2 * (1 - phi ** (2 * k))
        for rate, transient, permanent in ((p["champion_left_rate"], p["champion_left_transient"],
                                            p["champion_left_permanent"]),
                                           (p["sponsor_changed_rate"], p["sponsor_changed_transient"], 0.0),
                                           (p["incident_rate"], p["incident_transient"], 0.0)):
            lam = rate / 365.0
            mean = mean + lam * (transient * (1 - phi ** k) / (1 - phi) + permanent * k)
            var = var + lam * (transient ** 2 * (1 - phi ** (2 * k)) / (1 - phi ** 2) + permanent ** 2 * k)
        return mean, var

    def churn_probability(self, rows: pd.DataFrame) -> np.ndarray:
        """Oracle P(churn at the next renewal) for snapshot rows (account_id, as_of, contract_id)."""
        ren = self.renewals.set_index("contract_id")
        r = ren.reindex(rows["contract_id"].to_numpy())
        st = self._state(rows)
        as_of = pd.to_datetime(rows["as_of"]).to_numpy()
        k = ((r["decision_date"].to_numpy() - as_of) / np.timedelta64(1, "D")) + 1
        mean, var = self._forecast_health(st["mu"].to_numpy(float), (st["health"] - st["mu"]).to_numpy(float), k)
        out = self._expected_p(r["base_logit"].to_numpy(float), mean, var)
        decided = k <= 0
        out = np.where(decided, r["p_churn"].to_numpy(float), out)
        return out  # NaN where the decision is not in truth (outcome after the data end)

    def _decision_health(self, rows: pd.DataFrame, ren: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """Mean and variance of health on each row's decision day given what is known the day before as_of
        (variance 0 once the decision day has passed)."""
        st = self._state(rows)
        as_of = pd.to_datetime(rows["as_of"]).to_numpy()
        k = ((ren["decision_date"].to_numpy() - as_of) / np.timedelta64(1, "D")) + 1
        mean, var = self._forecast_health(st["mu"].to_numpy(float), (st["health"] - st["mu"]).to_numpy(float), k)
        decided = k <= 0
        hd = ren["health_at_decision"].to_numpy(float)
        return np.where(decided, hd, mean), np.where(decided, 0.0, var)

    def renewal_outcomes(self, rows: pd.DataFrame, arr_due) -> pd.DataFrame:
        """The oracle's expected outcome of each renewal decision, split (docs/forecast.md, "outcome split").

        rows: (account_id, as_of, contract_id) of the decision's main contract; arr_due: the ARR due on the
        books. Returns per row ``p_churn``, ``contraction`` = E[1{renewed} max(0, ARR due - successor ARR)] and
        ``expansion`` = E[1{renewed} max(0, successor ARR - ARR due)] (amounts, not conditional on renewal),
        integrating over the decision-day health (Gauss-Hermite) and the seat-change noise: successor ARR =
        max(1, round(seats x exp(c h + e))) x price x (1 + uplift), e ~ N(m, s^2) -- exact over the rounding
        for accounts under 200 seats, the lognormal closed form above. NaN where the decision is not in truth."""
        p = self.params
        ren = self.renewals.set_index("contract_id").reindex(rows["contract_id"].to_numpy())
        a = np.asarray(arr_due, dtype=float)
        mean, var = self._decision_health(rows, ren)
        h = mean[:, None] + np.sqrt(np.maximum(var, 0))[:, None] * _GH_X[None, :]          # (n, nodes)
        base = ren["base_logit"].to_numpy(float)[:, None]
        p_ch = p["p_unavoidable"] + (1 - p["p_unavoidable"]) * expit(base + p["b_health"] * h)
        seats = ren["due_seats"].to_numpy(float)
        price = ren["price_due"].to_numpy(float) * (1 + p["price_uplift"])
        mu = p["seat_change_health"] * h + p["seat_change_mean"]
        sd = p["seat_change_sd"]
        con = np.full(h.shape, np.nan)
        exp_ = np.full(h.shape, np.nan)
        ok = np.isfinite(seats) & np.isfinite(price) & np.isfinite(a) & np.isfinite(mean)
        big = ok & (seats >= 200)
        if big.any():  # lognormal partial expectations (rounding is negligible at this size)
            scale = (seats * price)[big, None] * np.exp(mu[big] + sd * sd / 2)
            d = (np.log(a[big, None] / (seats * price)[big, None]) - mu[big]) / sd
            con[big] = a[big, None] * norm.cdf(d) - scale * norm.cdf(d - sd)
            exp_[big] = scale * norm.cdf(sd - d) - a[big, None] * norm.cdf(-d)
        for i in np.flatnonzero(ok & ~big):  # exact over the rounding of the new seat count
            lo = max(1, int(np.floor(seats[i] * np.exp(mu[i].min() - 7 * sd))))
            hi = int(np.ceil(seats[i] * np.exp(mu[i].max() + 7 * sd))) + 1
            k = np.arange(lo, hi + 1, dtype=float)
            up = norm.cdf((np.log((k + 0.5) / seats[i])[None, :] - mu[i][:, None]) / sd)
            down = norm.cdf((np.log(np.maximum(k - 0.5, 1e-12) / seats[i])[None, :] - mu[i][:, None]) / sd)
            down[:, 0] = np.where(k[0] <= 1, 0.0, down[:, 0])       # max(1, .): everything below 1.5 is 1
            up[:, -1] = 1.0
            pk = up - down
            succ = k * price[i]
            con[i] = pk @ np.maximum(0.0, a[i] - succ)
            exp_[i] = pk @ np.maximum(0.0, succ - a[i])
        w = _GH_W[None, :]
        renew = 1 - p_ch
        return pd.DataFrame({"p_churn": (p_ch * w).sum(axis=1), "contraction": (renew * con * w).sum(axis=1),
                             "expansion": (renew * exp_ * w).sum(axis=1)}, index=rows.index)

    def addon_arr(self, accounts_arr: pd.Series, start, end, as_of) -> pd.Series:
        """The oracle's expected mid-term add-on ARR signed in [max(start, as_of), end), per account.

        For each contract term that started before as_of and has no add-on yet, the add-on day is uniform on
        its window [start + 90, end - 60) (the oracle does not know it; having seen no add-on before as_of it
        updates on that) and the add-on is taken with P = sigmoid(b0 + b h(day)), health forecast from the
        day before as_of to the middle of the overlap. Size: E[max(1, round(seats x U(lo, hi)))] x price.
        ``accounts_arr`` only gives the accounts to report (index); terms of accounts not in it are ignored."""
        p = self.params
        out = pd.Series(0.0, index=accounts_arr.index, dtype=float)
        if self.terms is None or not len(self.terms):
            return out
        as_of = pd.Timestamp(as_of)
        lo_w, hi_w = max(pd.Timestamp(start), as_of), pd.Timestamp(end)
        t = self.terms
        t = t[(t["start_date"] < as_of) & (t["end_date"] > as_of) & t["addon_window_start"].notna()
              & ~(t["addon_taken"] & (t["addon_date"] < as_of)) & t["account_id"].isin(out.index)]
        if t.empty or hi_w <= lo_w:
            return out
        ws, we = t["addon_window_start"], t["addon_window_end"]
        span = (we - ws).dt.days.clip(lower=1).to_numpy(float)
        ov_lo = ws.where(ws > lo_w, lo_w)
        ov_hi = we.where(we < hi_w, hi_w)
        overlap = (ov_hi - ov_lo).dt.days.clip(lower=0).to_numpy(float)
        seen = ((as_of - ws).dt.days.clip(lower=0).to_numpy(float) / span).clip(0, 1)  # window share before as_of
        mid = ov_lo + (ov_hi - ov_lo) / 2
        rows = pd.DataFrame({"account_id": t["account_id"].to_numpy(), "as_of": as_of})
        st = self._state(rows)
        k = ((mid - (as_of - pd.Timedelta(days=1))).dt.days).to_numpy(float)
        mean, var = self._forecast_health(st["mu"].to_numpy(float), (st["health"] - st["mu"]).to_numpy(float), k)
        hh = mean[:, None] + np.sqrt(np.maximum(var, 0))[:, None] * _GH_X[None, :]
        p_take = (expit(p["addon_b0"] + p["addon_b_health"] * hh) * _GH_W[None, :]).sum(axis=1)
        p_take = np.where(np.isfinite(p_take), p_take, 0.0)
        p_day = (overlap / span) / np.maximum(seen * (1 - p_take) + (1 - seen), 1e-12)
        u = np.linspace(p["addon_share_low"], p["addon_share_high"], 41)
        seats = t["seats"].to_numpy(float)
        extra = np.maximum(1.0, np.round(seats[:, None] * u[None, :])).mean(axis=1)
        # price per seat as of the term (the term truth keeps the price its contracts were signed at)
        value = np.clip(p_day, 0, 1) * p_take * extra * t["price"].to_numpy(float)
        return out.add(pd.Series(value, index=t["account_id"].to_numpy()).groupby(level=0).sum(), fill_value=0.0)

    def survival_curve(self, rows: pd.DataFrame, times: np.ndarray, horizon_renewals: int = 4) -> np.ndarray:
        """Oracle P(still a customer t days after as_of), for each row and t in `times`.

        Renewals fall at renewal_date + j * term; the next one has the oracle probability above, later
        ones the probability implied by the account's current level mu (no first-renewal effect)."""
        p = self.params
        p1 = self.churn_probability(rows)
        st = self._state(rows)
        seg_b = rows["segment"].map(p["b_segment"]).to_numpy(float)
        auto = rows["auto_renew"].fillna(0).to_numpy(float)
        base_later = p["b0"] + seg_b + p["b_auto_renew"] * auto
        mu = st["mu"].to_numpy(float)
        p_later = self._expected_p(base_later, mu, np.full_like(mu, p["sd_x"] ** 2))
        d1 = rows["days_to_renewal"].to_numpy(float)
        term = rows["term_days"].fillna(365).to_numpy(float)
        p1 = np.where(np.isnan(p1), p_later, p1)
        times = np.asarray(times, float)
        surv = np.ones((len(rows), len(times)))
        for j in range(horizon_renewals):
            due = d1 + j * term
            pj = p1 if j == 0 else p_later
            surv *= np.where(times[None, :] >= due[:, None], 1 - pj[:, None], 1.0)
        return surv

    def playbook_effects(self) -> dict:
        return self.meta.get("playbooks", {})


def load_truth(source_location: str | Path) -> Truth | None:
    folder = Path(source_location) / "truth"
    return Truth.load(folder) if (folder / "renewals.parquet").exists() else None


def oracle_for(source) -> Truth | None:
    """The oracle of a simulated source (its truth/ folder), or None for real data. Call it only where the
    simulated data is owned: at an entry point (a CLI command), never inside training or evaluation code."""
    location = getattr(source, "location", source)
    return load_truth(location) if location is not None else None
