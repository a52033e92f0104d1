"""unet_bp / convnet_bp: tree locality, σ-conditioning, BP-referenced metrics, training."""

from __future__ import annotations

import logging

import pytest
import pytorch_lightning as pl
import torch
import torch.nn.functional as F

import zoo
from tests.common import quiet_trainer
from zoo.hierarchical import bp
from zoo.hierarchical.diffusion import bp_denoiser, sample, sample_quality

logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)

SMALL = {"n_train": 256, "n_val": 128, "n_test": 128, "batch_size": 64}


def test_encoder_levels_follow_the_tree() -> None:
    """Encoder feature of node j at level ℓ depends exactly on the leaves of j's subtree."""
    torch.manual_seed(0)
    model = zoo.create("unet_bp", depth=3, width=16).eval()
    x = torch.randn(1, 8, 8)
    feats = model.encoder(x.transpose(1, 2))
    for level, n_nodes in ((1, 2), (2, 4)):
        span = 8 // n_nodes
        for j in range(n_nodes):
            x2 = x.clone()
            outside = [i for i in range(8) if not j * span <= i < (j + 1) * span]
            x2[0, outside] += torch.randn(len(outside), 8)
            f2 = model.encoder(x2.transpose(1, 2))[level]
            torch.testing.assert_close(f2[..., j], feats[level][..., j])
            x3 = x.clone()
            x3[0, j * span] += 1.0
            assert not torch.allclose(
                model.encoder(x3.transpose(1, 2))[level][..., j], feats[level][..., j]
            )


def test_skips_carry_leaf_information_the_bottleneck_loses() -> None:
    """With skips a leaf's output depends on its own input through a path avoiding the root."""
    torch.manual_seed(0)
    for skips in (True, False):
        model = zoo.create("unet_bp", depth=2, width=8, skips=skips).eval()
        y = torch.randn(3, 4, 8)
        out = model(y)
        assert out.shape == (3, 4, 8)
        torch.testing.assert_close(out.sum(-1), torch.ones(3, 4))  # softmax head: simplex
    # no-skip model: output is a function of the root code only
    model = zoo.create("unet_bp_noskip", depth=2, width=8).eval()
    assert (
        model.fuse[0][0].in_channels == 8
        and zoo.create("unet_bp", depth=2, width=8).fuse[0][0].in_channels == 16
    )


def test_sigma_conditioning_and_errors() -> None:
    model = zoo.create("unet_bp_sigma", depth=2, width=8)
    y = torch.randn(2, 4, 8)
    with pytest.raises(ValueError, match="pass sigma"):
        model(y)
    with pytest.raises(ValueError, match="y must be"):
        model(torch.randn(2, 5, 8), torch.ones(2))
    assert model(y, torch.tensor([0.1, 3.0])).shape == (2, 4, 8)
    with pytest.raises(ValueError, match="leaves must be"):
        zoo.create("convnet_bp", depth=2)(torch.zeros(2, 8, dtype=torch.long))


def test_size_mismatch_with_data_fails_clearly() -> None:
    model = zoo.create("convnet_bp", depth=3)
    dm = zoo.create_datamodule("convnet_bp", depth=4, **SMALL)
    with pytest.raises(
        ValueError, match=r"disagree on shared keys: model\.depth=3 vs data\.depth=4"
    ):
        quiet_trainer(fast_dev_run=True).fit(model, datamodule=dm)
    # the contract: data built for the model follows its sizes
    assert zoo.create_datamodule(model, **SMALL).hparams.depth == 3


class _OracleUNet(torch.nn.Module):
    def __init__(self, grammar) -> None:
        super().__init__()
        self.grammar = grammar

    def forward(self, y, sigma):
        return bp.bayes_denoiser(self.grammar, y, sigma)


def test_metrics_are_exactly_one_for_the_bayes_oracle() -> None:
    """Plugging exact BP in as the network gives mse_ratio = acc_ratio = 1 (same batches)."""
    dm = zoo.create_datamodule("unet_bp_sigma", depth=3, **SMALL)
    model = zoo.create("unet_bp", depth=3, diffusion_samples=0)
    model.zoo_data_config = dm.config
    oracle = _OracleUNet(dm.grammar)
    model.forward = lambda y, sigma=None: oracle(y, sigma)  # type: ignore[method-assign]
    res = quiet_trainer().test(model, datamodule=dm, verbose=False)[0]
    assert res["test/mse_ratio"] == pytest.approx(1.0, abs=1e-6)
    assert res["test/leaf_acc"] == pytest.approx(res["test/bayes_leaf_acc"])
    # a worse denoiser (the raw observation clipped to the simplex) is measurably worse
    model.forward = lambda y, sigma=None: F.softmax(y * 2, -1)  # type: ignore[method-assign]
    res = quiet_trainer().test(model, datamodule=dm, verbose=False)[0]
    assert res["test/mse_ratio"] > 1.05

    dmc = zoo.create_datamodule(
        {**dm.config, "task": "classification", "grammar": "dirichlet", "n_symbols": 3}
    )
    clf = zoo.create("convnet_bp", depth=3, n_symbols=3)
    clf.forward = lambda leaves: bp.root_posterior(dmc.grammar, leaves).log()  # type: ignore[method-assign]
    res = quiet_trainer().test(clf, datamodule=dmc, verbose=False)[0]
    assert res["test/acc_ratio"] == pytest.approx(1.0)
    assert 0.33 < res["test/bayes_acc"] < 1.0  # dense grammar: the root is not determined


def test_convnet_learns_rhm_root() -> None:
    pl.seed_everything(0)
    dm = zoo.create_datamodule("convnet_bp", depth=3, n_train=2048, n_val=256, n_test=256)
    model = zoo.create("convnet_bp", depth=3, lr=3e-3)
    model.zoo_data_config = dm.config
    t = quiet_trainer(max_epochs=12)
    t.fit(model, datamodule=dm)
    res = t.test(model, datamodule=dm, verbose=False)[0]
    assert res["test/bayes_acc"] == 1.0
    assert res["test/acc"] > 0.8  # chance: 1/8


def test_diffusion_with_exact_denoiser_generates_grammatical_sequences() -> None:
    g = torch.Generator().manual_seed(0)
    dm = zoo.create_datamodule("unet_bp_sigma", depth=3)
    grammar = dm.grammar
    leaves = sample(bp_denoiser(grammar), n=256, n_leaves=8, n_symbols=8, steps=60, generator=g)
    again = sample(
        bp_denoiser(grammar),
        n=256,
        n_leaves=8,
        n_symbols=8,
        steps=60,
        generator=torch.Generator().manual_seed(0),
    )
    assert torch.equal(leaves, again)
    q = sample_quality(grammar, leaves)
    assert q["grammatical"] > 0.95
    assert q["kl_symbols"] < 0.05 and q["kl_root"] < 0.1
    uniform = torch.randint(0, 8, (256, 8), generator=g)
    assert sample_quality(grammar, uniform)["grammatical"] < 0.01
    ddim = sample(
        bp_denoiser(grammar), n=256, n_leaves=8, n_symbols=8, steps=60, sampler="ddim", generator=g
    )
    assert sample_quality(grammar, ddim)["grammatical"] > 0.9
