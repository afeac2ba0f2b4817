"""A/B statistics as pure functions: Wilson interval, delta-method lift, user-bootstrap lift, SRM chi-square.

A CTR here is clicks / exposures. The Wilson and delta-method intervals treat exposures as independent
Bernoulli trials; exposures of one user are correlated, so those intervals are narrower than the truth
when users differ a lot. `bootstrap_lift` resamples users instead and is the honest one for that case.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from serving.abtest.special import chi2_sf

Z95 = 1.96  # Φ^-1(0.975) = 1.95996…, rounded as usual


class Lift(NamedTuple):
    """Relative lift t/c - 1 and its interval [lo, hi]; nan where undefined."""

    lift: float
    lo: float
    hi: float


class Srm(NamedTuple):
    chi2: float
    dof: int
    p_value: float


def wilson_interval(successes: int, trials: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a proportion (Wilson 1927; Agresti & Coull 1998, Eq. 2).

        p̂ = s / n,  centre = (p̂ + z²/2n) / (1 + z²/n)
        half = z / (1 + z²/n) · sqrt(p̂(1 - p̂)/n + z²/4n²)
        -> (centre - half, centre + half), clipped to [0, 1]; (0, 1) when n = 0.
    """
    if trials < 0 or not 0 <= successes <= max(trials, 0):
        raise ValueError(f"need 0 <= successes <= trials, got {successes}/{trials}")
    if trials == 0:
        return 0.0, 1.0
    p, z2 = successes / trials, z * z
    denom = 1.0 + z2 / trials
    centre = (p + z2 / (2 * trials)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / trials + z2 / (4 * trials * trials))
    return max(0.0, centre - half), min(1.0, centre + half)


def relative_lift(ctr_t: float, n_t: int, ctr_c: float, n_c: int, z: float = Z95) -> Lift:
    """Relative lift of treatment over control, ctr_t / ctr_c - 1, with the log-ratio delta-method interval
    (Katz et al. 1978, the risk-ratio interval; var(log p̂) ≈ (1 - p) / (n p)):

        se = sqrt((1 - p_t)/(n_t p_t) + (1 - p_c)/(n_c p_c))
        -> (exp(log(p_t/p_c) ∓ z·se) - 1)

    lift is nan when ctr_c = 0; the interval is nan when either ctr is 0 or n is 0.
    """
    if ctr_c <= 0:
        return Lift(math.nan, math.nan, math.nan)
    lift = ctr_t / ctr_c - 1.0
    if ctr_t <= 0 or n_t <= 0 or n_c <= 0:
        return Lift(lift, math.nan, math.nan)
    se = math.sqrt((1 - ctr_t) / (n_t * ctr_t) + (1 - ctr_c) / (n_c * ctr_c))
    log_ratio = math.log(ctr_t / ctr_c)
    return Lift(lift, math.exp(log_ratio - z * se) - 1.0, math.exp(log_ratio + z * se) - 1.0)


def _resampled_ctr(clicks: np.ndarray, exposures: np.ndarray, n_resamples: int,
                   rng: np.random.Generator) -> np.ndarray:
    """[n_resamples] ratios Σ W_u clicks_u / Σ W_u exposures_u, W ~ Multinomial(U, 1/U) (users with replacement);
    drawn in chunks so memory stays ~16 MB whatever U."""
    n_users = len(clicks)
    chunk = max(1, 2_000_000 // n_users)
    out = []
    for start in range(0, n_resamples, chunk):
        size = min(chunk, n_resamples - start)
        weights = rng.multinomial(n_users, np.full(n_users, 1.0 / n_users), size=size).astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            out.append((weights @ clicks) / (weights @ exposures))
    return np.concatenate(out)


def bootstrap_lift(clicks_t: Sequence[float], exposures_t: Sequence[float], clicks_c: Sequence[float],
                   exposures_c: Sequence[float], n_resamples: int = 1000, seed: int = 0,
                   alpha: float = 0.05) -> tuple[float, float]:
    """Percentile interval of ctr_t / ctr_c - 1 by resampling users within each arm (Efron & Tibshirani 1993,
    §13; the cluster bootstrap: a user's exposures move together).

    clicks_*, exposures_*: [U_arm] per-user totals. Each resample draws U users with replacement in each arm
    independently, CTR = Σ clicks / Σ exposures of the drawn users; resamples with a 0 control CTR are dropped.
    -> (alpha/2, 1 - alpha/2) quantiles; (nan, nan) when nothing is left.
    """
    ct, et = np.asarray(clicks_t, np.float64), np.asarray(exposures_t, np.float64)
    cc, ec = np.asarray(clicks_c, np.float64), np.asarray(exposures_c, np.float64)
    if len(ct) == 0 or len(cc) == 0:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    ratio_t = _resampled_ctr(ct, et, n_resamples, rng)
    ratio_c = _resampled_ctr(cc, ec, n_resamples, rng)
    ok = np.isfinite(ratio_t) & np.isfinite(ratio_c) & (ratio_c > 0)
    if not ok.any():
        return math.nan, math.nan
    lifts = ratio_t[ok] / ratio_c[ok] - 1.0
    lo, hi = np.quantile(lifts, [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi)


def srm_chi_square(observed_counts: Sequence[int], expected_weights: Sequence[float]) -> Srm:
    """Pearson's chi-square goodness of fit of the users per arm to the configured weights, the standard
    sample-ratio-mismatch test (Fabijan et al., KDD 2019, "Diagnosing Sample Ratio Mismatch"):

        E_i = N w_i / Σw,  chi2 = Σ (O_i - E_i)² / E_i,  dof = arms - 1,  p = P(χ²(dof) ≥ chi2)

    Every weight must be > 0 (leave zero-weight arms out); one arm gives (0, 0, 1).
    """
    if len(observed_counts) != len(expected_weights):
        raise ValueError(f"{len(observed_counts)} counts for {len(expected_weights)} weights")
    if any(w <= 0 for w in expected_weights):
        raise ValueError("every expected weight must be > 0; leave zero-weight arms out")
    total, weight_sum = sum(observed_counts), sum(expected_weights)
    if total <= 0:
        raise ValueError("no observations")
    dof = len(observed_counts) - 1
    if dof == 0:
        return Srm(0.0, 0, 1.0)
    expected = [total * w / weight_sum for w in expected_weights]
    chi2 = sum((o - e) ** 2 / e for o, e in zip(observed_counts, expected, strict=True))
    return Srm(chi2, dof, chi2_sf(chi2, dof))
