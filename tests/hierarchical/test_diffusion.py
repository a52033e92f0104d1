"""Masking diffusion with exact BP, per-level grammaticality and the copy fraction."""

from __future__ import annotations

import itertools

import pytest
import torch

from zoo.hierarchical import bp
from zoo.hierarchical.data import rhm_grammar
from zoo.hierarchical.diffusion import (
    bp_mask_denoiser,
    masked_sample,
    sample_columns,
    sample_quality,
)


def _grammar():  # 4 symbols, 2 rules, L = 2: 4·2³ = 32 of the 256 sequences
    return rhm_grammar(4, 2, 2, n_rules=2, generator=torch.Generator().manual_seed(0))


def test_mask_denoiser_is_the_exact_conditional() -> None:
    grammar = _grammar()
    seqs = torch.tensor(list(itertools.product(range(4), repeat=4)))
    ok = bp.is_grammatical(grammar, seqs)
    good = seqs[ok]  # equally likely under the RHM
    x = good[:1].clone()
    x[0, 1:] = -1  # leaf 0 visible
    p = bp_mask_denoiser(grammar)(x)[0]  # (N, S)
    match = good[good[:, 0] == good[0, 0]]
    for i in range(1, 4):
        expect = torch.bincount(match[:, i], minlength=4).double() / len(match)
        torch.testing.assert_close(p[i], expect)
    torch.testing.assert_close(p[0], torch.nn.functional.one_hot(good[0, 0], 4).double())
    # impossible visible leaves: the conditional is undefined, the prior marginals stand in
    prefixes = {tuple(r) for r in good[:, :2].tolist()}
    a, b = next(pair for pair in itertools.product(range(4), repeat=2) if pair not in prefixes)
    bad = torch.tensor([[a, b, -1, -1]])
    torch.testing.assert_close(bp_mask_denoiser(grammar)(bad)[0], bp.leaf_marginals(grammar))


def test_one_leaf_per_step_is_exact_and_one_step_is_not() -> None:
    grammar = _grammar()
    n = 20_000
    g = torch.Generator().manual_seed(1)
    exact = masked_sample(bp_mask_denoiser(grammar), n=n, n_leaves=4, steps=4, generator=g)
    assert bp.is_grammatical(grammar, exact).all()
    codes = (exact * 4 ** torch.arange(3, -1, -1)).sum(-1)
    counts = torch.unique(codes, return_counts=True)[1].double()
    assert len(counts) == 32  # every grammatical sequence, equally often
    assert ((counts - n / 32).abs() < 5 * (n / 32) ** 0.5).all()
    # one step: the 4 leaves are drawn independently from their prior marginals
    indep = masked_sample(bp_mask_denoiser(grammar), n=n, n_leaves=4, steps=1, generator=g)
    q = sample_quality(grammar, indep)
    marg = bp.leaf_marginals(grammar)
    seqs = torch.tensor(list(itertools.product(range(4), repeat=4)))
    prob = marg[torch.arange(4), seqs].prod(-1)
    expect = float(prob[bp.is_grammatical(grammar, seqs)].sum())
    assert abs(q["grammatical"] - expect) < 5 * (expect * (1 - expect) / n) ** 0.5
    with pytest.raises(ValueError, match="steps"):
        masked_sample(bp_mask_denoiser(grammar), n=1, n_leaves=4, steps=5)


def test_per_level_grammaticality_and_copies() -> None:
    grammar = rhm_grammar(8, 2, 3, n_rules=2, generator=torch.Generator().manual_seed(2))
    good, _ = grammar.sample(64, torch.Generator().manual_seed(3))
    bad = good.clone()
    bad[:, 0] = (bad[:, 0] + 1) % 8  # breaks the first lowest-level block ...
    cols = sample_columns(grammar, torch.cat([good, bad]), train=good[:10])
    assert (cols["grammatical"][:64] == 1).all() and (cols["grammatical_l2"][:64] == 1).all()
    # ... unless the changed pair is still a rule of some symbol: then only higher levels fail
    pair_ok = bp.level_grammatical(grammar, bad)[:, 2]
    assert torch.equal(cols["grammatical_l2"][64:].bool(), pair_ok)
    assert (cols["grammatical"][64:] <= cols["grammatical_l1"][64:]).all()
    assert (cols["grammatical_l1"][64:] <= cols["grammatical_l2"][64:]).all()
    assert torch.equal(
        cols["grammatical"].bool(), bp.is_grammatical(grammar, torch.cat([good, bad]))
    )
    assert cols["grammatical"][64:].mean() < 0.5  # a synonym of the same parent survives
    assert cols["copy"].tolist() == [1.0] * 10 + [0.0] * 118
