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

_GH_X, _GH_W = np.polynomial.hermite_e.hermegauss(24)
_GH_W = _GH_W / _GH_W.sum()


@dataclass
class Truth:
    renewals: pd.DataFrame
    health: pd.DataFrame
    meta: dict

    @classmethod
    def load(cls, folder: str | Path) -> "Truth":
        folder = Path(folder)
        health = pd.read_parquet(folder / "health_daily.parquet")
        health["date"] = pd.to_datetime(health["date"])
        ren = pd.read_parquet(folder / "renewals.parquet")
        for c in ("end_date", "decision_date"):
            ren[c] = pd.to_datetime(ren[c])
        return cls(ren, health, json.loads((folder / "params.json").read_text()))

    @property
    def params(self) -> dict:
        return self.meta["params"]

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
