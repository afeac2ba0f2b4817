"""The chi-square survival function against table values and closed forms."""

from __future__ import annotations

import math

import pytest

from serving.abtest.special import chi2_sf, regularized_gamma_q


@pytest.mark.timeout(10)
@pytest.mark.parametrize(("x", "dof", "p"), [
    (3.841, 1, 0.05), (6.635, 1, 0.01), (10.828, 1, 0.001),   # chi-square table, dof 1
    (5.991, 2, 0.05), (9.210, 2, 0.01), (13.816, 2, 0.001),   # dof 2
    (7.815, 3, 0.05), (11.070, 5, 0.05), (18.307, 10, 0.05), (23.209, 10, 0.01),
])
def test_chi2_sf_matches_table_values(x, dof, p):
    assert chi2_sf(x, dof) == pytest.approx(p, rel=2e-3)  # table values have 3 decimals


@pytest.mark.timeout(10)
@pytest.mark.parametrize("x", [0.01, 0.5, 1.0, 3.0, 8.0, 30.0, 80.0])
def test_chi2_sf_matches_closed_forms_of_dof_1_and_2(x):
    assert chi2_sf(x, 1) == pytest.approx(math.erfc(math.sqrt(x / 2)), rel=1e-12)  # P(|Z| >= sqrt(x))
    assert chi2_sf(x, 2) == pytest.approx(math.exp(-x / 2), rel=1e-12)


@pytest.mark.timeout(10)
def test_regularized_gamma_q_edges():
    assert regularized_gamma_q(3.0, 0.0) == 1.0
    assert regularized_gamma_q(3.0, math.inf) == 0.0
    assert regularized_gamma_q(1.0, 2.0) == pytest.approx(math.exp(-2.0), rel=1e-13)  # Q(1, x) = e^-x
    assert chi2_sf(0.0, 4) == 1.0
    # Q(a, x) for integer a: e^-x Σ_{k<a} x^k / k!  ->  a = 3, x = 2: e^-2 (1 + 2 + 2) = 0.676676
    assert regularized_gamma_q(3.0, 2.0) == pytest.approx(5 * math.exp(-2.0), rel=1e-13)
    with pytest.raises(ValueError):
        chi2_sf(1.0, 0)
    with pytest.raises(ValueError):
        regularized_gamma_q(0.0, 1.0)
