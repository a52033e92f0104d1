"""The family's test metrics follow the evaluation protocol: every metric has a 95 % interval
and n, its value is the statistic of the whole test split, and the interval is honest."""

from __future__ import annotations

import math
from typing import Any

import pytest
import pytorch_lightning as pl
import torch

import zoo
from zoo.ansatz.base import STATISTICS, SetRegressor
from zoo.core.evaluation import bootstrap, fold

_SMALL = {
    "deepsets": {"width": 4, "hidden": 8},
    "relation_net": {"width": 4, "hidden": 8},
    "sym_single_index": {},
    "slater": {"n_dets": 2},
    "jastrow": {"n_dets": 2, "jastrow_hidden": 4},
    "backflow": {"n_dets": 2, "hidden": 6, "pair_hidden": 3},
}
_SET_METRICS = set(STATISTICS)


def _trainer() -> pl.Trainer:
    return pl.Trainer(
        logger=False, enable_progress_bar=False, enable_model_summary=False, accelerator="cpu"
    )


def _test(model: SetRegressor, **data: Any) -> dict[str, Any]:
    dm = zoo.create_datamodule(model, n_train=32, n_val=32, batch_size=64, **data)
    return fold(_trainer().test(model, datamodule=dm, verbose=False)[0])


def _model(name: str, seed: int = 0) -> SetRegressor:
    torch.manual_seed(seed)
    model = zoo.create(name, **_SMALL[name])
    assert isinstance(model, SetRegressor)
    return model


@pytest.mark.parametrize("name", list(_SMALL))
def test_every_test_metric_has_an_interval_and_n(name: str) -> None:
    metrics = _test(_model(name), n_test=200)
    expected = _SET_METRICS | ({"overlap"} if name == "sym_single_index" else set())
    assert {k.removeprefix("test/") for k in metrics if not k.endswith(("_ci", "_n"))} == expected
    for key in expected:
        v, (lo, hi), n = metrics[f"test/{key}"], metrics[f"test/{key}_ci"], metrics[f"test/{key}_n"]
        assert lo <= v <= hi, key
        assert n == (1 if key == "overlap" else 200), key


@pytest.mark.parametrize("name", ["relation_net", "jastrow", "backflow"])
def test_values_are_the_statistics_of_the_whole_test_split(name: str) -> None:
    """Independent of the protocol's code: the metrics from f and y of the test split."""
    model = _model(name)
    dm = zoo.create_datamodule(model, n_train=32, n_val=32, n_test=300, batch_size=64)
    metrics = fold(_trainer().test(model, datamodule=dm, verbose=False)[0])
    x, y = dm.split("test")[:2]
    with torch.no_grad():
        f = model(x).double()
    y = y.double()
    se = (f - y) ** 2
    log_se = torch.log10(se)
    direct = {
        "nmse": float(se.sum() / ((y - y.mean()) ** 2).sum()),
        "mse": float(se.mean()),
        "sq_err_log10_mean": float(log_se.mean()),
        "sq_err_log10_std": float(log_se.std(unbiased=False)),
        "sq_err_median": float(se.sort().values[(len(se) - 1) // 2]),
    }
    for key, want in direct.items():
        assert metrics[f"test/{key}"] == pytest.approx(want, rel=1e-5), key


def test_interval_shrinks_with_the_number_of_test_sets() -> None:
    model = _model("deepsets")
    small = _test(model, n_test=256)
    large = _test(model, n_test=4096)
    for key in _SET_METRICS:
        (lo_s, hi_s), (lo_l, hi_l) = small[f"test/{key}_ci"], large[f"test/{key}_ci"]
        assert hi_l - lo_l < (hi_s - lo_s) / 2, key  # √16 = 4 in theory
        assert large[f"test/{key}_n"] == 4096


def test_validation_logs_values_only_and_the_monitor() -> None:
    model = _model("slater")
    dm = zoo.create_datamodule(model, n_train=32, n_val=100, n_test=32, batch_size=64)
    logged = _trainer().validate(model, datamodule=dm, verbose=False)[0]
    assert set(logged) == {f"val/{k}" for k in _SET_METRICS}
    assert model.monitor in logged


def test_vector_outputs_pool_every_output_like_the_flattened_split() -> None:
    """(B, k) outputs: the per-set columns average the k outputs, and the statistics equal
    nmse and mse of the flattened (B·k) values."""
    g = torch.Generator().manual_seed(0)
    y = 5.0 + torch.randn(500, 3, generator=g, dtype=torch.float64)
    f = y + 0.3 * torch.randn(500, 3, generator=g, dtype=torch.float64)
    est = bootstrap(SetRegressor.set_columns(f, y), STATISTICS, resamples=0)
    flat_f, flat_y = f.flatten(), y.flatten()
    se = (flat_f - flat_y) ** 2
    ss_tot = ((flat_y - flat_y.mean()) ** 2).sum()
    assert est["mse"].value == pytest.approx(float(se.mean()))
    assert est["nmse"].value == pytest.approx(float(se.sum() / ss_tot))


def test_an_exact_fit_scores_the_float_resolution_not_minus_infinity() -> None:
    """sym_single_index at the planted β reproduces many labels to the last bit; those sets
    count as the float32 rounding error, so log₁₀(f − y)² stays a float32 number."""
    model = zoo.create("sym_single_index")
    beta = zoo.create_datamodule(model).target_params["beta"]
    with torch.no_grad():
        model.beta.copy_(torch.tensor(beta))
    metrics = _test(model, n_test=2000)
    assert metrics["test/nmse"] < 1e-6
    assert -20 < metrics["test/sq_err_log10_mean"] < -10  # float32: (2⁻²⁴ |y|)² ≈ 1e-15 |y|²
    assert math.isfinite(metrics["test/sq_err_log10_std"]) and metrics["test/sq_err_log10_std"] < 3


def test_overlap_is_a_point_value_independent_of_the_data_seed() -> None:
    """The overlap is a property of the weights and β* (fixed by target_params): the same on
    every data seed, reported with n = 1 and the interval [value, value]."""
    model = _model("sym_single_index")
    a, b = _test(model, n_test=64, seed=0), _test(model, n_test=64, seed=90210)
    assert (
        a["test/overlap"]
        == b["test/overlap"]
        == pytest.approx(model.overlap(zoo.create_datamodule(model).target_params["beta"]).item())
    )
    assert a["test/overlap_ci"] == [a["test/overlap"]] * 2 and a["test/overlap_n"] == 1
    assert a["test/nmse"] != b["test/nmse"]  # the set metrics do depend on the test sets


def test_model_card_shows_value_interval_and_n() -> None:
    model = _model("sym_single_index")
    metrics = _test(model, n_test=128)
    card = model.model_card_extra(metrics)
    assert all(f"| `test/{key}` |" in card for key in _SET_METRICS)
    nmse, (lo, hi) = metrics["test/nmse"], metrics["test/nmse_ci"]
    assert f"| `test/nmse` | {nmse:.4g} [{lo:.4g}, {hi:.4g}], n = 128 |" in card
    ov = metrics["test/overlap"]
    assert f"= {ov:.4g} [{ov:.4g}, {ov:.4g}], n = 1 " in card and "no sampling uncertainty" in card
    assert "| metric |" not in model.model_card_extra({})  # nothing measured: no table
