"""Attention targets: exact values, key-permutation invariance, registration in ``sets``."""

from __future__ import annotations

import math

import pytest
import torch

import zoo
from zoo.attention import targets as T
from zoo.sets import evaluate_target, get_target, list_targets

ATTENTION_TARGETS = [
    ("key_power", {"p": 3}),
    ("key_hermite", {"k": 2}),
    ("key_exp", {"beta": 0.5}),
    ("key_index", {"p": 2}),
    ("nearest_neighbour", {}),
    ("farthest_neighbour", {}),
]


def sphere(n: int, n_set: int, d: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, n_set, d, generator=g, dtype=torch.float64)
    return x / x.norm(dim=-1, keepdim=True)


def test_registered_in_sets_with_key_symmetry() -> None:
    names = list_targets("invariant_in_keys")
    for name, _ in ATTENTION_TARGETS:
        assert name in names
        assert get_target(name).symmetry == "invariant_in_keys"


@pytest.mark.parametrize(("name", "params"), ATTENTION_TARGETS)
def test_invariant_under_key_permutations_not_query_swap(name: str, params: dict) -> None:
    x = sphere(64, 7, 5)
    y = evaluate_target(name, x, **params)
    perm = torch.randperm(6, generator=torch.Generator().manual_seed(1)) + 1
    xp = torch.cat([x[:, :1], x[:, perm]], dim=1)
    torch.testing.assert_close(evaluate_target(name, xp, **params), y, rtol=1e-12, atol=1e-12)
    if name != "key_index":  # every other target depends on which point is the query
        swapped = x[:, [1, 0, 2, 3, 4, 5, 6]]
        assert (evaluate_target(name, swapped, **params) - y).abs().max() > 1e-3


def test_key_averages_equal_explicit_loops() -> None:
    x = sphere(16, 5, 4)
    d = x.shape[-1]
    for b in range(len(x)):
        s = [float(x[b, 0] @ x[b, i]) for i in range(1, 5)]
        assert T.key_power(x, p=3)[b] == pytest.approx(sum(v**3 for v in s) / 4, rel=1e-12)
        he2 = [((math.sqrt(d) * v) ** 2 - 1) / math.sqrt(2) for v in s]
        assert T.key_hermite(x, k=2)[b] == pytest.approx(sum(he2) / 4, rel=1e-10, abs=1e-12)
        ex = [math.exp(0.7 * math.sqrt(d) * v) for v in s]
        assert T.key_exp(x, beta=0.7)[b] == pytest.approx(sum(ex) / 4, rel=1e-12)


def test_hermite_closed_forms_and_orthonormality() -> None:
    z = torch.linspace(-3, 3, 13, dtype=torch.float64)
    torch.testing.assert_close(T.hermite_normalised(z, 0), torch.ones_like(z))
    torch.testing.assert_close(T.hermite_normalised(z, 3), (z**3 - 3 * z) / math.sqrt(6))
    torch.testing.assert_close(T.hermite_normalised(z, 4), (z**4 - 6 * z**2 + 3) / math.sqrt(24))
    # Gauss–Hermite quadrature (exact for degree ≤ 2·40−1): E[He_j He_k]/√(j!k!) = δ_jk
    import numpy as np

    nodes, weights = np.polynomial.hermite_e.hermegauss(40)
    zq = torch.tensor(nodes)
    w = torch.tensor(weights) / math.sqrt(2 * math.pi)
    h = torch.stack([T.hermite_normalised(zq, k) for k in range(6)])
    torch.testing.assert_close(h @ torch.diag(w) @ h.T, torch.eye(6, dtype=torch.float64))


def test_nearest_and_farthest_neighbour_are_the_extreme_keys() -> None:
    x = sphere(200, 17, 8)
    nn_, fn_ = T.nearest_neighbour(x), T.farthest_neighbour(x)
    assert nn_.shape == (200, 8)
    for b in range(0, 200, 17):
        s = [float(x[b, 0] @ x[b, i]) for i in range(1, 17)]
        assert torch.equal(nn_[b], x[b, 1 + max(range(16), key=s.__getitem__)])
        assert torch.equal(fn_[b], x[b, 1 + min(range(16), key=s.__getitem__)])
    # predicting 0 scores exactly 1 under MSE·d: labels are unit vectors
    torch.testing.assert_close(nn_.pow(2).sum(-1), torch.ones(200, dtype=torch.float64))


def test_datamodule_serves_exact_labels_deterministically() -> None:
    cfg = {"target": "key_exp", "target_params": {"beta": 1.0}, "n_train": 64, "n_val": 8}
    dm = zoo.create_datamodule("rf_attention", **cfg, n_test=8)
    x, y = dm.split("train")
    assert x.shape == (64, 9, 8)
    torch.testing.assert_close(x.norm(dim=-1), torch.ones(64, 9))
    torch.testing.assert_close(y, T.key_exp(x.double(), beta=1.0).float())
    x2, y2 = zoo.create_datamodule("rf_attention", **cfg, n_test=8).split("train")
    assert torch.equal(x, x2) and torch.equal(y, y2)
    x3, _ = zoo.create_datamodule("rf_attention", **cfg, n_test=8, seed=1).split("train")
    assert not torch.equal(x, x3)


def test_bad_inputs_raise() -> None:
    with pytest.raises(ValueError, match="query"):
        T.key_power(torch.ones(3, 1, 4))
    with pytest.raises(ValueError, match="p must be"):
        T.key_power(sphere(2, 3, 4), p=-1)
    with pytest.raises(ValueError, match="degree"):
        T.hermite_normalised(torch.ones(3), -1)
    with pytest.raises(ValueError, match="bad target_params"):
        evaluate_target("key_power", sphere(2, 3, 4), q=2)
