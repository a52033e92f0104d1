"""The evaluation protocol for the BP family: every test metric has a 95 % interval and n,
equals a direct computation on the whole split, and the sample KLs are bias-corrected."""

from __future__ import annotations

import logging
import math

import pytest
import pytorch_lightning as pl
import torch
import torch.nn.functional as F

import zoo
from tests.common import quiet_trainer
from zoo.core.evaluation import fold
from zoo.hierarchical import bp
from zoo.hierarchical.data import contains
from zoo.hierarchical.diffusion import (
    bp_denoiser,
    kl_divergence,
    kl_estimate,
    sample,
    sample_quality,
)

logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)

DENOISING = (
    "loss",
    "mse",
    "leaf_acc",
    "bayes_mse",
    "mse_ratio",
    "bayes_leaf_acc",
    "train_overlap",
)
CLASSIFICATION = ("loss", "acc", "bayes_acc", "acc_ratio", "train_overlap")
SAMPLES = (
    "sample_grammatical",
    "sample_grammatical_l1",
    "sample_grammatical_l2",
    "sample_copy",
    "sample_kl_symbols",
    "sample_kl_root",
)


def _test(model: zoo.core.ZooModule, dm: pl.LightningDataModule) -> dict:
    return fold(quiet_trainer().test(model, datamodule=dm, verbose=False)[0])


def _half_width(res: dict, key: str) -> float:
    lo, hi = res[f"{key}_ci"]
    return (hi - lo) / 2


def _check_intervals(res: dict, keys: tuple[str, ...], n: int) -> None:
    for k in keys:
        lo, hi = res[f"test/{k}_ci"]
        assert lo <= res[f"test/{k}"] <= hi, k
        assert res[f"test/{k}_n"] == n, k


def _unet(n_test: int, seed: int = 3) -> tuple[dict, dict]:
    """Test metrics of an untrained unet_bp on n_test sequences, and the same metrics
    computed directly on the whole test split."""
    torch.manual_seed(0)
    model = zoo.create("unet_bp", depth=3, width=8)
    dm = zoo.create_datamodule(model, n_train=8, n_val=8, n_test=n_test, seed=seed)
    model.zoo_data_config = dict(dm.config)  # as recipes/train.py records the training data
    res = _test(model, dm)
    y, leaves, sigma, _ = dm.split("test")
    with torch.no_grad():
        out = model(y)
    clean = F.one_hot(leaves, 8).float()
    bayes = bp.bayes_denoiser(dm.grammar, y, sigma)
    mse, bayes_mse = ((out - clean) ** 2).mean(), ((bayes - clean) ** 2).mean()
    direct = {
        "loss": mse,
        "mse": mse,
        "leaf_acc": (out.argmax(-1) == leaves).float().mean(),
        "bayes_mse": bayes_mse,
        "mse_ratio": mse / bayes_mse,
        "bayes_leaf_acc": (bayes.argmax(-1) == leaves).float().mean(),
        "train_overlap": contains(dm.split("train")[1], leaves).float().mean(),
    }
    return res, {k: float(v) for k, v in direct.items()}


def test_unet_metrics_have_intervals_equal_direct_values_and_shrink_with_n() -> None:
    small, direct = _unet(256)
    _check_intervals(small, DENOISING, 256)
    for k in DENOISING:
        assert small[f"test/{k}"] == pytest.approx(direct[k], rel=1e-5), k
    large, _ = _unet(2048)
    _check_intervals(large, DENOISING, 2048)
    for k in DENOISING:  # 8× the examples: about 1/√8 ≈ 0.35 of the width
        assert 0 < _half_width(large, f"test/{k}") < 0.6 * _half_width(small, f"test/{k}"), k


def test_validation_logs_values_only_and_the_monitor() -> None:
    model = zoo.create("unet_bp", depth=2, width=8)
    dm = zoo.create_datamodule(model, n_train=8, n_val=64, n_test=8)
    res = quiet_trainer().validate(model, datamodule=dm, verbose=False)[0]
    assert model.monitor in res
    assert {f"val/{k}" for k in DENOISING} == set(res)  # no _ci_lo / _ci_hi / _n on val


def test_convnet_metrics_have_intervals_equal_direct_values_and_shrink_with_n() -> None:
    data = {"grammar": "dirichlet", "n_symbols": 3, "n_train": 8, "n_val": 8}
    widths = {}
    for n in (256, 2048):
        torch.manual_seed(0)
        model = zoo.create("convnet_bp", depth=3, n_symbols=3, width=8)
        dm = zoo.create_datamodule(model, n_test=n, seed=5, **data)
        model.zoo_data_config = dict(dm.config)
        res = _test(model, dm)
        _check_intervals(res, CLASSIFICATION, n)
        leaves, root = dm.split("test")
        with torch.no_grad():
            logits = model(leaves)
        acc = (logits.argmax(-1) == root).float().mean()
        bayes = bp.bayes_accuracy(dm.grammar, leaves, root).mean()
        direct = {
            "loss": F.cross_entropy(logits, root),
            "acc": acc,
            "bayes_acc": bayes,
            "acc_ratio": acc / bayes,
            "train_overlap": contains(dm.split("train")[0], leaves).float().mean(),
        }
        for k, v in direct.items():
            assert res[f"test/{k}"] == pytest.approx(float(v), rel=1e-5), k
        widths[n] = {k: _half_width(res, f"test/{k}") for k in CLASSIFICATION}
    for k in CLASSIFICATION:
        assert 0 < widths[2048][k] < 0.6 * widths[256][k], k


def test_train_overlap_counts_training_sequences_among_the_evaluated() -> None:
    model = zoo.create("convnet_bp", depth=3, width=8)
    dm = zoo.create_datamodule(model, n_train=64, n_val=8, n_test=512, seed=2)
    leaves = dm.split("test")[0]
    model.on_train_split((leaves[:256], dm.split("test")[1][:256]))  # "trained" on test data
    res = _test(model, dm)
    expect = contains(leaves[:256], leaves).double().mean().item()
    assert expect >= 0.5 and res["test/train_overlap"] == pytest.approx(expect)


def _oracle_sigma_unet(diffusion_samples: int) -> tuple[zoo.core.ZooModule, pl.LightningDataModule]:
    """unet_bp_sigma whose forward is the exact BP denoiser (near-perfect diffusion samples)."""
    model = zoo.create(
        "unet_bp_sigma", depth=3, width=8, diffusion_samples=diffusion_samples, diffusion_steps=20
    )
    dm = zoo.create_datamodule(model, n_train=8, n_val=8, n_test=64, seed=11)
    model.zoo_data_config = dict(dm.config)  # as recipes/train.py records the training data
    oracle = bp_denoiser(dm.grammar)
    model.forward = lambda y, sigma=None: oracle(y, sigma)  # type: ignore[method-assign]
    return model, dm


def test_sample_metrics_are_per_sample_estimates_equal_to_a_direct_computation() -> None:
    model, dm = _oracle_sigma_unet(128)
    res = _test(model, dm)
    _check_intervals(res, SAMPLES, 128)
    _check_intervals(res, DENOISING, 64)
    # the same draw: the generator is seeded by the data seed
    leaves = sample(
        model,
        n=128,
        n_leaves=8,
        n_symbols=8,
        steps=20,
        generator=torch.Generator().manual_seed(11),
    )
    grammar = dm.grammar
    ok = bp.is_grammatical(grammar, leaves)
    assert res["test/sample_grammatical"] == pytest.approx(ok.double().mean().item())
    levels = bp.level_grammatical(grammar, leaves).double().mean(0)
    assert res["test/sample_grammatical_l2"] == pytest.approx(levels[2].item())
    assert res["test/sample_grammatical_l1"] == pytest.approx(levels[1].item())
    train = dm.split("train")[1]
    assert res["test/sample_copy"] == pytest.approx(contains(train, leaves).double().mean().item())
    # root KL: plug-in minus Miller–Madow (K̂ − 1) / 2(n − 1) over the grammatical samples
    counts = torch.bincount(bp.root_posterior(grammar, leaves[ok]).argmax(-1), minlength=8)
    n_ok = int(ok.sum())
    kl_root = kl_divergence(counts / n_ok, grammar.root_prior)
    kl_root -= (int((counts > 0).sum()) - 1) / (2 * (n_ok - 1))
    assert res["test/sample_kl_root"] == pytest.approx(kl_root, rel=1e-6, abs=1e-12)
    # symbol KL: plug-in minus ½ Σ_s Var(p̂_s) / p̂_s, Var from the per-sequence histograms
    freq = F.one_hot(leaves, 8).double().mean(1)  # (n, S)
    p = freq.mean(0)
    kl_sym = kl_divergence(p, bp.leaf_marginals(grammar).mean(0))
    kl_sym -= 0.5 * float((freq.var(0) / len(freq) / p).sum())
    assert res["test/sample_kl_symbols"] == pytest.approx(kl_sym, rel=1e-6, abs=1e-12)
    q = sample_quality(grammar, leaves, train)
    assert q == pytest.approx({k[7:]: res[f"test/{k}"] for k in SAMPLES})
    more = _test(_oracle_sigma_unet(1024)[0], dm)
    for k in ("sample_kl_symbols", "sample_kl_root"):
        assert 0 < _half_width(more, f"test/{k}") < _half_width(res, f"test/{k}"), k


def test_kl_bias_correction_removes_the_plug_in_bias() -> None:
    """Over many small draws, the plug-in KL of an empirical distribution overshoots the
    truth by ≈ (K − 1)/2n; the corrected estimate is unbiased to within noise, for i.i.d.
    categorical draws (roots) and for correlated ones (the leaves of one sequence)."""
    g = torch.Generator().manual_seed(0)
    p = torch.tensor([0.4, 0.3, 0.2, 0.1], dtype=torch.float64)
    q = torch.full((4,), 0.25, dtype=torch.float64)
    truth = kl_divergence(p, q)
    n, reps = 40, 4000
    draws = torch.multinomial(p.expand(reps, -1), n, replacement=True, generator=g)
    onehot = F.one_hot(draws, 4).double()  # (reps, n, K)
    w = torch.full((1, n), 1.0 / n, dtype=torch.float64)
    corrected = torch.tensor([float(kl_estimate(w, x, q)[0]) for x in onehot])
    plug_in = torch.tensor([kl_divergence(x.mean(0), q) for x in onehot])
    se = float(corrected.std()) / math.sqrt(reps)
    assert float(plug_in.mean()) - truth == pytest.approx(3 / (2 * n), rel=0.25)
    assert abs(float(corrected.mean()) - truth) < 4 * se

    grammar = zoo.create_datamodule("unet_bp", depth=3).grammar
    marg = bp.leaf_marginals(grammar).mean(0)
    plug, corr = [], []
    for _ in range(300):
        leaves, _ = grammar.sample(32, g)
        quality = sample_quality(grammar, leaves)
        corr.append(quality["kl_symbols"])
        plug.append(kl_divergence(F.one_hot(leaves, 8).double().mean((0, 1)), marg))
    corr_t, plug_t = torch.tensor(corr), torch.tensor(plug)
    se = float(corr_t.std()) / math.sqrt(len(corr))
    assert float(plug_t.mean()) > 20 * se  # measured: 0.012, 29 standard errors
    assert abs(float(corr_t.mean())) < 4 * se


def test_card_shows_values_with_intervals() -> None:
    model = zoo.create("unet_bp_sigma", depth=3)
    model.zoo_data_config = zoo.create_datamodule(model).config
    metrics = {}
    for k, v in {
        "mse": 0.05,
        "bayes_mse": 0.048,
        "mse_ratio": 1.04,
        "sample_kl_root": 0.03,
    }.items():
        metrics |= {f"test/{k}": v, f"test/{k}_ci": [v * 0.9, v * 1.1], f"test/{k}_n": 2048}
    card = model.model_card_extra(metrics)
    assert "| mse | 0.05 [0.045, 0.055], n = 2048 | 0.048 [0.0432, 0.0528], n = 2048 |" in card
    assert "`mse_ratio` = 1.04 [0.936, 1.144], n = 2048" in card
    assert "`sample_kl_root` = 0.03 [0.027, 0.033], n = 2048" in card
    assert "Miller–Madow" in card and "leaf_acc" not in card  # rows only for measured pairs


def test_kl_estimate_is_nan_for_a_weighting_that_keeps_no_example() -> None:
    """A bootstrap resample without a grammatical sample has no root KL (left out of the
    interval), rather than a spurious 0."""
    w = torch.tensor([[0.5, 0.5], [1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    f = torch.eye(2, dtype=torch.float64)
    kl = kl_estimate(w, f, torch.tensor([0.5, 0.5]), keep=torch.tensor([1.0, 0.0]))
    assert kl[:2].tolist() == pytest.approx([math.log(2)] * 2)  # one kept example: no correction
    assert math.isnan(kl[2])
