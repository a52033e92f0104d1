"""The backflow ansatz: antisymmetry under odd and even permutations up to N = 32, equivariant
orbitals that depend on the whole set, log-domain sums, sizes and clear errors."""

from __future__ import annotations

import math

import pytest
import torch

import zoo
from zoo.ansatz.backflow import Backflow
from zoo.ansatz.figures import grow
from zoo.sets import sample_sets


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _parity(perm: torch.Tensor) -> int:
    """(−1)^(number of inversions) of a permutation."""
    p = perm.tolist()
    inv = sum(int(p[i] > p[j]) for i in range(len(p)) for j in range(i + 1, len(p)))
    return -1 if inv % 2 else 1


def _model(n: int, dtype: torch.dtype = torch.float64, n_dets: int = 3) -> Backflow:
    torch.manual_seed(n)
    model = zoo.create("backflow", n_set=n, n_dets=n_dets, hidden=n + 4, pair_hidden=6)
    assert isinstance(model, Backflow)
    return model.to(dtype).eval()


CASES = [(4, torch.float32), (4, torch.float64), (16, torch.float64), (32, torch.float64)]


@pytest.mark.parametrize(("n", "dtype"), CASES)
def test_odd_and_even_permutations_multiply_the_sign_by_their_parity(
    n: int, dtype: torch.dtype
) -> None:
    """Transpositions (odd) flip the sign, 3-cycles and double transpositions (even) keep it,
    random permutations multiply it by their parity; log|f| is invariant and finite (points
    spread like N trapped fermions, std √(N/2))."""
    model = _model(n, dtype)
    x = sample_sets("line", 16, n, 1, _gen(n), std=math.sqrt(n / 2)).to(dtype)
    sign, logabs = model.signed_log(x)
    assert torch.isfinite(logabs).all() and (sign.abs() == 1).all()
    transposition = torch.arange(n)
    transposition[[0, n - 1]] = transposition[[n - 1, 0]]
    cycle = torch.arange(n)
    cycle[[0, 1, 2]] = cycle[[1, 2, 0]]
    double = torch.arange(n)
    double[[0, 1, n - 2, n - 1]] = double[[1, 0, n - 1, n - 2]]
    randoms = [torch.randperm(n, generator=_gen(seed)) for seed in range(4)]
    cases = [(transposition, -1), (cycle, 1), (double, 1)] + [(p, _parity(p)) for p in randoms]
    assert {parity for _, parity in cases} == {-1, 1}
    tol = {"rtol": 1e-4, "atol": 1e-3} if dtype == torch.float32 else {"rtol": 1e-6, "atol": 1e-6}
    for perm, parity in cases:
        assert _parity(perm) == parity
        s2, l2 = model.signed_log(x[:, perm])
        assert torch.equal(s2, parity * sign), (n, perm.tolist())
        torch.testing.assert_close(l2, logabs, **tol)
    if n == 4:  # representable values: f itself flips
        torch.testing.assert_close(model(x[:, [1, 0, 2, 3]]), -model(x), rtol=1e-4, atol=1e-7)


def test_orbitals_are_equivariant_and_depend_on_the_whole_set() -> None:
    """Permuting the points permutes the rows of every orbital matrix (exactly the same
    values), and moving one point changes the orbitals of the others (backflow), which the
    one-particle orbitals of ``slater`` never do."""
    n = 5
    model = _model(n)
    x = sample_sets("line", 8, n, 1, _gen(1)).double()
    perm = torch.randperm(n, generator=_gen(2))
    phi = model.orbital_matrix(x)
    torch.testing.assert_close(model.orbital_matrix(x[:, perm]), phi[:, :, perm])
    moved = x.clone()
    moved[:, -1] += 0.5
    change = (model.orbital_matrix(moved) - phi)[:, :, :-1].abs().amax()
    assert change > 1e-3  # the rows of the points that did not move changed
    slater = zoo.create("slater", n_set=n, n_basis=n + 2).double()
    same = slater.slater.orbital_matrix(moved) - slater.slater.orbital_matrix(x)
    assert same[:, :, :-1].abs().amax() == 0


def test_the_log_domain_sum_is_the_sum_of_determinants() -> None:
    """(sign, log|f|) = signed log-sum-exp of slogdet = log of the naive Σ_l det Φ^l."""
    model = _model(6)
    x = sample_sets("line", 32, 6, 1, _gen(3)).double()
    naive = torch.linalg.det(model.orbital_matrix(x)).sum(-1)
    torch.testing.assert_close(model(x), naive)
    sign, logabs = model.signed_log(x)
    torch.testing.assert_close(sign, torch.sign(naive))
    torch.testing.assert_close(logabs, torch.log(naive.abs()))


def test_gradients_are_finite_through_coincident_pair_features() -> None:
    """The diagonal pair features |x_i − x_i| = 0 do not make gradients NaN."""
    model = _model(8, torch.float32)
    x = sample_sets("line", 16, 8, 1, _gen(4))
    model.signed_log(x)[1].mean().backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(g.abs().max() > 0 for g in grads)


def test_size_counts_the_parameters_and_initialisation_is_deterministic() -> None:
    hp = {"n_set": 6, "dim": 2, "n_dets": 3, "hidden": 10, "pair_hidden": 5, "layers": 3}
    torch.manual_seed(0)
    a = zoo.create("backflow", **hp)
    torch.manual_seed(0)
    b = zoo.create("backflow", **hp)
    assert Backflow.size(hp)[0] == sum(p.numel() for p in a.parameters())
    x = sample_sets("gaussian", 4, 6, 2, _gen(5))
    torch.testing.assert_close(a(x), b(x), rtol=0, atol=0)


def test_bad_hyperparameters_and_shapes_fail_clearly() -> None:
    with pytest.raises(ValueError, match="hidden=3 < n_set=4"):
        zoo.create("backflow", n_set=4, hidden=3)
    with pytest.raises(ValueError):
        zoo.create("backflow", layers=0)
    with pytest.raises(ValueError, match="expected x of shape"):
        zoo.create("backflow", n_set=4)(torch.zeros(2, 5, 1))


def test_grow_with_zero_new_determinants_keeps_the_function() -> None:
    """The nested K sweep of the figure: K = 3 grown from K = 1 with the new determinants'
    orbital weights at 0 (their determinants vanish) is the K = 1 function."""
    small = _model(4, n_dets=1)
    torch.manual_seed(1)
    large = zoo.create("backflow", n_set=4, n_dets=3, hidden=8, pair_hidden=6).double()
    grow(large, small, scale=0.0)
    x = sample_sets("line", 16, 4, 1, _gen(6)).double()
    torch.testing.assert_close(large.eval()(x), small(x))
