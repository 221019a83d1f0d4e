"""Bootstrap confidence intervals for rates (refusal rate, attack success, accuracy).

The percentile bootstrap (Efron & Tibshirani, *An Introduction to the Bootstrap*, 1993,
ch. 13): resample the N per-item values with replacement ``n_boot`` times, take the
mean of each resample, and report the ``alpha/2`` and ``1 - alpha/2`` quantiles of those
means.  Resampling is vectorised with numpy and done in chunks, so memory stays bounded
for large N.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

__all__ = ["CI_BELOW_N", "RateSummary", "bootstrap_ci", "bootstrap_diff_ci", "counts_rate", "format_rate", "rate_summary"]

#: A printed rate carries its 95% CI when it rests on fewer items than this: below 100 items the
#: interval is wider than about +-0.1, too wide to read a rate without it.
CI_BELOW_N = 100

_CHUNK_ELEMENTS = 2_000_000  # indices drawn per chunk (about 16 MB of int64)


def _as_array(values: Sequence[float | bool], name: str = "values") -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} is empty: a confidence interval needs at least one value")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite entries")
    return arr


def _check(n_boot: int, alpha: float) -> None:
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")


def _boot_means(arrs: Sequence[np.ndarray], n_boot: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Means of ``n_boot`` resamples; all arrays share the same resampled indices."""
    n = arrs[0].size
    rows_per_chunk = max(1, _CHUNK_ELEMENTS // n)
    outs = [np.empty(n_boot) for _ in arrs]
    for lo in range(0, n_boot, rows_per_chunk):
        hi = min(n_boot, lo + rows_per_chunk)
        idx = rng.integers(0, n, size=(hi - lo, n))
        for arr, out in zip(arrs, outs):
            out[lo:hi] = arr[idx].mean(axis=1)
    return outs


def _interval(point: float, boots: np.ndarray, alpha: float) -> tuple[float, float, float]:
    low, high = np.quantile(boots, [alpha / 2.0, 1.0 - alpha / 2.0])
    # The percentile interval of a mean contains the point estimate except in freak
    # resampling draws; clamp so callers can rely on low <= point <= high.
    return float(point), float(min(low, point)), float(max(high, point))


def bootstrap_ci(
    values: Sequence[float | bool],
    n_boot: int = 2000,
    alpha: float = 0.05,
    seed: int = 0,
) -> tuple[float, float, float]:
    """Percentile-bootstrap CI of the mean of ``values``: ``(point, low, high)``.

    ``values`` may be booleans (a rate) or floats.  Deterministic for a given ``seed``.
    """
    _check(n_boot, alpha)
    arr = _as_array(values)
    (boots,) = _boot_means([arr], n_boot, np.random.default_rng(seed))
    return _interval(float(arr.mean()), boots, alpha)


def bootstrap_diff_ci(
    a: Sequence[float | bool],
    b: Sequence[float | bool],
    n_boot: int = 2000,
    alpha: float = 0.05,
    seed: int = 0,
    paired: bool = True,
) -> tuple[float, float, float]:
    """CI of ``mean(a) - mean(b)``.

    ``paired=True`` (same items under two conditions, e.g. steered vs. unsteered)
    resamples items jointly; ``paired=False`` resamples each sample on its own.
    """
    _check(n_boot, alpha)
    xa, xb = _as_array(a, "a"), _as_array(b, "b")
    rng = np.random.default_rng(seed)
    if paired:
        if xa.size != xb.size:
            raise ValueError(f"paired samples need equal lengths, got {xa.size} and {xb.size}")
        ma, mb = _boot_means([xa, xb], n_boot, rng)
    else:
        (ma,) = _boot_means([xa], n_boot, rng)
        (mb,) = _boot_means([xb], n_boot, rng)
    return _interval(float(xa.mean() - xb.mean()), ma - mb, alpha)


@dataclass(frozen=True)
class RateSummary:
    """A rate with its bootstrap CI: ``k`` of ``n`` items, ``rate = k / n``."""

    n: int
    k: int
    rate: float
    low: float
    high: float
    alpha: float = 0.05

    def __str__(self) -> str:
        pct = int(round(100 * (1 - self.alpha)))
        return f"{self.rate:.3f} [{self.low:.3f}, {self.high:.3f}] ({pct}% CI, {self.k}/{self.n})"

    def as_dict(self) -> dict[str, float | int]:
        return {"n": self.n, "k": self.k, "rate": self.rate, "low": self.low,
                "high": self.high, "alpha": self.alpha}

    def short(self, *, percent: bool = False, with_n: bool = True) -> str:
        """Compact text for tables: the rate, its CI when ``n < CI_BELOW_N``, and ``n``."""
        return format_rate(self.rate, self.n, self.low, self.high, percent=percent, with_n=with_n)


def format_rate(
    rate: float | None,
    n: int,
    low: float | None = None,
    high: float | None = None,
    *,
    percent: bool = False,
    with_n: bool = True,
) -> str:
    """``0.19 [0.06-0.38] n=16`` (CI shown when ``n < CI_BELOW_N``), ``0.19 n=912``, ``-`` for no items.

    ``percent``: ``19% [6-38%] n=16``. Every printed rate says how many items it rests
    on, and a small-sample rate also how uncertain it is (95% percentile bootstrap).
    """
    if rate is None or n <= 0:
        return "-"

    def num(v: float) -> str:
        return f"{100 * v:.0f}" if percent else f"{v:.2f}"

    text = num(rate) + ("%" if percent else "")
    if n < CI_BELOW_N and low is not None and high is not None:
        text += f" [{num(low)}-{num(high)}{'%' if percent else ''}]"
    return text + (f" n={n}" if with_n else "")


def counts_rate(k: int, n: int, *, percent: bool = False, seed: int = 0) -> str:
    """:func:`format_rate` for ``k`` of ``n`` items (the CI bootstrapped from the counts)."""
    if n <= 0:
        return "-"
    return rate_summary([True] * k + [False] * (n - k), seed=seed).short(percent=percent)


def rate_summary(
    flags: Sequence[bool],
    n_boot: int = 2000,
    alpha: float = 0.05,
    seed: int = 0,
) -> RateSummary:
    """Summarise boolean outcomes (e.g. ``[v.refused for v in verdicts]``) as a rate + CI."""
    arr = _as_array(flags, "flags")
    if not np.all((arr == 0.0) | (arr == 1.0)):
        raise ValueError("rate_summary expects booleans (or 0/1 values)")
    point, low, high = bootstrap_ci(arr, n_boot=n_boot, alpha=alpha, seed=seed)
    return RateSummary(n=int(arr.size), k=int(arr.sum()), rate=point, low=low, high=high,
                       alpha=alpha)
