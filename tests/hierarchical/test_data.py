"""GHM grammars, tree sampling and the "ghm" datamodule."""

from __future__ import annotations

import pytest
import torch

import zoo
from zoo.hierarchical import bp
from zoo.hierarchical.data import GHMDataModule, dirichlet_grammar, rhm_grammar, sample_gamma


def test_rhm_rules_are_disjoint_and_normalised() -> None:
    g = torch.Generator().manual_seed(0)
    grammar = rhm_grammar(6, 2, 3, n_rules=3, generator=g)
    for t in grammar.transitions:
        flat = t.reshape(6, -1)
        assert torch.allclose(flat.sum(-1), torch.ones(6))
        assert ((flat > 0).sum(-1) == 3).all()
        assert ((flat > 0).sum(0) <= 1).all()  # a tuple belongs to at most one parent
    with pytest.raises(ValueError, match="n_symbols\\*n_rules"):
        rhm_grammar(3, 2, 2, n_rules=4, generator=g)


def test_sampling_matches_transition_probabilities() -> None:
    g = torch.Generator().manual_seed(1)
    grammar = dirichlet_grammar(3, 2, 1, concentration=1.0, generator=g)
    n = 200_000
    leaves, root = grammar.sample(n, g)
    counts = torch.zeros(3, 9, dtype=torch.float64)
    counts.index_put_(
        (root, leaves[:, 0] * 3 + leaves[:, 1]), torch.ones(n, dtype=torch.float64), accumulate=True
    )
    emp = counts / counts.sum(-1, keepdim=True)
    # 5 standard errors of a binomial proportion
    se = (
        grammar.flat(0).double() * (1 - grammar.flat(0).double()) / counts.sum(-1, keepdim=True)
    ).sqrt()
    assert ((emp - grammar.flat(0).double()).abs() <= 5 * se + 1e-4).all()
    torch.testing.assert_close(
        root.bincount(minlength=3).double() / n,
        torch.full((3,), 1 / 3, dtype=torch.float64),
        atol=5e-3,
        rtol=0,
    )


def test_sparse_samples_are_grammatical_and_deterministic() -> None:
    grammar = rhm_grammar(8, 2, 4, n_rules=2, generator=torch.Generator().manual_seed(2))
    a = grammar.sample(500, torch.Generator().manual_seed(5))
    b = grammar.sample(500, torch.Generator().manual_seed(5))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert bp.is_grammatical(grammar, a[0]).all()
    assert (bp.root_posterior(grammar, a[0]).argmax(-1) == a[1]).all()  # unambiguous grammar
    shuffled = a[0][:, torch.randperm(16, generator=torch.Generator().manual_seed(0))]
    assert bp.is_grammatical(grammar, shuffled).float().mean() < 0.2


def test_gamma_sampler_moments() -> None:
    g = torch.Generator().manual_seed(0)
    for a in (0.3, 1.0, 4.0):
        x = sample_gamma(torch.full((200_000,), a), g)
        assert (x > 0).all()
        assert abs(x.mean().item() - a) < 0.02 * max(a, 1)
        assert abs(x.var().item() - a) < 0.06 * max(a, 1)


def test_datamodule_grammar_rebuilds_from_config() -> None:
    dm = zoo.create_datamodule(
        {"name": "ghm", "grammar": "dirichlet", "grammar_seed": 7, "n_symbols": 3}
    )
    again = zoo.create_datamodule(dict(dm.config))
    assert again.grammar.equal(dm.grammar)
    assert not zoo.create_datamodule({**dm.config, "grammar_seed": 8}).grammar.equal(dm.grammar)
    # the grammar does not depend on the sample seed
    assert zoo.create_datamodule({**dm.config, "seed": 3}).grammar.equal(dm.grammar)


def test_datamodule_batches_and_sigma() -> None:
    cfg = {
        "name": "ghm",
        "task": "denoising",
        "sigma_dist": "loguniform",
        "sigma_min": 0.1,
        "sigma_max": 5.0,
        "depth": 3,
        "n_train": 64,
        "n_val": 32,
        "n_test": 32,
        "batch_size": 16,
    }
    dm = zoo.create_datamodule(cfg)
    dm.setup("fit")
    y, leaves, sigma, root = next(iter(dm.train_dataloader()))
    assert y.shape == (16, 8, 8) and leaves.shape == (16, 8) and sigma.shape == (16,)
    assert ((sigma >= 0.1) & (sigma <= 5.0)).all() and sigma.std() > 0
    noise = (y - torch.nn.functional.one_hot(leaves, 8)) / sigma[:, None, None]
    assert abs(noise.std().item() - 1) < 0.15
    assert (bp.root_posterior(dm.grammar, leaves).argmax(-1) == root).all()
    dm2 = zoo.create_datamodule(cfg)
    assert torch.equal(dm2.split("train")[0], dm.split("train")[0])
    assert not torch.equal(dm.split("val")[1], dm.split("test")[1])
    with pytest.raises(ValueError, match="sigma_min < sigma_max"):
        GHMDataModule(sigma_dist="loguniform", sigma_min=2.0, sigma_max=1.0)
    with pytest.raises(ValueError, match="n_symbols\\*n_rules"):
        GHMDataModule(n_symbols=2, n_rules=3)


def test_fresh_training_noise_per_epoch_is_reproducible() -> None:
    cfg = {"name": "ghm", "task": "denoising", "n_train": 32, "batch_size": 32, "seed": 4}
    a, b = zoo.create_datamodule(cfg), zoo.create_datamodule(cfg)
    la, lb = a.train_dataloader(), b.train_dataloader()
    e0, e1 = next(iter(la)), next(iter(la))
    f0 = next(iter(lb))
    assert torch.equal(e0[0], f0[0])  # same seed, same epoch → same noise
    assert not torch.equal(e0[0], e1[0])  # new epoch → new noise
    assert sorted(map(tuple, e0[1].tolist())) == sorted(map(tuple, e1[1].tolist()))  # same x
    fixed = zoo.create_datamodule({**cfg, "fresh_noise": False}).train_dataloader()
    assert torch.equal(next(iter(fixed))[0].sum(), next(iter(fixed))[0].sum())
