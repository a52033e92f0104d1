"""Exact BP against brute-force enumeration over every tree of tiny grammars."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from zoo.hierarchical import bp
from zoo.hierarchical.data import Grammar, dirichlet_grammar, rhm_grammar


def _brute_joint(grammar: Grammar) -> tuple[torch.Tensor, torch.Tensor]:
    """All trees: (T, nodes) assignments (level-major) and their probabilities (T,)."""
    S, m, L = grammar.n_symbols, grammar.branching, grammar.depth
    sizes = [m**level for level in range(L + 1)]
    n_nodes = sum(sizes)
    x = torch.tensor(list(itertools.product(range(S), repeat=n_nodes)))  # (T, nodes)
    p = grammar.root_prior.double()[x[:, 0]]
    start = 0
    for level in range(L):
        parents = x[:, start : start + sizes[level]]
        kids = x[:, start + sizes[level] : start + sizes[level] + sizes[level + 1]]
        kids = kids.reshape(len(x), sizes[level], m)
        psi = grammar.transitions[level].double()
        p = p * psi[(parents, *kids.unbind(-1))].prod(-1)
        start += sizes[level]
    return x, p


def _grammars() -> list[tuple[str, Grammar]]:
    g = torch.Generator().manual_seed(3)
    return [
        ("dirichlet S3 m2 L2", dirichlet_grammar(3, 2, 2, concentration=0.7, generator=g)),
        ("rhm S3 m2 L2", rhm_grammar(3, 2, 2, n_rules=2, generator=g)),
        ("dirichlet S2 m3 L2", dirichlet_grammar(2, 3, 2, concentration=1.0, generator=g)),
        ("rhm S2 m2 L3", rhm_grammar(2, 2, 3, n_rules=2, generator=g)),
    ]


@pytest.mark.parametrize(
    ("name", "grammar"), _grammars(), ids=lambda v: v if isinstance(v, str) else ""
)
def test_bp_matches_brute_force(name: str, grammar: Grammar) -> None:
    grammar = grammar.to(dtype=torch.float64)
    m = grammar.branching
    grammar.transitions = [  # rows summing to 1 in float64 (brute force sums them)
        t / t.sum(tuple(range(1, m + 1)), keepdim=True) for t in grammar.transitions
    ]
    S, N = grammar.n_symbols, grammar.n_leaves
    x, p = _brute_joint(grammar)
    leaves = x[:, -N:]
    g = torch.Generator().manual_seed(0)
    log_ev = torch.randn(4, N, S, generator=g, dtype=torch.float64) * 2
    # weights of every tree under the soft evidence
    w = p[None] * torch.exp(log_ev[:, torch.arange(N), leaves].sum(-1))  # (B, T)
    z = w.sum(-1)
    torch.testing.assert_close(bp.log_likelihood(grammar, log_ev), z.log(), rtol=1e-9, atol=1e-9)
    leaf_post = (
        torch.stack(
            [
                torch.stack([(w * (leaves[:, i] == s)).sum(-1) for s in range(S)], -1)
                for i in range(N)
            ],
            1,
        )
        / z[:, None, None]
    )
    torch.testing.assert_close(bp.leaf_posterior(grammar, log_ev), leaf_post, rtol=1e-9, atol=1e-9)
    # hard evidence: root posterior of every possible sequence
    seqs = torch.tensor(list(itertools.product(range(S), repeat=N)))
    code = (leaves * S ** torch.arange(N - 1, -1, -1)).sum(-1)
    joint = torch.zeros(S**N, S, dtype=torch.float64).index_put_(
        (code, x[:, 0]), p, accumulate=True
    )
    marg = joint.sum(-1)
    post = bp.root_posterior(grammar, seqs)
    ok = marg > 0
    torch.testing.assert_close(post[ok], joint[ok] / marg[ok, None], rtol=1e-9, atol=1e-9)
    assert torch.equal(bp.is_grammatical(grammar, seqs), ok)
    assert (post[~ok] == 0).all()
    # prior leaf marginals
    prior = torch.stack(
        [torch.stack([(p * (leaves[:, i] == s)).sum() for s in range(S)]) for i in range(N)]
    )
    torch.testing.assert_close(bp.leaf_marginals(grammar), prior, rtol=1e-9, atol=1e-9)


def test_bayes_denoiser_matches_brute_force() -> None:
    grammar = _grammars()[1][1]
    S, N = grammar.n_symbols, grammar.n_leaves
    x, p = _brute_joint(grammar)
    leaves = x[:, -N:]
    g = torch.Generator().manual_seed(1)
    y = torch.randn(5, N, S, generator=g, dtype=torch.float64)
    sigma = torch.tensor([0.3, 0.5, 1.0, 2.0, 4.0], dtype=torch.float64)
    # exact Gaussian likelihood of every tree, normalisation constants included
    clean = torch.nn.functional.one_hot(leaves, S).double()  # (T, N, S)
    sq = ((y[:, None] - clean[None]) ** 2).sum((-1, -2))  # (B, T)
    w = p[None] * torch.exp(-sq / (2 * sigma[:, None] ** 2))
    expect = torch.einsum("bt,tns->bns", w, clean) / w.sum(-1)[:, None, None]
    torch.testing.assert_close(bp.bayes_denoiser(grammar, y, sigma), expect, rtol=1e-9, atol=1e-9)


def test_bp_is_stable_at_small_noise_and_long_sequences() -> None:
    g = torch.Generator().manual_seed(0)
    grammar = rhm_grammar(16, 2, 8, n_rules=4, generator=g)  # 256 leaves
    leaves, root = grammar.sample(64, g)
    assert bp.bayes_accuracy(grammar, leaves, root).mean().item() == 1.0
    ll = bp.log_likelihood(grammar, bp.leaf_log_evidence(leaves, 16))
    # RHM: every grammatical sequence has probability (1/S)·(1/n_rules)^(internal nodes)
    assert torch.allclose(ll, torch.full_like(ll, -math.log(16) - 255 * math.log(4)), rtol=1e-5)
    y = torch.nn.functional.one_hot(leaves, 16).float() + 0.05 * torch.randn(
        64, 256, 16, generator=g
    )
    den = bp.bayes_denoiser(grammar, y, 0.05)
    assert torch.isfinite(den).all()
    assert (den.argmax(-1) == leaves).all()


def test_bp_rejects_wrong_shapes() -> None:
    grammar = _grammars()[0][1]
    with pytest.raises(ValueError, match="log_evidence must be"):
        bp.leaf_posterior(grammar, torch.zeros(2, 5, 3))
