"""The shared "sets" datamodule: samplers, exact targets, determinism, resampling, errors."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

import zoo
from zoo.ansatz.targets import calogero_log, hermite_functions, normalized_power_sums
from zoo.sets import (
    TARGETS,
    SetDataModule,
    evaluate_target,
    get_target,
    list_targets,
    register_target,
    sample_sets,
)


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_samplers_shapes_and_supports() -> None:
    s = sample_sets("sphere", 100, 5, 4, _gen())
    assert s.shape == (100, 5, 4)
    torch.testing.assert_close(s.norm(dim=-1), torch.ones(100, 5))
    line = sample_sets("line", 20_000, 2, 1, _gen())
    assert abs(line.var().item() - 0.5) < 0.02  # N(0, 1/2)
    cue = sample_sets("cue", 10, 6, 2, _gen())
    torch.testing.assert_close(cue.norm(dim=-1), torch.ones(10, 6))
    with pytest.raises(ValueError, match="dim must be 1"):
        sample_sets("line", 2, 3, 2, _gen())
    with pytest.raises(ValueError, match="unknown sampler"):
        sample_sets("uniform", 2, 3, 2, _gen())


def test_cue_power_sums_are_orthonormal() -> None:
    """Diaconis–Shahshahani: E[q_j q_k] = δ_jk for the normalised power sums under CUE, also
    for k > N (where E|p_k|² = N); i.i.d. uniform angles would give E|p_k|² = N for all k."""
    theta = sample_sets("cue", 40_000, 5, 1, _gen(1)).double()
    q = normalized_power_sums(theta, 8)
    cov = q.T @ q / len(q)
    torch.testing.assert_close(cov, torch.eye(8, dtype=torch.float64), atol=0.05, rtol=0)
    # the repulsion shows: Var Re p_1 = 1/2 under CUE, N/2 = 2.5 for independent angles
    p1 = torch.cos(theta[..., 0]).sum(-1)
    assert abs(p1.var().item() - 0.5) < 0.03


def test_pairwise_energy_matches_double_loop() -> None:
    x = sample_sets("sphere", 3, 5, 3, _gen(2)).double()
    for params in ({"u": "exp", "beta": 1.5}, {"u": "power", "degree": 3}):
        y = evaluate_target("pairwise_energy", x, **params)
        for b in range(3):
            ref = 0.0
            for i, j in itertools.combinations(range(5), 2):
                t = float(x[b, i] @ x[b, j])
                ref += math.exp(1.5 * t) if params["u"] == "exp" else t**3
            assert abs(y[b].item() - ref) < 1e-10


def test_calogero_matches_product_formula_and_is_antisymmetric() -> None:
    x = sample_sets("line", 4, 5, 1, _gen(3)).double()
    for lam in (1.0, 1.5, 2.5):
        y = evaluate_target("calogero", x, lam=lam)
        p = x[..., 0]
        ref = torch.ones(4, dtype=torch.float64)
        for i, j in itertools.combinations(range(5), 2):
            d = p[:, i] - p[:, j]
            ref = ref * d * d.abs() ** (lam - 1)
        ref = ref * torch.exp(-0.5 * (p**2).sum(-1))
        torch.testing.assert_close(y, ref)
        swapped = x[:, [1, 0, 2, 3, 4]]
        torch.testing.assert_close(evaluate_target("calogero", swapped, lam=lam), -y)


def test_calogero_log_domain_for_large_n() -> None:
    x = sample_sets("line", 8, 64, 1, _gen(4), std=4.0).double()
    sign, logabs = calogero_log(x, 2.5)
    assert torch.isfinite(logabs).all() and logabs.max() > 700  # the value itself overflows
    perm = torch.randperm(64, generator=_gen(5))
    s2, l2 = calogero_log(x[:, perm], 2.5)
    # sign of the permutation = (−1)^(number of inversions)
    inv = sum(int(perm[i] > perm[j]) for i in range(64) for j in range(i + 1, 64))
    assert torch.equal(s2, sign * (-1) ** inv)
    torch.testing.assert_close(l2, logabs)


def test_hermite_functions_are_orthonormal() -> None:
    x = torch.linspace(-12, 12, 20001, dtype=torch.float64)
    h = hermite_functions(x, 10)
    gram = h.T @ h * (x[1] - x[0])
    torch.testing.assert_close(gram, torch.eye(10, dtype=torch.float64), atol=1e-9, rtol=0)


def test_single_index_target_and_errors() -> None:
    theta = sample_sets("cue", 6, 4, 1, _gen(6)).double()
    beta = [1.0, 0.0, -2.0]
    y = evaluate_target("sym_single_index", theta, beta=beta, link="he2")
    q = normalized_power_sums(theta, 3)
    z = q @ (torch.tensor(beta, dtype=torch.float64) / math.sqrt(5))
    torch.testing.assert_close(y, (z**2 - 1) / math.sqrt(2))
    xy = torch.stack([theta[..., 0].cos(), theta[..., 0].sin()], -1)  # (cos, sin) form
    torch.testing.assert_close(evaluate_target("sym_single_index", xy, beta=beta, link="he2"), y)
    with pytest.raises(ValueError, match="beta"):
        evaluate_target("sym_single_index", theta)
    with pytest.raises(ValueError, match="unknown link"):
        evaluate_target("sym_single_index", theta, beta=beta, link="cos")
    with pytest.raises(ValueError, match="bad target_params"):
        evaluate_target("calogero", theta, lamda=2.0)
    with pytest.raises(ValueError, match="unknown target"):
        get_target("calogero_typo")


def test_target_registry_accepts_vector_valued_key_targets() -> None:
    @register_target("_test_query_key_mean", symmetry="invariant_in_keys")
    def qk(x: torch.Tensor) -> torch.Tensor:
        """(⟨x_0, mean keys⟩, |x_0|²)."""
        return torch.stack([(x[:, 0] * x[:, 1:].mean(1)).sum(-1), (x[:, 0] ** 2).sum(-1)], -1)

    assert "_test_query_key_mean" in list_targets("invariant_in_keys")
    dm = SetDataModule(n_set=5, dim=3, target="_test_query_key_mean", n_train=16, n_val=4, n_test=4)
    y = dm.split("train")[1]
    assert y.shape == (16, 2) and dm.symmetry == "invariant_in_keys"
    with pytest.raises(ValueError, match="symmetry"):
        register_target("_bad", symmetry="chiral")  # type: ignore[arg-type]
    TARGETS.remove("_test_query_key_mean")


def test_datamodule_is_deterministic_and_splits_differ() -> None:
    cfg = dict(
        n_set=6,
        dim=1,
        sampler="cue",
        target="sym_single_index",
        target_params={"beta": [1.0, 1.0]},
        n_train=64,
        n_val=32,
        n_test=32,
    )
    a, b = SetDataModule(**cfg), SetDataModule(**cfg)
    for s in ("train", "val", "test"):
        assert all(torch.equal(u, v) for u, v in zip(a.split(s), b.split(s)))
    assert not torch.equal(a.split("train")[0][:32], a.split("val")[0])
    c = SetDataModule(**{**cfg, "seed": 1})
    assert not torch.equal(a.split("test")[0], c.split("test")[0])
    # labels are the exact target of the stored inputs
    x, y = a.split("test")
    torch.testing.assert_close(y, a.target(x))


def test_resample_draws_fresh_deterministic_training_sets() -> None:
    cfg = dict(n_set=4, dim=2, n_train=32, n_val=8, n_test=8, batch_size=16, resample=True)
    dm = SetDataModule(**cfg)
    loader = dm.train_dataloader()
    assert len(loader) == 2
    epochs = [torch.cat([xb for xb, _ in loader]) for _ in range(3)]
    assert torch.equal(epochs[0], dm.split("train")[0])
    assert not torch.equal(epochs[0], epochs[1]) and not torch.equal(epochs[1], epochs[2])
    again = SetDataModule(**cfg).train_dataloader()
    assert all(torch.equal(torch.cat([xb for xb, _ in again]), e) for e in epochs)
    # labels of fresh sets are exact too
    xb, yb = next(iter(loader))
    torch.testing.assert_close(yb, dm.target(xb))


def test_noise_only_on_train_and_bad_config_fails_early() -> None:
    dm = SetDataModule(n_set=3, dim=2, noise_std=0.5, n_train=64, n_val=64, n_test=64)
    xt, yt = dm.split("train")
    assert (yt - dm.target(xt)).std() > 0.3
    xv, yv = dm.split("val")
    torch.testing.assert_close(yv, dm.target(xv))
    with pytest.raises(ValueError, match="n_set"):
        zoo.create_datamodule({"name": "sets", "n_set": 0})
    with pytest.raises(ValueError, match="unknown target"):
        SetDataModule(target="nope")
