"""The chi-square survival function from the regularized upper incomplete gamma function, `math` only.

    chi2_sf(x, dof) = Q(dof / 2, x / 2)                          (Abramowitz & Stegun 26.4.19)
    Q(a, x) = Γ(a, x) / Γ(a) = 1 - P(a, x)

P by its series for x < a + 1, Q by its continued fraction (modified Lentz) otherwise, as in Numerical Recipes
(3rd ed., §6.2, `gser` / `gcf`): each converges fast on its side, so both reach ~1e-15 relative accuracy.
"""

from __future__ import annotations

import math

_EPS = 1e-15
_TINY = 1e-300
_MAX_ITER = 10_000


def _prefactor(a: float, x: float) -> float:
    """x^a e^-x / Γ(a), computed in logs."""
    return math.exp(a * math.log(x) - x - math.lgamma(a))


def _lower_series(a: float, x: float) -> float:
    """P(a, x) = x^a e^-x / Γ(a) · Σ_{n≥0} x^n / (a (a+1) … (a+n))   (NR §6.2, Eq. 6.2.5); for x < a + 1."""
    term = total = 1.0 / a
    denom = a
    for _ in range(_MAX_ITER):
        denom += 1.0
        term *= x / denom
        total += term
        if abs(term) < abs(total) * _EPS:
            break
    return total * _prefactor(a, x)


def _upper_fraction(a: float, x: float) -> float:
    """Q(a, x) = x^a e^-x / Γ(a) · 1/(x+1-a- 1(1-a)/(x+3-a- 2(2-a)/(x+5-a- …)))   (NR §6.2, Eq. 6.2.7,
    modified Lentz); for x ≥ a + 1."""
    b = x + 1.0 - a
    c = 1.0 / _TINY
    d = 1.0 / b
    h = d
    for i in range(1, _MAX_ITER):
        an = -i * (i - a)
        b += 2.0
        d = an * d + b
        d = _TINY if abs(d) < _TINY else d
        c = b + an / c
        c = _TINY if abs(c) < _TINY else c
        d = 1.0 / d
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < _EPS:
            break
    return h * _prefactor(a, x)


def regularized_gamma_q(a: float, x: float) -> float:
    """Q(a, x) = Γ(a, x) / Γ(a), the regularized upper incomplete gamma function; a > 0, x ≥ 0 (Q(a, 0) = 1)."""
    if a <= 0:
        raise ValueError(f"a must be > 0, got {a}")
    if x < 0:
        raise ValueError(f"x must be >= 0, got {x}")
    if x == 0:
        return 1.0
    if math.isinf(x):
        return 0.0
    if x < a + 1.0:
        return max(0.0, 1.0 - _lower_series(a, x))
    return _upper_fraction(a, x)


def chi2_sf(x: float, dof: int) -> float:
    """P(X ≥ x) for X ~ χ²(dof): Q(dof/2, x/2) (A&S 26.4.19). dof ≥ 1; x ≤ 0 gives 1."""
    if dof < 1:
        raise ValueError(f"dof must be >= 1, got {dof}")
    return 1.0 if x <= 0 else regularized_gamma_q(dof / 2.0, x / 2.0)
