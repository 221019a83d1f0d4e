"""Tests of the bootstrap statistics (steer.eval.stats)."""

from __future__ import annotations

import numpy as np
import pytest

from steer.eval.stats import RateSummary, bootstrap_ci, bootstrap_diff_ci, rate_summary


def _flags(n: int, p: float, seed: int = 1) -> list[bool]:
    return list(np.random.default_rng(seed).random(n) < p)


def test_ci_contains_point_estimate():
    for n, p in [(10, 0.3), (57, 0.9), (200, 0.5), (3, 0.0)]:
        vals = _flags(n, p)
        point, low, high = bootstrap_ci(vals)
        assert point == pytest.approx(np.mean(vals))
        assert 0.0 <= low <= point <= high <= 1.0


def test_ci_narrows_with_n():
    widths = []
    for n in (20, 200, 2000):
        _, low, high = bootstrap_ci(_flags(n, 0.4))
        widths.append(high - low)
    assert widths[0] > widths[1] > widths[2]
    # roughly the binomial standard error: 2 * 1.96 * sqrt(p(1-p)/n) at n = 2000
    assert widths[2] == pytest.approx(2 * 1.96 * np.sqrt(0.24 / 2000), rel=0.2)


def test_deterministic_with_seed():
    vals = _flags(100, 0.6)
    assert bootstrap_ci(vals, seed=3) == bootstrap_ci(vals, seed=3)
    assert bootstrap_ci(vals, seed=3) != bootstrap_ci(vals, seed=4)


def test_floats_alpha_and_constant_values():
    vals = [0.1, 0.5, 0.9, 0.4, 0.7]
    p, lo95, hi95 = bootstrap_ci(vals, alpha=0.05)
    _, lo50, hi50 = bootstrap_ci(vals, alpha=0.5)
    assert p == pytest.approx(0.52)
    assert lo95 <= lo50 <= hi50 <= hi95
    assert bootstrap_ci([1, 1, 1]) == (1.0, 1.0, 1.0)


def test_large_n_is_chunked_and_fast():
    vals = _flags(20_000, 0.3)
    point, low, high = bootstrap_ci(vals, n_boot=500)
    assert low < point < high


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"values": []}, "empty"),
        ({"values": [0.1, float("nan")]}, "NaN"),
        ({"values": [[1, 0]]}, "one-dimensional"),
        ({"values": [1, 0], "n_boot": 0}, "n_boot"),
        ({"values": [1, 0], "alpha": 1.5}, "alpha"),
    ],
)
def test_input_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        bootstrap_ci(**kwargs)


def test_rate_summary():
    s = rate_summary([True, False, True, True])
    assert isinstance(s, RateSummary)
    assert (s.n, s.k, s.rate) == (4, 3, 0.75)
    assert s.low <= s.rate <= s.high
    assert "3/4" in str(s) and "95% CI" in str(s)
    assert s.as_dict()["k"] == 3
    with pytest.raises(ValueError, match="booleans"):
        rate_summary([0.5, 1.0])


def test_diff_ci_paired_and_unpaired():
    a = _flags(300, 0.8, seed=5)
    b = _flags(300, 0.3, seed=6)
    d, lo, hi = bootstrap_diff_ci(a, b)
    assert d == pytest.approx(np.mean(a) - np.mean(b))
    assert 0 < lo <= d <= hi
    d2, lo2, hi2 = bootstrap_diff_ci(a, b[:200], paired=False)
    assert lo2 <= d2 <= hi2
    # identical samples: a paired difference is exactly zero
    assert bootstrap_diff_ci(a, a) == (0.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="equal lengths"):
        bootstrap_diff_ci(a, b[:10])
