"""Simulated portfolios with ground truth (see portfolio.py for the generative story)."""
from csforecast.simulate.portfolio import DEFAULT_END, Params, Portfolio, simulate_portfolio

__all__ = ["DEFAULT_END", "Params", "Portfolio", "simulate_portfolio"]
