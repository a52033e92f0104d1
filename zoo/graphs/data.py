"""Stochastic block model graphs: an O(N + E) sampler and the ``sbm`` datamodule.

The SBM with block sizes ``n_1..n_C`` and edge-probability matrix ``P`` (C × C) puts an
edge between nodes ``i ∈ block r`` and ``j ∈ block s`` (``i ≠ j``) independently with
probability ``P[r, s]``. :func:`sample_sbm` has the signature of
``torch_geometric.utils.stochastic_blockmodel_graph`` (which enumerates all N² pairs) but
runs in O(N + E): for every block pair it walks the ``M_rs`` candidate node pairs of the
block with *geometric skipping* — the gaps between consecutive successes of a Bernoulli(p)
process are i.i.d. ``Geometric(p)``, ``gap = ⌊log(1 − U) / log(1 − p)⌋ + 1`` — so it draws
one uniform per edge (plus a small constant slack), takes a cumulative sum and decodes the
linear pair indices into ``(i, j)``. Indices are distinct by construction, so graphs are
simple (no self-loops, no multi-edges) without any de-duplication, and the number of
edges of a block pair is exactly ``Binomial(M_rs, P[r, s])``.

:func:`sample_sbm_batch` draws many independent graphs in one vectorised pass (the
datamodule uses it); :func:`sample_sbm` is its single-graph case.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Annotated, Any

import torch
from torch import Tensor

from zoo.core.config import Footprint, Interval
from zoo.core.data import SPLITS, Split, SyntheticDataModule
from zoo.core.registry import register_datamodule

__all__ = [
    "RegularSBMDataModule",
    "SBMDataModule",
    "bernoulli_indices",
    "is_detectable",
    "regular_sbm_degrees",
    "sample_regular_sbm_batch",
    "sample_sbm",
    "sample_sbm_batch",
    "sbm_snr",
]


def bernoulli_indices(
    m: int,
    p: float,
    *,
    generator: torch.Generator | None = None,
    device: torch.device | None = None,
    chunk: int | None = None,
) -> Tensor:
    """Sorted indices ``k ∈ [0, m)`` of the successes of ``m`` i.i.d. Bernoulli(p) trials.

    Geometric skipping: consecutive success gaps are ``Geometric(p)`` on ``{1, 2, ...}``,
    drawn by inversion ``gap = ⌊log1p(−U) / log1p(−p)⌋ + 1``. Cost O(m·p) (one uniform per
    success plus a 6σ slack; a rare second round tops up if the first falls short).

    Args:
        m: number of trials.
        p: success probability.
        generator: the only source of randomness (on ``device``).
        device: where to sample.
        chunk: gaps drawn per round (default: mean + 6σ + 16 of the remaining count; a
            small value exercises the top-up rounds).

    Returns:
        ``(K,)`` int64, strictly increasing, ``K ~ Binomial(m, p)``.
    """
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p={p!r} must lie in [0, 1]")
    if m <= 0 or p == 0.0:
        return torch.empty(0, dtype=torch.long, device=device)
    if p == 1.0:
        return torch.arange(m, device=device)
    log_q = math.log1p(-p)
    chunks: list[Tensor] = []
    last = -1  # index of the last success so far
    remaining = m
    while True:
        mean = remaining * p
        k = chunk or int(mean + 6.0 * math.sqrt(mean * (1.0 - p)) + 16)
        u = torch.rand(k, generator=generator, device=device, dtype=torch.float64)
        # log1p(−u)/log(1−p) ≥ 0, so truncation is the floor; in place to save memory traffic
        gaps = u.neg_().log1p_().mul_(1.0 / log_q).clamp_(max=float(m)).long().add_(1)
        idx = torch.cumsum(gaps, 0).add_(last)
        if int(idx[-1]) >= m:  # the walk left [0, m): done
            chunks.append(idx[: int(torch.searchsorted(idx, m))])
            break
        chunks.append(idx)
        last = int(idx[-1])
        remaining = m - 1 - last
    return chunks[0] if len(chunks) == 1 else torch.cat(chunks)


def _decode_lower_triangle(k: Tensor) -> tuple[Tensor, Tensor]:
    """Linear index ``k`` of the strict lower triangle (row-major) → ``(i, j)``, ``j < i``.

    ``k = i(i−1)/2 + j``, so ``i = ⌊(1 + √(1 + 8k)) / 2⌋`` up to one float64 rounding step,
    which is corrected exactly in integers.
    """
    i = torch.floor((1.0 + torch.sqrt(1.0 + 8.0 * k.double())) / 2.0).long()
    i = i - (i * (i - 1) // 2 > k).long()
    i = i + ((i + 1) * i // 2 <= k).long()
    return i, k - i * (i - 1) // 2


def _as_sizes_probs(
    block_sizes: Sequence[int] | Tensor,
    edge_probs: Sequence[Sequence[float]] | Tensor,
    directed: bool,
) -> tuple[list[int], list[list[float]]]:
    sizes = [int(s) for s in torch.as_tensor(block_sizes).reshape(-1).tolist()]
    probs_t = torch.as_tensor(edge_probs, dtype=torch.float64)
    c = len(sizes)
    if probs_t.shape != (c, c):
        raise ValueError(
            f"edge_probs must have shape ({c}, {c}) for {c} blocks, got {tuple(probs_t.shape)}"
        )
    if any(s < 0 for s in sizes):
        raise ValueError(f"block_sizes={sizes} must be non-negative")
    if bool(((probs_t < 0) | (probs_t > 1) | probs_t.isnan()).any()):
        raise ValueError("edge_probs must lie in [0, 1]")
    if not directed and not torch.allclose(probs_t, probs_t.T):
        raise ValueError("edge_probs must be symmetric for an undirected graph")
    return sizes, probs_t.tolist()


def sample_sbm_batch(
    block_sizes: Sequence[int] | Tensor,
    edge_probs: Sequence[Sequence[float]] | Tensor,
    num_graphs: int,
    directed: bool = False,
    *,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> tuple[Tensor, Tensor]:
    """``num_graphs`` independent SBM graphs as one disjoint union, grouped by graph.

    Graph ``g`` owns nodes ``[g·N, (g+1)·N)`` (``N = Σ block_sizes``) and the edge columns
    ``ptr[g]:ptr[g+1]``. Undirected edges appear in both directions. One vectorised pass per
    block pair over the ``num_graphs · M_rs`` candidate pairs; cost O(G·(N + E)).

    Returns:
        ``edge_index (2, E_total)`` int64 and ``ptr (num_graphs + 1,)`` int64 (on ``device``).
    """
    if num_graphs < 1:
        raise ValueError(f"num_graphs={num_graphs} must be >= 1")
    device = torch.device(device) if device is not None else torch.device("cpu")
    sizes, probs = _as_sizes_probs(block_sizes, edge_probs, directed)
    offsets = [0]
    for s in sizes:
        offsets.append(offsets[-1] + s)
    n = offsets[-1]
    # Phase 1: the successes of every block pair, as sorted linear indices.
    blocks: list[tuple[int, int, int, Tensor]] = []  # (r, s, M_rs, indices in [0, G·M_rs))
    for r in range(len(sizes)):
        for s in range(len(sizes)) if directed else range(r, len(sizes)):
            nr, ns = sizes[r], sizes[s]
            m = nr * ns if r != s else (nr * (nr - 1) if directed else nr * (nr - 1) // 2)
            idx = bernoulli_indices(num_graphs * m, probs[r][s], generator=generator, device=device)
            if idx.numel():
                blocks.append((r, s, m, idx))
    mult = 1 if directed else 2
    total = mult * sum(b[3].numel() for b in blocks)
    edge_index = torch.empty(2, total, dtype=torch.long, device=device)
    if num_graphs == 1:
        ptr = torch.tensor([0, total], device=device)
    else:
        # Edges are written grouped by graph. Within a block pair the graph ids are
        # sorted, so an edge's destination is (start of its graph's run for this block
        # pair) + (its rank inside that run): a counting sort, O(E), no comparison sort.
        graphs = [b[3] // b[2] for b in blocks]
        counts = torch.stack([torch.bincount(g, minlength=num_graphs) for g in graphs]) * mult
        ptr = torch.zeros(num_graphs + 1, dtype=torch.long, device=device)
        ptr[1:] = torch.cumsum(counts.sum(0), 0)
        run_dest = ptr[:-1] + torch.cumsum(counts, 0) - counts  # (S, G) output start
        run_src = (torch.cumsum(counts, 1) - counts) // mult  # (S, G) start inside the pair
    # Phase 2: decode k → (i, j) and write both directions.
    pos = 0
    for b, (r, s, m, idx) in enumerate(blocks):
        n_r, n_s = sizes[r], sizes[s]
        k = idx if num_graphs == 1 else idx - graphs[b] * m
        if r != s:
            i = torch.div(k, n_s, rounding_mode="floor")
            j = k - i * n_s
        elif directed:
            i = torch.div(k, n_r - 1, rounding_mode="floor")
            j = k - i * (n_r - 1)
            j += (j >= i).long()
        else:
            i, j = _decode_lower_triangle(k)
        kk = idx.numel()
        if num_graphs == 1:
            rows = edge_index[:, pos : pos + kk]
            torch.add(i, offsets[r], out=rows[0])
            torch.add(j, offsets[s], out=rows[1])
            if not directed:  # the reverse direction, copied row by row (no temporary)
                edge_index[0, pos + kk : pos + 2 * kk] = rows[1]
                edge_index[1, pos + kk : pos + 2 * kk] = rows[0]
            pos += mult * kk
            continue
        g = graphs[b]
        dest = torch.arange(kk, device=device) - run_src[b, g] + run_dest[b, g]
        row, col = i + (g * n + offsets[r]), j + (g * n + offsets[s])
        edge_index[0, dest], edge_index[1, dest] = row, col
        if not directed:
            dest += counts[b, g] // 2
            edge_index[0, dest], edge_index[1, dest] = col, row
    return edge_index, ptr


def _random_subsets(
    shape: tuple[int, ...], population: int, k: int, generator: torch.Generator | None, device: Any
) -> Tensor:
    """``shape + (k,)`` int64: independent uniform k-subsets of ``[0, population)``."""
    u = torch.rand(*shape, population, generator=generator, device=device)
    return u.argsort(-1)[..., :k]


def regular_sbm_degrees(block_size: int, p_in: float, p_out: float) -> tuple[int, int]:
    """The within- and between-block degrees closest to an SBM's expected ones:
    ``(round(p_in (n − 1)), round(p_out n))`` for blocks of ``n`` nodes."""
    return round(p_in * (block_size - 1)), round(p_out * block_size)


def sample_regular_sbm_batch(
    num_classes: int,
    block_size: int,
    degree_in: int,
    degree_out: int,
    num_graphs: int = 1,
    *,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> tuple[Tensor, Tensor]:
    """``num_graphs`` *regular* SBM graphs: every node has exactly ``degree_in`` neighbours in
    its own block and exactly ``degree_out`` in each other block (Kothapalli et al.'s
    ``SBMRegular``, on which the graph unconstrained-features model collapses exactly).

    C blocks of ``n = block_size`` nodes (block r holds nodes ``[r n, (r + 1) n)`` of each
    graph). Inside block r, with a uniform random relabelling π_r of its nodes and a uniform
    random set S_r of ``⌊degree_in/2⌋`` distinct shifts in ``[1, ⌊(n − 1)/2⌋]``, the edges are
    ``{π_r(i), π_r(i + s mod n)}`` for s ∈ S_r (plus the perfect matching ``s = n/2`` when
    ``degree_in`` is odd, which needs n even): a randomly relabelled random circulant graph,
    simple and exactly ``degree_in``-regular. Between blocks r < s, with a uniform random set
    T_rs of ``degree_out`` distinct offsets in ``[0, n)``, the edges are
    ``{π_r(i), π_s(i + t mod n)}`` for t ∈ T_rs: exactly ``degree_out`` neighbours in s for
    every node of r and vice versa. These are not uniform over all such regular graphs; they
    have the exact degrees, which is what the collapse theory uses. Every graph has the same
    number of edges, written grouped by graph, both directions; vectorised over graphs, cost
    O(G (N + E) log N) (the random permutations and subsets are argsorts of uniforms).

    Returns:
        ``edge_index (2, G · E_g)`` int64 and ``ptr (G + 1,)`` with ``E_g = C n (degree_in +
        (C − 1) degree_out)`` directed edges per graph.
    """
    n, c = block_size, num_classes
    if num_graphs < 1 or c < 1 or n < 1:
        raise ValueError(f"need num_graphs, num_classes, block_size >= 1, got {num_graphs, c, n}")
    if not 0 <= degree_in <= n - 1:
        raise ValueError(f"degree_in={degree_in} must lie in [0, block_size - 1 = {n - 1}]")
    if degree_in % 2 and n % 2:
        raise ValueError(
            f"degree_in={degree_in} is odd and block_size={n} too: no {degree_in}-regular graph "
            "has an odd number of nodes"
        )
    if not 0 <= degree_out <= n or (c == 1 and degree_out):
        raise ValueError(f"degree_out={degree_out} must lie in [0, block_size = {n}]")
    device = torch.device(device) if device is not None else torch.device("cpu")
    g_n = num_graphs
    perm = _random_subsets((g_n, c), n, n, generator, device)  # (G, C, n): π_r
    base = (torch.arange(g_n, device=device)[:, None] * (c * n)) + (
        torch.arange(c, device=device)[None, :] * n
    )  # (G, C) first node of each block
    node = perm + base[..., None]  # (G, C, n): global id of π_r(i)
    i = torch.arange(n, device=device)
    src: list[Tensor] = []
    dst: list[Tensor] = []
    half = degree_in // 2
    if half:
        shifts = _random_subsets((g_n, c), (n - 1) // 2, half, generator, device) + 1  # (G, C, K)
        j = (i[None, None, None, :] + shifts[..., None]) % n  # (G, C, K, n)
        src.append(node[:, :, None, :].expand_as(j).reshape(g_n, -1))
        dst.append(node.gather(2, j.reshape(g_n, c, -1)).reshape(g_n, -1))
    if degree_in % 2:  # the perfect matching i ↔ i + n/2, each pair once
        src.append(node[:, :, : n // 2].reshape(g_n, -1))
        dst.append(node[:, :, n // 2 :].reshape(g_n, -1))
    pairs = [(r, s) for r in range(c) for s in range(r + 1, c)]
    if degree_out and pairs:
        r_idx = torch.tensor([r for r, _ in pairs], device=device)
        s_idx = torch.tensor([s for _, s in pairs], device=device)
        offsets = _random_subsets((g_n, len(pairs)), n, degree_out, generator, device)  # (G,P,T)
        j = (i[None, None, None, :] + offsets[..., None]) % n  # (G, P, T, n)
        src.append(node[:, r_idx, None, :].expand_as(j).reshape(g_n, -1))
        dst.append(node[:, s_idx].gather(2, j.reshape(g_n, len(pairs), -1)).reshape(g_n, -1))
    per_graph = c * n * (degree_in + (c - 1) * degree_out)
    if not src:
        return torch.empty(2, 0, dtype=torch.long, device=device), torch.zeros(
            g_n + 1, dtype=torch.long, device=device
        )
    a, b = torch.cat(src, 1), torch.cat(dst, 1)  # (G, E_g / 2): each undirected edge once
    edge_index = torch.stack([torch.cat([a, b], 1), torch.cat([b, a], 1)]).reshape(2, -1)
    ptr = torch.arange(g_n + 1, device=device) * per_graph
    return edge_index, ptr


def sample_sbm(
    block_sizes: Sequence[int] | Tensor,
    edge_probs: Sequence[Sequence[float]] | Tensor,
    directed: bool = False,
    *,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> Tensor:
    """``edge_index`` of one stochastic block model graph, in O(N + E).

    Drop-in for ``torch_geometric.utils.stochastic_blockmodel_graph`` (same positional
    arguments; edges are not sorted — apply ``torch_geometric.utils.coalesce`` if needed).

    Args:
        block_sizes: ``(C,)`` sizes of the blocks; nodes of block ``r`` are
            ``[Σ_{s<r} n_s, Σ_{s≤r} n_s)``.
        edge_probs: ``(C, C)`` edge probabilities; symmetric unless ``directed``.
        directed: draw every ordered pair ``(i, j)``, ``i ≠ j``, independently; otherwise
            every unordered pair once and emit it in both directions.
        generator: the only source of randomness (on ``device``).
        device: where to sample (default CPU).

    Returns:
        ``(2, E)`` int64 edge index of a simple graph (no self-loops, no duplicates).
    """
    return sample_sbm_batch(
        block_sizes, edge_probs, 1, directed, generator=generator, device=device
    )[0]


def sbm_snr(a: float, b: float, num_classes: int) -> float:
    """Kesten–Stigum signal-to-noise ratio ``(a − b)² / (C (a + (C − 1) b))``.

    With ``p = a/N``, ``q = b/N`` the communities are detectable (better than chance, by
    efficient algorithms) iff the ratio exceeds 1.
    """
    denom = num_classes * (a + (num_classes - 1) * b)
    return math.inf if denom == 0 else (a - b) ** 2 / denom


def is_detectable(a: float, b: float, num_classes: int) -> bool:
    """``(a − b)² > C (a + (C − 1) b)``: above the SBM detectability threshold."""
    return sbm_snr(a, b, num_classes) > 1.0


@register_datamodule("sbm")
class SBMDataModule(SyntheticDataModule):
    """Balanced C-community SBM graphs with pure-noise node features (Kothapalli et al.).

    Each sample is one ``torch_geometric.data.Data(x, edge_index, y)`` with ``N`` nodes:
    ``y`` the community (block ``r`` holds nodes ``[r·N/C, (r+1)·N/C)``, the first ``N mod C``
    blocks one node larger), ``x ~ N(0, I_F)`` carrying no label information, and edges
    from :func:`sample_sbm` with probability ``p`` inside a community and ``q`` across
    (swapped when ``heterophilic``). ``p = a/N``, ``q = b/N``; see :attr:`snr`.

    Args:
        n_nodes: N, nodes per graph.
        n_classes: C, number of balanced communities.
        p: intra-community edge probability.
        q: inter-community edge probability.
        feature_dim: F, node feature dimension.
        heterophilic: use ``q`` inside and ``p`` across communities.
        **kwargs: ``seed``, ``n_train``/``n_val``/``n_test`` (graphs), ``batch_size``
            (graphs per step), ``device`` — see :class:`zoo.core.SyntheticDataModule`.
    """

    def __init__(
        self,
        n_nodes: Annotated[int, Interval(ge=2)] = 1000,
        n_classes: Annotated[int, Interval(ge=2)] = 2,
        p: Annotated[float, Interval(ge=0, le=1)] = 0.025,
        q: Annotated[float, Interval(ge=0, le=1)] = 0.0017,
        feature_dim: Annotated[int, Interval(ge=1)] = 8,
        heterophilic: bool = False,
        **kwargs: Any,
    ) -> None:
        if n_nodes < n_classes:
            raise ValueError(f"n_nodes={n_nodes} must be >= n_classes={n_classes}")
        super().__init__(**kwargs)

    @staticmethod
    def expected_edges(cfg: Mapping[str, Any]) -> float:
        """Expected number of undirected edges of one graph of the config ``cfg``."""
        n, c = cfg["n_nodes"], cfg["n_classes"]
        p_in, p_out = (cfg["q"], cfg["p"]) if cfg["heterophilic"] else (cfg["p"], cfg["q"])
        within = n * max(n / c - 1, 0) / 2  # pairs inside balanced communities
        return within * p_in + (n * (n - 1) / 2 - within) * p_out

    @classmethod
    def footprint(cls, cfg: Mapping[str, Any]) -> Footprint:
        """Memory of all splits: per graph x (N, F) float32, y (N,) int64, both directions of
        every edge as int64 and ~2 KiB of Python objects; plus the sampler's temporaries
        (~64 bytes per edge) for the largest split."""
        n, edges = cfg["n_nodes"], cls.expected_edges(cfg)
        graph = n * cfg["feature_dim"] * 4 + n * 8 + 2 * edges * 2 * 8 + 2048
        graphs = sum(cfg[f"n_{s}"] for s in SPLITS)
        largest = max(cfg[f"n_{s}"] for s in SPLITS)
        return Footprint(other=graphs * graph + largest * edges * 64)

    @property
    def block_sizes(self) -> list[int]:
        """``(C,)`` community sizes, balanced to within one node."""
        n, c = self.hparams.n_nodes, self.hparams.n_classes
        return [n // c + (r < n % c) for r in range(c)]

    @property
    def edge_probs(self) -> list[list[float]]:
        """``(C, C)`` matrix with ``p_in`` on the diagonal and ``p_out`` off it."""
        hp = self.hparams
        p_in, p_out = (hp.q, hp.p) if hp.heterophilic else (hp.p, hp.q)
        c = hp.n_classes
        return [[p_in if r == s else p_out for s in range(c)] for r in range(c)]

    @property
    def snr(self) -> float:
        """Kesten–Stigum ratio of this SBM (``> 1``: above the detectability threshold)."""
        hp = self.hparams
        return sbm_snr(hp.p * hp.n_nodes, hp.q * hp.n_nodes, hp.n_classes)

    def sample_edges(
        self, n: int, generator: torch.Generator, device: torch.device
    ) -> tuple[Tensor, Tensor]:
        """``n`` graphs' ``edge_index`` and ``ptr`` (:func:`sample_sbm_batch`)."""
        return sample_sbm_batch(
            self.block_sizes, self.edge_probs, n, generator=generator, device=device
        )

    def generate(
        self, split: Split, n: int, generator: torch.Generator, device: torch.device
    ) -> list:
        """``n`` graphs as a list of ``Data(x (N, F), edge_index (2, E_g), y (N,))``."""
        from torch_geometric.data import Data

        hp = self.hparams
        N = hp.n_nodes
        edge_index, ptr = self.sample_edges(n, generator, device)
        x = torch.randn(n, N, hp.feature_dim, generator=generator, device=device)
        y = torch.repeat_interleave(
            torch.arange(hp.n_classes, device=device), torch.tensor(self.block_sizes, device=device)
        )
        ptr_l = ptr.tolist()
        return [
            Data(
                x=x[g],
                edge_index=edge_index[:, ptr_l[g] : ptr_l[g + 1]] - g * N,
                y=y.clone(),
                num_nodes=N,
            )
            for g in range(n)
        ]


@register_datamodule("sbm_regular")
class RegularSBMDataModule(SBMDataModule):
    """*Regular* SBM graphs (:func:`sample_regular_sbm_batch`): every node has exactly the
    within- and between-community degrees :func:`regular_sbm_degrees` of ``p`` and ``q``
    (swapped when ``heterophilic``); otherwise the ``sbm`` datamodule (same parameters, pure
    noise features). Needs C to divide N, and an even within-community degree when N/C is odd.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        hp = self.hparams
        size = hp.n_nodes // hp.n_classes
        if hp.n_nodes % hp.n_classes:
            raise ValueError(f"n_classes={hp.n_classes} must divide n_nodes={hp.n_nodes}")
        d_in, _ = self.degrees
        if d_in % 2 and size % 2:
            raise ValueError(
                f"within-community degree {d_in} and community size {size} are both odd (no "
                "such regular graph); change p or n_nodes"
            )

    @property
    def degrees(self) -> tuple[int, int]:
        """(within, between) degrees of every node (towards each other community)."""
        probs = self.edge_probs
        return regular_sbm_degrees(self.hparams.n_nodes // self.hparams.n_classes, *probs[0][:2])

    def sample_edges(
        self, n: int, generator: torch.Generator, device: torch.device
    ) -> tuple[Tensor, Tensor]:
        """``n`` regular SBM graphs' ``edge_index`` and ``ptr``."""
        size = self.hparams.n_nodes // self.hparams.n_classes
        return sample_regular_sbm_batch(
            self.hparams.n_classes, size, *self.degrees, n, generator=generator, device=device
        )
