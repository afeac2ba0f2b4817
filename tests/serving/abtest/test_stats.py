"""Wilson, delta-method lift, user-bootstrap lift and the SRM chi-square against hand computations."""

from __future__ import annotations

import math

import pytest

from serving.abtest.stats import bootstrap_lift, relative_lift, srm_chi_square, wilson_interval


@pytest.mark.timeout(10)
def test_wilson_10_of_100_by_hand():
    # p = 0.1, z² = 3.8416, z²/n = 0.038416 -> denominator 1.038416
    # centre = (0.1 + 0.019208) / 1.038416 = 0.114798
    # half = 1.96 / 1.038416 * sqrt(0.0009 + 0.00009604) = 1.887491 * 0.0315601 = 0.059570
    lo, hi = wilson_interval(10, 100)
    assert lo == pytest.approx(0.055229, abs=1e-6)
    assert hi == pytest.approx(0.174367, abs=1e-6)


@pytest.mark.timeout(10)
def test_wilson_edges():
    assert wilson_interval(0, 0) == (0.0, 1.0)
    # 0/10: centre = 0.19208 / 1.38416 = 0.138770 = half (1.416021 * sqrt(3.8416/400)) -> [0, 0.277540]
    lo, hi = wilson_interval(0, 10)
    assert lo == pytest.approx(0.0, abs=1e-12) and hi == pytest.approx(0.277540, abs=1e-6)
    assert wilson_interval(10, 10)[1] == 1.0
    with pytest.raises(ValueError):
        wilson_interval(11, 10)


@pytest.mark.timeout(10)
def test_relative_lift_delta_method_by_hand():
    # p_t = 0.12, p_c = 0.10, n = 1000 each: lift 0.2
    # var = 0.88/120 + 0.9/100 = 0.0073333 + 0.009 = 0.0163333, se = 0.1278019, 1.96 se = 0.2504917
    # log 1.2 = 0.1823216 -> exp(-0.0681701) - 1 = -0.065899, exp(0.4328133) - 1 = 0.541588
    lift = relative_lift(0.12, 1000, 0.10, 1000)
    assert lift.lift == pytest.approx(0.2)
    assert lift.lo == pytest.approx(-0.065899, abs=1e-6)
    assert lift.hi == pytest.approx(0.541588, abs=1e-6)


@pytest.mark.timeout(10)
def test_relative_lift_undefined_cases():
    assert all(math.isnan(v) for v in relative_lift(0.1, 10, 0.0, 10))
    zero_t = relative_lift(0.0, 10, 0.1, 10)
    assert zero_t.lift == -1.0 and math.isnan(zero_t.lo) and math.isnan(zero_t.hi)


@pytest.mark.timeout(10)
def test_srm_chi_square_by_hand():
    # 60/40 against 50:50 -> E = 50, 50; chi2 = 100/50 + 100/50 = 4; p = erfc(sqrt(2)) = 0.0455003
    chi2, dof, p = srm_chi_square([60, 40], [50, 50])
    assert (chi2, dof) == (4.0, 1) and p == pytest.approx(0.0455003, abs=1e-7)
    # 30/30/40 against 1:1:2 -> E = 25, 25, 50; chi2 = 1 + 1 + 2 = 4; dof 2: p = e^-2 = 0.135335
    chi2, dof, p = srm_chi_square([30, 30, 40], [1, 1, 2])
    assert (chi2, dof) == (4.0, 2) and p == pytest.approx(0.135335, abs=1e-6)
    assert srm_chi_square([50, 50], [1, 1]) == (0.0, 1, 1.0)
    assert srm_chi_square([7], [1]) == (0.0, 0, 1.0)
    with pytest.raises(ValueError):
        srm_chi_square([5, 5], [1, 0])


@pytest.mark.timeout(10)
def test_bootstrap_lift_is_exact_for_identical_users_and_seeded():
    # every treatment user 1 click / 10 exposures, every control user 1 / 20: every resample gives 0.1/0.05 - 1 = 1
    assert bootstrap_lift([1] * 5, [10] * 5, [1] * 4, [20] * 4, n_resamples=50) == pytest.approx((1.0, 1.0))
    clicks_t, exp_t, clicks_c, exp_c = [0, 3, 1, 5], [10, 12, 8, 20], [1, 0, 2], [10, 9, 15]
    first = bootstrap_lift(clicks_t, exp_t, clicks_c, exp_c, n_resamples=200, seed=3)
    assert first == bootstrap_lift(clicks_t, exp_t, clicks_c, exp_c, n_resamples=200, seed=3)
    point = (9 / 50) / (3 / 34) - 1
    assert first[0] < point < first[1]
    assert all(math.isnan(v) for v in bootstrap_lift([], [], [1], [2]))
