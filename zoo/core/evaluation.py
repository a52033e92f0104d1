"""The evaluation protocol: every reported metric is an estimate with a 95 % interval and n.

A model records, per evaluated example (a sample, a sequence, a graph), the columns its
metrics are computed from — squared error, target energy, a correct/incorrect indicator, a
per-graph log₁₀ NC1 — in a :class:`Columns` metric, and declares each metric as a
:data:`Statistic` of those columns. :func:`bootstrap` computes every statistic on the full
split (the reported value) and on ``resamples`` bootstrap resamples of the examples (the
percentile interval), resampling all columns of an example together so ratios of means
(``mse / bayes_mse``, ``1 − R²``) get the interval of the ratio, not of its parts.

Logged keys, for a metric ``x`` of stage ``test``: ``test/x`` (the value), ``test/x_ci_lo``,
``test/x_ci_hi`` and ``test/x_n`` (the number of resampled examples). :func:`fold` turns them
into the JSON form the recipes print and ``config.json`` stores::

    {"test/error": 0.0157, "test/error_ci": [0.0154, 0.0160], "test/error_n": 131072}

Pooling several evaluation seeds concatenates their columns and bootstraps once
(:func:`pool`), so the pooled value is the statistic of all examples together.

Written here rather than taken from a library: torchmetrics' ``BootStrapper`` resamples per
batch with Poisson weights and keeps one copy of the metric per resample (memory × resamples,
and batch-dependent), and scipy's ``bootstrap`` works on NumPy arrays one statistic at a time;
one weight matrix shared by all statistics of a split keeps them jointly resampled and costs
one matrix product per chunk.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from torchmetrics import Metric

__all__ = [
    "LEVEL",
    "RESAMPLES",
    "Columns",
    "Estimate",
    "Statistic",
    "bootstrap",
    "estimates",
    "flat",
    "fold",
    "format_metric",
    "log10_summary",
    "mean",
    "pool",
    "proportion",
    "ratio",
    "uncertain_keys",
    "wmean",
    "wmedian",
    "wstd",
]

#: confidence level of every reported interval
LEVEL = 0.95
#: bootstrap resamples per interval
RESAMPLES = 1000
# cap on the weight-matrix entries of one chunk of resamples (float64: 64 MiB)
_CHUNK_ENTRIES = 2**23

#: ``statistic(w, columns) -> (R,)``: the statistic under R example weightings ``w: (R, n)``
#: (rows sum to 1) of the columns ``{name: (n,)}``; ``w = 1/n`` everywhere is the plain value.
Statistic = Callable[[Tensor, Mapping[str, Tensor]], Tensor]


@dataclass(frozen=True)
class Estimate:
    """A metric's value with its ``level`` interval ``[lo, hi]`` over ``n`` examples."""

    value: float
    lo: float
    hi: float
    n: int

    @property
    def half_width(self) -> float:
        """Half the interval's width."""
        return (self.hi - self.lo) / 2

    def as_dict(self, key: str) -> dict[str, Any]:
        """``{key: value, key_ci: [lo, hi], key_n: n}``."""
        return {key: self.value, f"{key}_ci": [self.lo, self.hi], f"{key}_n": self.n}


# -- weighted statistics: building blocks for Statistic functions ---------------------------
def wmean(w: Tensor, x: Tensor) -> Tensor:
    """Weighted means ``(R,)`` of ``x: (n,)`` under ``w: (R, n)``."""
    return w @ x.to(w.dtype)


def wstd(w: Tensor, x: Tensor) -> Tensor:
    """Weighted (population) standard deviations ``(R,)`` of ``x: (n,)``."""
    m = wmean(w, x)
    return (wmean(w, x.pow(2)) - m.pow(2)).clamp_min(0).sqrt()


def wmedian(w: Tensor, x: Tensor) -> Tensor:
    """Weighted medians ``(R,)`` of ``x: (n,)``: the smallest x whose cumulative weight
    reaches 1/2."""
    order = torch.argsort(x)
    xs = x.to(w.dtype)[order]
    cum = w[:, order].cumsum(1)
    idx = torch.searchsorted(cum, torch.full((len(w), 1), 0.5 - 1e-12, dtype=w.dtype))
    return xs[idx.clamp_max(len(xs) - 1).squeeze(1)]


def mean(column: str) -> Statistic:
    """The mean of ``column``."""
    return lambda w, c: wmean(w, c[column])


def proportion(column: str) -> Statistic:
    """The mean of ``column``, whose values lie in [0, 1] (a success rate such as accuracy).

    When every example is 0 (or every one is 1) the resamples have no spread, and
    :func:`bootstrap` gives the exact Clopper–Pearson interval for 0 (or n) successes in n
    instead: ``[0, 1 − (α/2)^{1/n}]`` (or ``[(α/2)^{1/n}, 1]``), never a zero-width one.
    """

    def f(w: Tensor, c: Mapping[str, Tensor]) -> Tensor:
        return wmean(w, c[column])

    f.zoo_unit_interval = True  # type: ignore[attr-defined]
    return f


def ratio(num: str, den: str, scale: float = 1.0) -> Statistic:
    """``scale · mean(num) / mean(den)`` (a ratio of means, e.g. MSE / Bayes MSE)."""
    return lambda w, c: scale * wmean(w, c[num]) / wmean(w, c[den])


def log10_summary(column: str) -> dict[str, Statistic]:
    """Summaries of a heavy-tailed positive ``column`` (one value per graph, say): the mean
    and std of its log₁₀ (the papers' statistic) and its median, as ``{suffix: Statistic}``
    with suffixes ``log10_mean``, ``log10_std``, ``median``. Non-positive values count as
    log₁₀ of the smallest positive float (they are exact zeros of a collapse metric)."""

    def log10(c: Mapping[str, Tensor]) -> Tensor:
        x = c[column].double()
        return torch.log10(x.clamp_min(torch.finfo(torch.float64).tiny))

    return {
        "log10_mean": lambda w, c: wmean(w, log10(c)),
        "log10_std": lambda w, c: wstd(w, log10(c)),
        "median": lambda w, c: wmedian(w, c[column]),
    }


# -- per-example columns ---------------------------------------------------------------------
class Columns(Metric):
    """Per-example columns ``{name: (n,)}`` accumulated over an epoch's batches and
    concatenated across DDP processes (torchmetrics ``cat`` states)."""

    full_state_update = False

    def __init__(self, names: Sequence[str]) -> None:
        super().__init__()
        if not names:
            raise ValueError("Columns needs at least one column name")
        self.names = tuple(names)
        for name in self.names:
            self.add_state(name, default=[], dist_reduce_fx="cat")

    def update(self, **columns: Tensor) -> None:  # type: ignore[override]
        """Append one batch: every declared column, each ``(b,)`` (or ``(b, 1, ...)``, one
        value per example)."""
        if set(columns) != set(self.names):
            raise ValueError(f"Columns.update expects {sorted(self.names)}, got {sorted(columns)}")
        sizes = {len(v) for v in columns.values()}
        if len(sizes) != 1:
            raise ValueError(f"columns of one batch differ in length: {sizes}")
        for name, v in columns.items():
            getattr(self, name).append(v.detach().reshape(len(v)).double())

    def compute(self) -> dict[str, Tensor]:  # type: ignore[override]
        """``{name: (n,)}`` float64 on the metric's device."""
        out = {}
        for name in self.names:
            parts = getattr(self, name)
            if isinstance(parts, Tensor):  # after the DDP reduction: one tensor
                out[name] = parts
            else:
                out[name] = torch.cat(parts) if parts else torch.zeros(0, dtype=torch.float64)
        return out

    @property
    def n(self) -> int:
        """Examples accumulated so far."""
        parts = getattr(self, self.names[0])
        return len(parts) if isinstance(parts, Tensor) else sum(len(p) for p in parts)


# -- the bootstrap -----------------------------------------------------------------------------
def _resample_weights(n: int, r: int, gen: torch.Generator, device: torch.device) -> Tensor:
    """``(r, n)`` bootstrap weights: multinomial counts of n draws with replacement, / n."""
    idx = torch.randint(n, (r, n), generator=gen, device=device)
    w = torch.zeros(r, n, dtype=torch.float64, device=device)
    return w.scatter_add_(1, idx, torch.ones_like(idx, dtype=torch.float64)) / n


def bootstrap(
    columns: Mapping[str, Tensor],
    statistics: Mapping[str, Statistic],
    *,
    resamples: int = RESAMPLES,
    level: float = LEVEL,
    seed: int = 0,
) -> dict[str, Estimate]:
    """Value and percentile-bootstrap interval of every statistic, over the examples.

    Args:
        columns: ``{name: (n,)}`` per-example values (all of one length n >= 1).
        statistics: ``{metric: Statistic}``.
        resamples: bootstrap resamples (0: the interval is the value itself).
        level: confidence level of the intervals.
        seed: seed of the resampling (intervals are reproducible).

    Returns:
        ``{metric: Estimate}``; a statistic that is not finite on the full split keeps a NaN
        interval, and resamples where it is not finite are left out of the quantiles.
    """
    lengths = {len(v) for v in columns.values()}
    if len(lengths) != 1 or 0 in lengths:
        raise ValueError(f"bootstrap needs columns of one non-zero length, got {lengths}")
    (n,) = lengths
    cols = {k: v.double() for k, v in columns.items()}
    device = next(iter(cols.values())).device
    full = torch.full((1, n), 1.0 / n, dtype=torch.float64, device=device)
    values = {k: float(f(full, cols)[0]) for k, f in statistics.items()}
    if resamples <= 0:
        return {k: Estimate(v, v, v, n) for k, v in values.items()}
    gen = torch.Generator(device=device).manual_seed(seed)
    draws: dict[str, list[Tensor]] = {k: [] for k in statistics}
    chunk = max(1, min(resamples, _CHUNK_ENTRIES // n))
    for start in range(0, resamples, chunk):
        w = _resample_weights(n, min(chunk, resamples - start), gen, device)
        for k, f in statistics.items():
            draws[k].append(f(w, cols).reshape(-1))
    alpha = (1 - level) / 2
    out = {}
    for k, v in values.items():
        d = torch.cat(draws[k])
        d = d[torch.isfinite(d)]
        if not math.isfinite(v) or len(d) == 0:
            out[k] = Estimate(v, math.nan, math.nan, n)
            continue
        q = torch.tensor([alpha, 1 - alpha], dtype=d.dtype, device=device)
        lo, hi = (float(x) for x in torch.quantile(d, q))
        at_bound = min(abs(v), abs(1 - v)) < 1e-9
        if at_bound and hi - lo < 1e-9 and getattr(statistics[k], "zoo_unit_interval", False):
            edge = alpha ** (1 / n)  # Clopper–Pearson for 0 or n successes in n
            v = round(v)
            lo, hi = (0.0, 1 - edge) if v == 0 else (edge, 1.0)
        # Percentile intervals of a statistic that sits at a bound (accuracy 1.0) can miss it
        # by rounding; the interval always contains the value.
        out[k] = Estimate(v, min(lo, v), max(hi, v), n)
    return out


def pool(
    parts: Sequence[Mapping[str, Tensor]], statistics: Mapping[str, Statistic], **kwargs: Any
) -> dict[str, Estimate]:
    """:func:`bootstrap` over the concatenated columns of several evaluations (seeds)."""
    if not parts:
        raise ValueError("pool needs at least one evaluation")
    names = set(parts[0])
    if any(set(p) != names for p in parts):
        raise ValueError("pooled evaluations must record the same columns")
    cols = {k: torch.cat([p[k].to(parts[0][k].device) for p in parts]) for k in names}
    return bootstrap(cols, statistics, **kwargs)


def flat(key: str, estimate: Estimate) -> dict[str, float]:
    """The scalar keys a module logs for ``estimate`` of ``key`` (see :func:`fold`)."""
    return {
        key: estimate.value,
        f"{key}_ci_lo": estimate.lo,
        f"{key}_ci_hi": estimate.hi,
        f"{key}_n": float(estimate.n),
    }


def fold(results: Mapping[str, Any]) -> dict[str, Any]:
    """Logged scalars → reported metrics: ``x_ci_lo``/``x_ci_hi`` become ``x_ci: [lo, hi]``,
    ``x_n`` an int; other keys pass through as floats."""
    out: dict[str, Any] = {}
    for k, v in results.items():
        if k.endswith("_ci_lo") and f"{k[:-6]}_ci_hi" in results:
            out[f"{k[:-6]}_ci"] = [float(v), float(results[f"{k[:-6]}_ci_hi"])]
        elif k.endswith("_ci_hi") and f"{k[:-6]}_ci_lo" in results:
            continue
        elif k.endswith("_n") and k[:-2] in results and f"{k[:-2]}_ci_lo" in results:
            out[k] = round(float(v))
        else:
            out[k] = float(v) if isinstance(v, (int, float, Tensor)) else v
    return dict(sorted(out.items()))


def estimates(metrics: Mapping[str, Any]) -> dict[str, Estimate]:
    """The metrics of a folded dict that carry an interval, as :class:`Estimate` s."""
    out = {}
    for k, v in metrics.items():
        ci = metrics.get(f"{k}_ci")
        if isinstance(v, (int, float)) and isinstance(ci, (list, tuple)) and len(ci) == 2:
            out[k] = Estimate(float(v), float(ci[0]), float(ci[1]), int(metrics.get(f"{k}_n", 0)))
    return out


def format_metric(metrics: Mapping[str, Any], key: str, digits: int = 4) -> str:
    """``"0.0157 [0.0154, 0.0160], n = 131072"`` for ``key`` of a folded dict (just the value
    when it has no interval; ``""`` when the key is missing)."""
    v = metrics.get(key)
    if v is None:
        return ""
    if not isinstance(v, (int, float)):
        return str(v)
    text = f"{float(v):.{digits}g}"
    ci = metrics.get(f"{key}_ci")
    if isinstance(ci, (list, tuple)) and len(ci) == 2:
        text += f" [{float(ci[0]):.{digits}g}, {float(ci[1]):.{digits}g}]"
        if f"{key}_n" in metrics:
            text += f", n = {int(metrics[f'{key}_n'])}"
    return text


def uncertain_keys(metrics: Mapping[str, Any]) -> list[str]:
    """Metric keys of a folded dict that are numbers without an interval (not ``_ci``/``_n``)."""
    with_ci = set(estimates(metrics))
    return sorted(
        k
        for k, v in metrics.items()
        if isinstance(v, (int, float))
        and not isinstance(v, bool)
        and k not in with_ci
        and not (k.endswith("_n") and k[:-2] in with_ci)
    )
