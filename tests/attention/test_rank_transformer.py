"""rank_transformer: the exact farthest-point construction, symmetries, rank, errors."""

from __future__ import annotations

import math

import pytest
import torch

import zoo
from tests.common import quiet_trainer
from zoo.attention import targets as T
from zoo.attention.rank_transformer import RankAttention, RankTransformer, identity_gap
from zoo.core.evaluation import fold


def sphere(n: int, n_set: int, d: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, n_set, d, generator=g, dtype=torch.float64)
    return x / x.norm(dim=-1, keepdim=True)


@pytest.mark.parametrize("ff", [0, 32])
def test_construction_computes_every_farthest_point(ff: int) -> None:
    """W_Q = −τI, W_K = W_V = I, W_O = λI, no feed-forward: post-norm(x + λ·attention)
    → each point's farthest point as τ, λ → ∞; a soft head does not get there."""
    x = sphere(64, 16, 32)
    target = T.self_farthest(x)
    errors = []
    for tau in (1.0, 1e9):
        m = RankTransformer(dim=32, rank=32, ff=ff).double()
        m.set_construction(temperature=tau, out_scale=1e9)
        with torch.no_grad():
            errors.append(float(m.loss(m(x), target)))
    assert errors[1] < 1e-12
    assert errors[0] > 0.5
    c, gap = m.construction_gap().values()
    assert c == pytest.approx(-1e9 / math.sqrt(32)) and gap == pytest.approx(0.0, abs=1e-12)


def test_outputs_permute_with_the_points() -> None:
    torch.manual_seed(0)
    m = RankTransformer(dim=8, heads=3, rank=5, layers=2, ff=16, norm="layer").double()
    x = sphere(4, 6, 8)
    perm = torch.randperm(6)
    with torch.no_grad():
        out = m(x).reshape(4, 6, 8)
        torch.testing.assert_close(m(x[:, perm]).reshape(4, 6, 8), out[:, perm])


def test_query_readout_ignores_the_query_as_a_key() -> None:
    """readout="query": token 0 is never attended to, and permuting the keys changes nothing;
    with W_Q = τI the one-layer construction is the nearest key."""
    x = sphere(32, 9, 16)
    m = RankTransformer(dim=16, rank=16, ff=0, readout="query").double()
    m.set_construction(temperature=1e9, out_scale=1e9)
    with torch.no_grad():
        m.blocks[0].attn.q.weight.neg_()
        torch.testing.assert_close(m(x), T.nearest_neighbour(x))
        perm = torch.cat([torch.zeros(1, dtype=torch.long), torch.randperm(8) + 1])
        torch.testing.assert_close(m(x[:, perm]), m(x))


def test_attention_matches_an_explicit_per_head_loop() -> None:
    """A(X)_t = W_O [softmax_u(⟨q_h(x_t), k_h(x_u)⟩/√r) v_h(x_u)]_h + b_O, with H·r ≠ d."""
    torch.manual_seed(1)
    a = RankAttention(dim=6, heads=3, rank=4).double()
    for p in a.parameters():
        torch.nn.init.normal_(p)
    x = sphere(2, 5, 6)
    outs = []
    for h in range(3):
        sl = slice(4 * h, 4 * h + 4)
        q = x @ a.q.weight[sl].T + a.q.bias[sl]
        k = x @ a.k.weight[sl].T + a.k.bias[sl]
        v = x @ a.v.weight[sl].T + a.v.bias[sl]
        outs.append(torch.softmax(q @ k.transpose(1, 2) / 2.0, -1) @ v)
    want = torch.cat(outs, -1) @ a.o.weight.T + a.o.bias
    with torch.no_grad():
        torch.testing.assert_close(a(x), want)


def test_low_rank_heads_see_a_subspace() -> None:
    """A head's logit matrix W_Qᵀ W_K / √r has rank <= r."""
    a = RankAttention(dim=16, heads=2, rank=3)
    with torch.no_grad():
        assert int(torch.linalg.matrix_rank(a.bilinear(1))) == 3


def test_identity_gap() -> None:
    c, gap = identity_gap(-2.5 * torch.eye(4, dtype=torch.float64))
    assert (c, gap) == (-2.5, 0.0)
    g = torch.randn(64, 64, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert identity_gap(g)[1] > 0.95


def test_parameter_budget_and_determinism() -> None:
    """4·H·r·d attention weights; same seed, same model and outputs."""
    m = RankTransformer(dim=16, heads=8, rank=4, ff=0, bias=False)
    n = sum(p.numel() for p in m.blocks[0].attn.parameters())
    assert n == 4 * 8 * 4 * 16
    outs = []
    for _ in range(2):
        torch.manual_seed(3)
        m = RankTransformer(dim=16, heads=2, rank=4)
        with torch.no_grad():
            outs.append(m(sphere(2, 5, 16).float()))
    torch.testing.assert_close(outs[0], outs[1])


def test_hyper_parameter_errors() -> None:
    with pytest.raises(ValueError, match="rank=65 > dim=64"):
        zoo.create("rank_transformer", rank=65)
    with pytest.raises(ValueError, match="norm"):
        zoo.create("rank_transformer", norm="batch")
    with pytest.raises(ValueError, match=r"\(B, N\+1, 64\)"):
        zoo.create("rank_transformer")(torch.ones(2, 5, 8))
    with pytest.raises(ValueError, match="full-rank head"):
        zoo.create("rank_transformer", rank=8).construction_gap()


def test_test_stage_estimates_and_card() -> None:
    """Per-point error with intervals over sets; the card states it and the construction
    check; a short training run beats predicting 0."""
    torch.manual_seed(0)
    m = zoo.create("rank_transformer", dim=8, rank=8, ff=0, lr=3e-2)
    dm = zoo.create_datamodule(m, n_set=6, n_train=4096, n_test=512, batch_size=64)
    quiet_trainer(max_epochs=3, limit_val_batches=0).fit(m, datamodule=dm)
    metrics = fold(quiet_trainer().test(m, datamodule=dm, verbose=False)[0])
    x, y = dm.split("test")
    with torch.no_grad():
        direct = float(((m(x) - y) ** 2).reshape(-1, 8).sum(1).mean())
    assert metrics["test/error"] == pytest.approx(direct, rel=1e-5)
    assert metrics["test/error_n"] == 512 and metrics["test/error"] < 0.9
    lo, hi = metrics["test/error_ci"]
    text = m.model_card_extra(metrics)
    assert f"`test/error` = {metrics['test/error']:.4g} [{lo:.4g}, {hi:.4g}], n = 512" in text
    assert "Construction check" in text
