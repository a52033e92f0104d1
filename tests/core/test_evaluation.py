"""The evaluation protocol: bootstrap intervals, weighted statistics, folding, pooling."""

from __future__ import annotations

import math

import pytest
import torch

from zoo.core.evaluation import (
    Columns,
    Estimate,
    bootstrap,
    estimates,
    flat,
    fold,
    format_metric,
    log10_summary,
    mean,
    pool,
    proportion,
    ratio,
    uncertain_keys,
    wmedian,
    wstd,
)


def _normal(n: int, seed: int, loc: float = 1.0) -> torch.Tensor:
    return torch.randn(n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) + loc


def test_value_is_the_statistic_of_the_full_split() -> None:
    x, y = _normal(500, 0), _normal(500, 1, loc=3.0)
    est = bootstrap({"x": x, "y": y}, {"m": mean("x"), "r": ratio("x", "y", scale=2.0)})
    assert est["m"].value == pytest.approx(float(x.mean()))
    assert est["r"].value == pytest.approx(2 * float(x.mean() / y.mean()))
    assert all(e.n == 500 and e.lo <= e.value <= e.hi for e in est.values())


def test_interval_of_a_mean_matches_the_normal_theory_width() -> None:
    x = _normal(4000, 2)
    est = bootstrap({"x": x}, {"m": mean("x")})["m"]
    expected = 1.96 * float(x.std()) / math.sqrt(len(x))
    assert est.half_width == pytest.approx(expected, rel=0.1)


def test_intervals_cover_the_true_mean_about_95_percent_of_the_time() -> None:
    hits = 0
    trials = 200
    for t in range(trials):
        x = _normal(200, 100 + t, loc=0.5)
        est = bootstrap({"x": x}, {"m": mean("x")}, resamples=400, seed=t)["m"]
        hits += est.lo <= 0.5 <= est.hi
    assert 0.89 <= hits / trials <= 0.99  # binomial(200, 0.95) stays in [0.91, 0.98] w.p. ~0.999


def test_interval_shrinks_with_n() -> None:
    small = bootstrap({"x": _normal(100, 3)}, {"m": mean("x")})["m"]
    large = bootstrap({"x": _normal(10_000, 3)}, {"m": mean("x")})["m"]
    assert large.half_width < small.half_width / 5


def test_resampling_is_seeded() -> None:
    cols = {"x": _normal(300, 4)}
    a = bootstrap(cols, {"m": mean("x")}, seed=7)["m"]
    b = bootstrap(cols, {"m": mean("x")}, seed=7)["m"]
    c = bootstrap(cols, {"m": mean("x")}, seed=8)["m"]
    assert a == b and (a.lo, a.hi) != (c.lo, c.hi)


def test_ratio_is_resampled_jointly() -> None:
    """num = 2 * den per example: the ratio is exactly 2 in every resample (zero width),
    which independent resampling of the two means would not give."""
    den = _normal(1000, 5, loc=4.0)
    est = bootstrap({"num": 2 * den, "den": den}, {"r": ratio("num", "den")})["r"]
    assert est.value == pytest.approx(2.0) and est.half_width < 1e-12


def test_weighted_median_and_std() -> None:
    x = torch.tensor([5.0, 1.0, 3.0, 2.0, 4.0], dtype=torch.float64)
    w = torch.full((1, 5), 0.2, dtype=torch.float64)
    assert float(wmedian(w, x)[0]) == 3.0
    assert float(wstd(w, x)[0]) == pytest.approx(float(x.std(unbiased=False)))
    # all the weight on one example: median and mean are that example
    w1 = torch.tensor([[0.0, 0.0, 0.0, 1.0, 0.0]], dtype=torch.float64)
    assert float(wmedian(w1, x)[0]) == 2.0


def test_log10_summary_is_the_papers_statistic() -> None:
    x = 10 ** _normal(400, 6, loc=-1.0)  # log10 x ~ N(-1, 1)
    est = bootstrap({"x": x}, {k: f for k, f in log10_summary("x").items()})
    logx = torch.log10(x)
    assert est["log10_mean"].value == pytest.approx(float(logx.mean()))
    assert est["log10_std"].value == pytest.approx(float(logx.std(unbiased=False)))
    assert est["median"].value == pytest.approx(float(x.sort().values[199]))
    assert est["log10_mean"].lo < -1.0 < est["log10_mean"].hi


def test_non_finite_statistic_keeps_a_nan_interval() -> None:
    est = bootstrap({"x": torch.zeros(10)}, {"r": ratio("x", "x")})["r"]
    assert math.isnan(est.value) and math.isnan(est.lo)


def test_no_resamples_gives_a_point_interval() -> None:
    est = bootstrap({"x": _normal(10, 7)}, {"m": mean("x")}, resamples=0)["m"]
    assert est.lo == est.value == est.hi


def test_bad_columns_are_refused() -> None:
    with pytest.raises(ValueError, match="one non-zero length"):
        bootstrap({"a": torch.zeros(3), "b": torch.zeros(4)}, {"m": mean("a")})
    with pytest.raises(ValueError, match="one non-zero length"):
        bootstrap({"a": torch.zeros(0)}, {"m": mean("a")})


def test_pool_is_the_bootstrap_of_the_concatenation() -> None:
    a, b = {"x": _normal(100, 8)}, {"x": _normal(300, 9)}
    pooled = pool([a, b], {"m": mean("x")})["m"]
    direct = bootstrap({"x": torch.cat([a["x"], b["x"]])}, {"m": mean("x")})["m"]
    assert pooled == direct and pooled.n == 400
    with pytest.raises(ValueError, match="same columns"):
        pool([a, {"y": b["x"]}], {"m": mean("x")})


def test_fold_and_estimates_round_trip() -> None:
    est = Estimate(0.5, 0.4, 0.6, 1000)
    logged = {**flat("test/acc", est), "test/loss": 0.25}
    metrics = fold(logged)
    assert metrics == {
        "test/acc": 0.5,
        "test/acc_ci": [0.4, 0.6],
        "test/acc_n": 1000,
        "test/loss": 0.25,
    }
    assert estimates(metrics) == {"test/acc": est}
    assert uncertain_keys(metrics) == ["test/loss"]
    assert format_metric(metrics, "test/acc") == "0.5 [0.4, 0.6], n = 1000"
    assert format_metric(metrics, "test/loss") == "0.25"
    assert format_metric(metrics, "missing") == ""


def test_columns_accumulate_and_check_names() -> None:
    cols = Columns(["se", "y2"])
    cols.update(se=torch.ones(3), y2=torch.full((3,), 2.0))
    cols.update(se=torch.zeros(2), y2=torch.ones(2))
    assert cols.n == 5
    out = cols.compute()
    assert out["se"].tolist() == [1, 1, 1, 0, 0] and out["se"].dtype == torch.float64
    with pytest.raises(ValueError, match="expects"):
        cols.update(se=torch.ones(1))
    with pytest.raises(ValueError, match="differ in length"):
        cols.update(se=torch.ones(1), y2=torch.ones(2))
    cols.reset()
    assert cols.n == 0


def test_a_perfect_proportion_gets_the_clopper_pearson_interval() -> None:
    ones, zeros = torch.ones(100), torch.zeros(100)
    est = bootstrap({"a": ones, "z": zeros}, {"acc": proportion("a"), "err": proportion("z")})
    assert (est["acc"].lo, est["acc"].hi) == (pytest.approx(0.025**0.01), 1.0)
    assert (est["err"].lo, est["err"].hi) == (0.0, pytest.approx(1 - 0.025**0.01))
    # a plain mean of the same column keeps the (degenerate) bootstrap interval
    assert bootstrap({"a": ones}, {"m": mean("a")})["m"].half_width < 1e-12
    # with spread, a proportion is an ordinary bootstrap mean
    mixed = torch.tensor([0.0, 1.0] * 50)
    a = bootstrap({"a": mixed}, {"p": proportion("a")})["p"]
    b = bootstrap({"a": mixed}, {"m": mean("a")})["m"]
    assert (a.lo, a.hi) == (b.lo, b.hi)
