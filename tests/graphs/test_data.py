"""SBM sampler and datamodule: distribution, simplicity, determinism, splits, validation."""

from __future__ import annotations

import math

import pytest
import torch

import zoo
from zoo.graphs.data import (
    RegularSBMDataModule,
    SBMDataModule,
    bernoulli_indices,
    is_detectable,
    sample_regular_sbm_batch,
    sample_sbm,
    sample_sbm_batch,
    sbm_snr,
)

SIZES = [20, 30, 15]
PROBS = [[0.30, 0.10, 0.05], [0.10, 0.20, 0.02], [0.05, 0.02, 0.40]]


def block_of(sizes: list[int]) -> torch.Tensor:
    return torch.repeat_interleave(torch.arange(len(sizes)), torch.tensor(sizes))


def n_pairs(sizes: list[int], r: int, s: int, directed: bool) -> int:
    if r != s:
        return sizes[r] * sizes[s]
    return sizes[r] * (sizes[r] - 1) // (1 if directed else 2)


def assert_simple(ei: torch.Tensor, n: int) -> None:
    assert ei.dtype == torch.long and ei.shape[0] == 2
    assert bool((ei >= 0).all()) and bool((ei < n).all())
    assert not bool((ei[0] == ei[1]).any()), "self-loop"
    key = ei[0] * n + ei[1]
    assert key.unique().numel() == key.numel(), "duplicate edge"


@pytest.mark.parametrize("directed", [False, True])
def test_block_edge_counts_match_binomial_mean_and_variance(directed: bool) -> None:
    """Per block pair, edge counts over 3000 graphs ~ Binomial(M_rs, P_rs)."""
    g_count = 3000
    n = sum(SIZES)
    gen = torch.Generator().manual_seed(1)
    ei, ptr = sample_sbm_batch(SIZES, PROBS, g_count, directed, generator=gen)
    graph = torch.repeat_interleave(torch.arange(g_count), ptr.diff())
    assert torch.equal(ei[0] // n, graph) and torch.equal(ei[1] // n, graph)
    blk = block_of(SIZES)
    src, dst = blk[ei[0] % n], blk[ei[1] % n]
    c = len(SIZES)
    counts = torch.zeros(g_count, c, c).index_put_(
        (graph, src, dst), torch.ones(ei.shape[1]), accumulate=True
    )
    for r in range(c):
        for s in range(c):
            if not directed and s < r:
                continue
            m, p = n_pairs(SIZES, r, s, directed), PROBS[r][s]
            x = counts[:, r, s]
            if not directed and r == s:
                x = x / 2  # both directions of an undirected edge land in (r, r)
            mean, var = m * p, m * p * (1 - p)
            # mean: 5 standard errors; variance: sd of the sample variance ≈ var·√(2/(G−1))
            assert abs(x.mean().item() - mean) < 5 * math.sqrt(var / g_count), (r, s)
            assert abs(x.var().item() - var) < 5 * var * math.sqrt(2 / (g_count - 1)), (r, s)


@pytest.mark.parametrize("directed", [False, True])
def test_every_candidate_pair_is_equally_likely(directed: bool) -> None:
    """Each node pair of a block appears with frequency p (catches index-decoding bugs)."""
    sizes, p, g_count = [7, 5], 0.3, 4000
    probs = [[p, p], [p, p]]
    n = sum(sizes)
    ei, _ = sample_sbm_batch(
        sizes, probs, g_count, directed, generator=torch.Generator().manual_seed(2)
    )
    freq = (
        torch.zeros(n, n).index_put_(
            (ei[0] % n, ei[1] % n), torch.ones(ei.shape[1]), accumulate=True
        )
        / g_count
    )
    off = ~torch.eye(n, dtype=torch.bool)
    assert float(freq.diagonal().abs().max()) == 0.0
    se = math.sqrt(p * (1 - p) / g_count)
    assert float((freq[off] - p).abs().max()) < 5 * se
    if not directed:
        assert torch.equal(freq, freq.T)


def test_single_graph_is_simple_symmetric_and_deterministic() -> None:
    n = sum(SIZES)
    a = sample_sbm(SIZES, PROBS, generator=torch.Generator().manual_seed(5))
    b = sample_sbm(SIZES, PROBS, generator=torch.Generator().manual_seed(5))
    c = sample_sbm(SIZES, PROBS, generator=torch.Generator().manual_seed(6))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert_simple(a, n)
    fwd = set(map(tuple, a.T.tolist()))
    assert fwd == {(j, i) for i, j in fwd}
    d = sample_sbm(SIZES, PROBS, True, generator=torch.Generator().manual_seed(5))
    assert_simple(d, n)


def test_batch_of_one_equals_single_graph_and_graphs_are_independent() -> None:
    a = sample_sbm(SIZES, PROBS, generator=torch.Generator().manual_seed(3))
    b, ptr = sample_sbm_batch(SIZES, PROBS, 1, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and ptr.tolist() == [0, a.shape[1]]
    n = sum(SIZES)
    ei, ptr = sample_sbm_batch(SIZES, PROBS, 4, generator=torch.Generator().manual_seed(3))
    graphs = [ei[:, ptr[g] : ptr[g + 1]] - g * n for g in range(4)]
    for e in graphs:
        assert_simple(e, n)
    assert len({tuple(e.flatten().tolist()) for e in graphs}) == 4


def test_extreme_probabilities_give_exact_graphs() -> None:
    full = sample_sbm([4, 3], [[1.0, 1.0], [1.0, 1.0]])
    assert full.shape[1] == 7 * 6
    assert_simple(full, 7)
    assert sample_sbm([4, 3], [[0.0, 0.0], [0.0, 0.0]]).shape == (2, 0)
    bip = sample_sbm([4, 3], [[0.0, 1.0], [1.0, 0.0]], True)
    assert bip.shape[1] == 2 * 4 * 3
    assert bool((block_of([4, 3])[bip[0]] != block_of([4, 3])[bip[1]]).all())


def test_bernoulli_indices_top_up_rounds_and_huge_ranges() -> None:
    gen = torch.Generator().manual_seed(0)
    k = bernoulli_indices(50_000, 0.2, generator=gen, chunk=7)  # forces ~1400 rounds
    assert bool((k.diff() > 0).all()) and int(k[0]) >= 0 and int(k[-1]) < 50_000
    assert abs(k.numel() - 10_000) < 5 * math.sqrt(50_000 * 0.2 * 0.8)
    huge = bernoulli_indices(10**14, 1e-12, generator=gen)  # O(successes), not O(m)
    assert huge.numel() < 1000 and bool((huge < 10**14).all())


def test_invalid_sampler_arguments_raise() -> None:
    with pytest.raises(ValueError, match="symmetric"):
        sample_sbm([2, 2], [[0.1, 0.2], [0.3, 0.1]])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        sample_sbm([2, 2], [[0.1, 1.2], [1.2, 0.1]])
    with pytest.raises(ValueError, match="shape"):
        sample_sbm([2, 2, 2], [[0.1, 0.2], [0.2, 0.1]])
    with pytest.raises(ValueError, match="p="):
        bernoulli_indices(10, -0.1)


def test_detectability_threshold() -> None:
    assert sbm_snr(25.0, 1.7, 2) == pytest.approx((25 - 1.7) ** 2 / (2 * 26.7))
    assert is_detectable(25.0, 1.7, 2)
    assert not is_detectable(5.0, 3.0, 2)  # 4 < 16
    assert sbm_snr(3.0, 3.0, 4) == 0.0


def small_dm(**kw: object) -> SBMDataModule:
    cfg = {"n_nodes": 90, "p": 0.2, "q": 0.02, "n_train": 6, "n_val": 3, "n_test": 3}
    return zoo.create_datamodule("gnn_nc", **{**cfg, **kw})


def edge_sets(graphs: list) -> list[frozenset]:
    return [frozenset(map(tuple, d.edge_index.T.tolist())) for d in graphs]


def test_datamodule_graphs_splits_and_reproducibility() -> None:
    dm = small_dm(n_classes=3)
    train, val = dm.split("train"), dm.split("val")
    assert len(train) == 6 and len(val) == 3
    d = train[0]
    assert d.x.shape == (90, 8) and d.y.tolist() == [0] * 30 + [1] * 30 + [2] * 30
    for g in train:
        assert_simple(g.edge_index, 90)
    assert not set(edge_sets(train)) & set(edge_sets(val))  # splits hold different graphs
    again = small_dm(n_classes=3).split("train")
    for a, b in zip(train, again):
        assert torch.equal(a.edge_index, b.edge_index) and torch.equal(a.x, b.x)
    other = small_dm(n_classes=3, seed=1).split("train")
    assert edge_sets(train) != edge_sets(other)
    # features are pure N(0, 1) noise
    x = torch.cat([g.x for g in train])
    assert abs(x.mean().item()) < 0.05 and abs(x.std().item() - 1) < 0.05


@pytest.mark.parametrize("heterophilic", [False, True])
def test_intra_and_inter_degrees_follow_p_and_q(heterophilic: bool) -> None:
    dm = small_dm(n_nodes=200, n_train=20, heterophilic=heterophilic)
    intra = inter = 0
    for g in dm.split("train"):
        same = g.y[g.edge_index[0]] == g.y[g.edge_index[1]]
        intra += int(same.sum())
        inter += int((~same).sum())
    p_in, p_out = (0.02, 0.2) if heterophilic else (0.2, 0.02)
    exp_in, exp_out = 20 * 2 * 100 * 99 * p_in, 20 * 2 * 100 * 100 * p_out  # directed counts
    assert abs(intra - exp_in) < 5 * math.sqrt(2 * exp_in)
    assert abs(inter - exp_out) < 5 * math.sqrt(2 * exp_out)


def test_unbalanced_remainder_and_snr_property() -> None:
    dm = small_dm(n_nodes=91, n_classes=3)
    assert dm.block_sizes == [31, 30, 30]
    assert dm.snr == pytest.approx(sbm_snr(0.2 * 91, 0.02 * 91, 3))


@pytest.mark.parametrize(
    ("key", "value"),
    [("p", 1.5), ("q", -0.1), ("n_nodes", 1), ("n_classes", 1), ("feature_dim", 0)],
)
def test_invalid_data_config_names_the_key(key: str, value: object) -> None:
    with pytest.raises(ValueError, match=key):
        zoo.create_datamodule("gnn_nc", **{key: value})


def test_fewer_nodes_than_classes_raises() -> None:
    with pytest.raises(ValueError, match="n_nodes"):
        SBMDataModule(n_nodes=3, n_classes=4)


# -- regular SBM --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("c", "n", "d_in", "d_out"), [(2, 500, 12, 1), (3, 10, 3, 2), (4, 8, 7, 8), (2, 7, 6, 0)]
)
def test_regular_sbm_has_exact_degrees_and_is_simple(c: int, n: int, d_in: int, d_out: int) -> None:
    from torch_geometric.utils import coalesce, is_undirected

    gen = torch.Generator().manual_seed(0)
    ei, ptr = sample_regular_sbm_batch(c, n, d_in, d_out, 3, generator=gen)
    big_n = c * n
    y = torch.arange(c).repeat_interleave(n)
    assert ptr.tolist() == [k * big_n * (d_in + (c - 1) * d_out) for k in range(4)]
    for g in range(3):
        e = ei[:, ptr[g] : ptr[g + 1]] - g * big_n
        assert int(e.min()) >= 0 and int(e.max()) < big_n  # edges stay inside their graph
        assert bool((e[0] != e[1]).all()) and is_undirected(e, num_nodes=big_n)
        assert coalesce(e, num_nodes=big_n).shape == e.shape  # no duplicate edges
        for r in range(c):  # exact degree towards every block, for every node
            for s in range(c):
                mask = y[e[0]] == s
                deg = torch.bincount(e[1][mask], minlength=big_n)[y == r]
                assert bool((deg == (d_in if r == s else d_out)).all()), (r, s)


def test_regular_sbm_is_random_and_reproducible() -> None:
    def draw(seed: int) -> torch.Tensor:
        gen = torch.Generator().manual_seed(seed)
        return sample_regular_sbm_batch(2, 50, 4, 1, 2, generator=gen)[0]

    torch.testing.assert_close(draw(0), draw(0))
    a, b = draw(0), draw(1)
    assert not torch.equal(a, b)
    first, second = a[:, : a.shape[1] // 2], a[:, a.shape[1] // 2 :] - 100
    assert not torch.equal(
        torch.sort(first[0] * 100 + first[1]).values, torch.sort(second[0] * 100 + second[1]).values
    )  # graphs differ


def test_regular_datamodule_degrees_and_errors() -> None:
    def regular(**kw: object) -> SBMDataModule:
        return zoo.create_datamodule({"name": "sbm_regular"}, **kw)

    dm = regular(n_train=2, n_val=1, n_test=1)
    assert isinstance(dm, RegularSBMDataModule) and dm.degrees == (12, 1)  # 0.025·499, 0.0017·500
    dm.setup("fit")
    g = dm.split("train")[0]
    same = g.y[g.edge_index[0]] == g.y[g.edge_index[1]]
    assert bool((torch.bincount(g.edge_index[1][same], minlength=1000) == 12).all())
    assert bool((torch.bincount(g.edge_index[1][~same], minlength=1000) == 1).all())
    assert g.x.shape == (1000, 8) and g.y.tolist() == [0] * 500 + [1] * 500
    het = regular(heterophilic=True, n_train=1)
    assert het.degrees == (1, 12)
    het.setup("fit")
    h = het.split("train")[0]
    assert bool((h.y[h.edge_index[0]] != h.y[h.edge_index[1]]).float().mean() > 0.9)
    with pytest.raises(ValueError, match="divide"):
        regular(n_nodes=999)
    with pytest.raises(ValueError, match="odd"):
        regular(n_nodes=14, p=3 / 6, q=0.0)
    with pytest.raises(ValueError, match="degree_in"):
        sample_regular_sbm_batch(2, 5, 5, 0)
