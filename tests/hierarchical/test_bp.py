"""Exact BP against brute-force enumeration over every tree of tiny grammars."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from zoo.hierarchical import bp
from zoo.hierarchical.data import Grammar, contains, dirichlet_grammar, rhm_grammar


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


@pytest.mark.parametrize("method", ["dense", "sparse"])
@pytest.mark.parametrize(
    ("name", "grammar"), _grammars(), ids=lambda v: v if isinstance(v, str) else ""
)
def test_bp_matches_brute_force(name: str, grammar: Grammar, method: str) -> None:
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
    torch.testing.assert_close(
        bp.log_likelihood(grammar, log_ev, method), z.log(), rtol=1e-9, atol=1e-9
    )
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
    torch.testing.assert_close(
        bp.leaf_posterior(grammar, log_ev, method), leaf_post, rtol=1e-9, atol=1e-9
    )
    # hard evidence: root posterior of every possible sequence
    seqs = torch.tensor(list(itertools.product(range(S), repeat=N)))
    code = (leaves * S ** torch.arange(N - 1, -1, -1)).sum(-1)
    joint = torch.zeros(S**N, S, dtype=torch.float64).index_put_(
        (code, x[:, 0]), p, accumulate=True
    )
    marg = joint.sum(-1)
    post = bp.root_posterior(grammar, seqs, method)
    ok = marg > 0
    torch.testing.assert_close(post[ok], joint[ok] / marg[ok, None], rtol=1e-9, atol=1e-9)
    assert torch.equal(bp.is_grammatical(grammar, seqs), ok)
    assert (post[~ok] == 0).all()
    # per level: a node's block is generable iff some tree puts a symbol there
    levels = bp.level_grammatical(grammar, seqs)
    assert torch.equal(levels[:, 0], ok)
    for level in range(1, grammar.depth):
        ref, width = _generable_blocks(grammar, level), m ** (grammar.depth - level)
        blocks = seqs.reshape(len(seqs), -1, width)
        expect = torch.stack([contains(ref, blocks[:, b]) for b in range(m**level)]).all(0)
        assert torch.equal(levels[:, level], expect), level
    # prior leaf marginals
    prior = torch.stack(
        [torch.stack([(p * (leaves[:, i] == s)).sum() for s in range(S)]) for i in range(N)]
    )
    torch.testing.assert_close(bp.leaf_marginals(grammar), prior, rtol=1e-9, atol=1e-9)


def _generable_blocks(grammar: Grammar, level: int) -> torch.Tensor:
    """(K, m^(L−level)) the leaf blocks some symbol at ``level`` generates (brute force over
    the subtrees of the rules below ``level``)."""
    S = grammar.n_symbols
    sub = Grammar(torch.ones(S, dtype=torch.float64) / S, grammar.transitions[level:])
    x, p = _brute_joint(sub)
    return x[p > 0, -sub.n_leaves :]


def test_parse_is_the_unique_derivation() -> None:
    g = torch.Generator().manual_seed(4)
    grammar = rhm_grammar(6, 2, 3, n_rules=3, generator=g)
    levels = bp.sample_posterior(grammar, torch.zeros(256, 8, 6), g)
    parsed = bp.parse(grammar, levels[-1])
    for a, b in zip(levels, parsed):
        assert torch.equal(a, b)
    assert bp.parse(dirichlet_grammar(3, 2, 2, generator=g), torch.zeros(2, 4).long()) is None


def test_posterior_samples_follow_the_exact_posterior() -> None:
    """Downward sampling from p(x | y) against the enumerated posterior over sequences."""
    for grammar in (_grammars()[0][1], _grammars()[1][1]):
        grammar = grammar.to(dtype=torch.float64)
        S, N = grammar.n_symbols, grammar.n_leaves
        x, p = _brute_joint(grammar)
        code = (x[:, -N:] * S ** torch.arange(N - 1, -1, -1)).sum(-1)
        g = torch.Generator().manual_seed(2)
        log_ev = torch.randn(1, N, S, generator=g, dtype=torch.float64)
        w = p * torch.exp(log_ev[0, torch.arange(N), x[:, -N:]].sum(-1))
        exact = torch.zeros(S**N, dtype=torch.float64).index_add_(0, code, w)
        exact = exact / exact.sum()
        n = 40_000
        for method in ("dense", "sparse"):
            levels = bp.sample_posterior(
                grammar, log_ev.expand(n, N, S), torch.Generator().manual_seed(3), method
            )
            got = (levels[-1] * S ** torch.arange(N - 1, -1, -1)).sum(-1).bincount(
                minlength=S**N
            ) / n
            se = (exact * (1 - exact) / n).sqrt()
            assert ((got - exact).abs() <= 5 * se + 1e-3).all(), method
            # every sampled tree has positive probability
            nodes = torch.cat(levels, 1)
            prob = grammar.root_prior[nodes[:, 0]]
            start = 0
            for level in range(grammar.depth):
                par = nodes[:, start : start + grammar.branching**level]
                kids = levels[level + 1].reshape(n, -1, grammar.branching)
                prob = prob * grammar.transitions[level][(par, *kids.unbind(-1))].prod(-1)
                start += grammar.branching**level
            assert (prob > 0).all()


def test_sparse_path_is_automatic_for_rhm_and_not_for_dirichlet() -> None:
    g = torch.Generator().manual_seed(0)
    assert rhm_grammar(8, 2, 3, n_rules=2, generator=g).sparse
    assert not dirichlet_grammar(3, 2, 2, generator=g).sparse
    with pytest.raises(ValueError, match="method must be"):
        bp.root_posterior(rhm_grammar(4, 2, 2, generator=g), torch.zeros(1, 4).long(), "fast")


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
