"""Generative hierarchical models (GHM): grammars, vectorised tree sampling, the datamodule.

A GHM of depth ``L``, branching ``m`` and vocabulary ``S`` is a tree: the root symbol
``x⁽⁰⁾ ~ π`` and every node with symbol ``s`` at level ``ℓ`` emits its ``m`` children jointly,

    (x_{c_1}, …, x_{c_m}) ~ ψ⁽ℓ⁾(· | s)   on [S]^m,

down to the ``m^L`` leaves ``x⁽ᴸ⁾``, the observed sequence (children of node ``i`` at level
``ℓ`` sit at positions ``i·m … i·m+m−1`` of level ``ℓ+1``). The root is the class label.
Two families of transitions are provided:

- :func:`dirichlet_grammar` — dense: ``ψ⁽ℓ⁾(· | s) ~ Dirichlet(α·1_{S^m})`` i.i.d.;
- :func:`rhm_grammar` — the Random Hierarchy Model's sparse *synonym rules*: every symbol
  has ``n_rules`` productions (distinct ``m``-tuples, disjoint across parents, so the
  grammar is unambiguous), each chosen with probability ``1/n_rules``.

Denoising observations are ``y = E x⁽ᴸ⁾ + σ g`` with the one-hot embedding ``E = I_S`` and
``g ~ N(0, I)``; see :class:`GHMDataModule`.

Held-out sequences never occur in training, by construction: :func:`sequence_key` hashes a
leaf sequence to ``u(x) ∈ [0, 1)`` (a fixed universal hash, independent of grammar and seed)
and the space of sequences is partitioned by ``u``: validation ``u < f``, test
``f ≤ u < 2f``, training ``u ≥ 2f`` (``f`` = ``holdout``). Each split is sampled from the
grammar restricted to its part (rejection, vectorised).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal, NamedTuple

import torch
from torch import Tensor

from zoo.core.config import Footprint, Interval, Seed, safe_pow
from zoo.core.data import SPLITS, SyntheticDataModule, TensorBatches
from zoo.core.registry import register_datamodule

__all__ = [
    "GHMDataModule",
    "Grammar",
    "Rules",
    "contains",
    "dirichlet_grammar",
    "distinct",
    "rhm_grammar",
    "sample_gamma",
    "sequence_key",
    "split_of",
]


class Rules(NamedTuple):
    """The non-zero productions of one level: ``ψ(children[r] | parent[r]) = prob[r]``.

    Attributes: parent: (R,) long; children: (R, m) long; prob: (R,) — sorted by parent.
    """

    parent: Tensor
    children: Tensor
    prob: Tensor


@dataclass
class Grammar:
    """A generative hierarchical model.

    Attributes:
        root_prior: ``π``: (S,), the distribution of the root symbol.
        transitions: ``L`` tensors, level ``ℓ`` of shape ``(S, S, …, S)`` (``m + 1`` axes) =
            (parent, child_1, …, child_m), holding ``ψ⁽ℓ⁾(child_1…child_m | parent)``
            (each parent's slice sums to 1).
    """

    root_prior: Tensor
    transitions: list[Tensor]

    def __post_init__(self) -> None:
        S = self.root_prior.shape[0]
        if self.root_prior.dim() != 1:
            raise ValueError(f"root_prior must be (S,), got {tuple(self.root_prior.shape)}")
        if not self.transitions:
            raise ValueError("a grammar needs at least one level of transitions")
        m = self.transitions[0].dim() - 1
        if m < 1:
            raise ValueError("transitions must have shape (S, S, ..., S) with m >= 1 children")
        for level, t in enumerate(self.transitions):
            if tuple(t.shape) != (S,) * (m + 1):
                raise ValueError(
                    f"transitions[{level}] has shape {tuple(t.shape)}, expected {(S,) * (m + 1)}"
                )

    @property
    def n_symbols(self) -> int:
        """``S``: vocabulary size."""
        return int(self.root_prior.shape[0])

    @property
    def branching(self) -> int:
        """``m``: children per node."""
        return self.transitions[0].dim() - 1

    @property
    def depth(self) -> int:
        """``L``: number of levels below the root."""
        return len(self.transitions)

    @property
    def n_leaves(self) -> int:
        """``m^L``: length of the observed sequence."""
        return self.branching**self.depth

    @property
    def device(self) -> torch.device:
        return self.root_prior.device

    def flat(self, level: int) -> Tensor:
        """``ψ⁽ℓ⁾`` as a (S, S^m) matrix; child tuples in row-major order (child_1 slowest)."""
        return self.transitions[level].reshape(self.n_symbols, -1)

    def rules(self, level: int) -> Rules:
        """The non-zero entries of ``ψ⁽ℓ⁾`` as a rule list (O(S^{m+1}) to extract)."""
        S, m = self.n_symbols, self.branching
        parent, tup = self.flat(level).nonzero(as_tuple=True)
        powers = S ** torch.arange(m - 1, -1, -1, device=self.device)
        return Rules(parent, (tup[:, None] // powers) % S, self.flat(level)[parent, tup])

    @property
    def sparse(self) -> bool:
        """Whether BP should gather over rules rather than contract the dense ψ: at most a
        quarter of the ``S^{m+1}`` entries are non-zero at every level (true for RHM
        grammars, false for Dirichlet ones)."""
        total = self.n_symbols ** (self.branching + 1)
        return all(4 * int((t != 0).sum()) <= total for t in self.transitions)

    def n_sequences(self) -> int:
        """The exact number of distinct leaf sequences with ``p(x) > 0`` (a Python int).

        Counts derivations, ``c_L(s) = 1``, ``c_ℓ(s) = Σ_{t: ψ(t|s) > 0} Π_j c_{ℓ+1}(t_j)``,
        ``Σ_{s: π_s > 0} c_0(s)``: exact for an unambiguous grammar (every child tuple has at
        most one parent per level, as in the RHM); ``S^N`` for a fully dense one.

        Raises:
            ValueError: for an ambiguous grammar that is not fully dense.
        """
        S = self.n_symbols
        if all(bool((t > 0).all()) for t in self.transitions):
            return S**self.n_leaves
        if any(bool(((self.flat(lv) > 0).sum(0) > 1).any()) for lv in range(self.depth)):
            raise ValueError("n_sequences needs an unambiguous or a fully dense grammar")
        count = [1] * S
        for level in reversed(range(self.depth)):
            parent, children, _ = self.rules(level)
            new = [0] * S
            for p, kids in zip(parent.tolist(), children.tolist()):
                new[p] += math.prod(count[k] for k in kids)
            count = new
        return sum(c for c, p in zip(count, self.root_prior.tolist()) if p > 0)

    def to(
        self, device: torch.device | str | None = None, dtype: torch.dtype | None = None
    ) -> Grammar:
        """A copy on ``device`` / in ``dtype``."""
        return Grammar(
            self.root_prior.to(device=device, dtype=dtype),
            [t.to(device=device, dtype=dtype) for t in self.transitions],
        )

    def equal(self, other: Grammar) -> bool:
        """Exact (bitwise) equality of all tensors."""
        return (
            self.depth == other.depth
            and torch.equal(self.root_prior.cpu(), other.root_prior.cpu())
            and all(
                torch.equal(a.cpu(), b.cpu()) for a, b in zip(self.transitions, other.transitions)
            )
        )

    def describe(self) -> str:
        """One line: sizes and sparsity."""
        nnz = [int((t > 0).sum()) // self.n_symbols for t in self.transitions]
        return (
            f"S={self.n_symbols} symbols, branching m={self.branching}, depth L={self.depth} "
            f"({self.n_leaves} leaves); productions per symbol by level: {nnz} of "
            f"{self.n_symbols**self.branching} possible"
        )

    def sample(self, n: int, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """Draw ``n`` trees, level by level (vectorised over the batch and the level).

        Each level uses inverse-CDF sampling of the flattened child tuple: the per-parent CDFs
        of ``ψ⁽ℓ⁾`` are laid end to end (parent ``s`` occupies ``[s, s+1]``), so one
        ``searchsorted`` of ``parent + u`` picks every node's children at once in
        O(nodes · log(S^{m+1})) time and O(nodes) memory.

        Returns:
            leaves: (n, m^L) long, root: (n,) long — on the grammar's device.
        """
        device = self.device
        S, m = self.n_symbols, self.branching
        u = torch.rand(n, generator=generator, device=device, dtype=torch.float64)
        root = _inverse_cdf(
            self.root_prior.double()[None], torch.zeros_like(u, dtype=torch.long), u
        )
        x = root[:, None]
        powers = S ** torch.arange(m - 1, -1, -1, device=device)
        for level in range(self.depth):
            parents = x.reshape(-1)
            u = torch.rand(parents.numel(), generator=generator, device=device, dtype=torch.float64)
            tup = _inverse_cdf(self.flat(level).double(), parents, u)
            children = (tup[:, None] // powers) % S  # (n·m^ℓ, m)
            x = children.reshape(n, -1)
        return x, root


def _inverse_cdf(probs: Tensor, rows: Tensor, u: Tensor) -> Tensor:
    """Sample column ``j ~ probs[rows[i]]`` for every ``i`` from uniforms ``u`` in [0, 1).

    Args:
        probs: (R, K) non-negative rows (normalised here). rows: (N,) long. u: (N,) float64.

    Returns:
        (N,) long column indices, never one of zero probability.
    """
    R, K = probs.shape
    cdf = probs.cumsum(-1)
    cdf = cdf / cdf[:, -1:]
    cdf[:, -1] = 1.0
    offsets = torch.arange(R, device=probs.device, dtype=probs.dtype)[:, None]
    flat = (cdf + offsets).reshape(-1)
    idx = torch.searchsorted(flat, rows.to(probs.dtype) + u, right=True)
    # guard the round-off of ``row + u`` against the row's last non-zero column
    col = torch.arange(K, device=probs.device)
    last = torch.where(probs > 0, col, -1).amax(-1)  # (R,)
    idx = torch.minimum(idx - rows * K, last[rows])
    return idx


def sample_gamma(alpha: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Gamma(α, 1) draws, elementwise, with only ``generator`` as randomness.

    Marsaglia–Tsang squeeze/rejection for α ≥ 1 (vectorised, redrawing only the rejected
    entries), and the boost ``Γ(α) = Γ(α+1) · U^{1/α}`` for α < 1.
    """
    alpha = alpha.double()
    small = alpha < 1
    a = torch.where(small, alpha + 1, alpha)
    d = a - 1.0 / 3.0
    c = 1.0 / torch.sqrt(9.0 * d)
    out = torch.empty_like(a)
    todo = torch.ones_like(a, dtype=torch.bool)
    while bool(todo.any()):
        idx = todo.nonzero(as_tuple=True)
        z = torch.randn(idx[0].shape, generator=generator, device=a.device, dtype=a.dtype)
        u = torch.rand(idx[0].shape, generator=generator, device=a.device, dtype=a.dtype)
        v = (1 + c[idx] * z) ** 3
        ok = (v > 0) & (
            torch.log(u)
            < 0.5 * z**2 + d[idx] - d[idx] * v + d[idx] * torch.log(v.clamp_min(1e-300))
        )
        sel = tuple(i[ok] for i in idx)
        out[sel] = (d[idx] * v)[ok]
        todo[sel] = False
    if bool(small.any()):
        u = torch.rand(a.shape, generator=generator, device=a.device, dtype=a.dtype)
        out = torch.where(small, out * u ** (1.0 / alpha), out)
    return out


def dirichlet_grammar(
    n_symbols: int,
    branching: int,
    depth: int,
    *,
    concentration: float = 1.0,
    n_classes: int | None = None,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
) -> Grammar:
    """Dense random transitions ``ψ⁽ℓ⁾(· | s) ~ Dirichlet(α 1)`` on [S]^m; the root is
    uniform on the first ``n_classes`` symbols (default all ``S``)."""
    S, m = n_symbols, branching
    transitions = []
    for _ in range(depth):
        g = sample_gamma(torch.full((S, S**m), concentration, device=device), generator)
        t = g / g.sum(-1, keepdim=True)
        transitions.append(t.float().reshape((S,) * (m + 1)))
    return Grammar(_root_prior(S, n_classes, device), transitions)


def _root_prior(n_symbols: int, n_classes: int | None, device: torch.device | str) -> Tensor:
    """(S,) uniform on the first ``n_classes`` (≤ S) symbols."""
    n_c = n_symbols if n_classes is None else n_classes
    if not 1 <= n_c <= n_symbols:
        raise ValueError(f"need 1 <= n_classes <= n_symbols, got {n_c} and {n_symbols}")
    return (torch.arange(n_symbols, device=device) < n_c).float() / n_c


def rhm_grammar(
    n_symbols: int,
    branching: int,
    depth: int,
    *,
    n_rules: int = 2,
    n_classes: int | None = None,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
) -> Grammar:
    """Random Hierarchy Model (Petrini, Cagnetta et al., "How deep neural networks learn
    compositional data: the random hierarchy model", 2023): ``n_rules`` synonymous
    productions per symbol and level; ``n_classes`` root classes (default ``S``).

    At each level a random permutation of the ``S^m`` child tuples hands ``n_rules`` distinct
    tuples to every parent (disjoint across parents: the grammar is unambiguous, so the root
    is a deterministic function of grammatical leaves). ``ψ = 1/n_rules`` on them.

    Raises:
        ValueError: if ``S · n_rules > S^m`` (not enough tuples for disjoint rules).
    """
    S, m = n_symbols, branching
    if S * n_rules > S**m:
        raise ValueError(
            f"RHM needs n_symbols*n_rules <= n_symbols**branching, got {S}*{n_rules} > {S**m}"
        )
    transitions = []
    for _ in range(depth):
        perm = torch.randperm(S**m, generator=generator, device=device)[: S * n_rules]
        t = torch.zeros(S, S**m, device=device)
        t[torch.arange(S, device=device).repeat_interleave(n_rules), perm] = 1.0 / n_rules
        transitions.append(t.reshape((S,) * (m + 1)))
    return Grammar(_root_prior(S, n_classes, device), transitions)


#: prime modulus of :func:`sequence_key` (2^61 − 1 would overflow int64 products)
_P = 2**31 - 1


def sequence_key(leaves: Tensor) -> Tensor:
    """A fixed universal hash of leaf sequences: (B, N) long → (B,) float64 in [0, 1).

    ``u(x) = (Σ_i w_i (x_i + 1) mod p) / p`` with ``p = 2³¹ − 1`` and weights ``w ∈ [1, p)``
    drawn once from a fixed seed (they depend on ``N`` only): two distinct sequences collide
    with probability ~1/p over ``w``, and ``u`` is uniform and unrelated to the grammar, so a
    threshold on ``u`` cuts a pseudo-random fraction out of any grammar's sequences.
    Exact in int64 for ``N · S < 2³²``.
    """
    n = leaves.shape[-1]
    w = torch.randint(1, _P, (n,), generator=torch.Generator().manual_seed(0x5EED + n))
    h = ((leaves + 1) * w.to(leaves.device)).sum(-1) % _P
    return h.double() / _P


def split_of(leaves: Tensor, holdout: float) -> Tensor:
    """The part of the sequence space each sequence belongs to: (B, N) → (B,) long,
    ``SPLITS.index``: 1 (val) for ``u < f``, 2 (test) for ``f ≤ u < 2f``, else 0 (train)."""
    u = sequence_key(leaves)
    return torch.where(u < holdout, 1, torch.where(u < 2 * holdout, 2, 0))


def distinct(leaves: Tensor) -> int:
    """The number of distinct rows of leaves (B, N)."""
    return int(torch.unique(leaves, dim=0).shape[0])


def contains(reference: Tensor, leaves: Tensor) -> Tensor:
    """(B,) bool: whether each row of leaves (B, N) is a row of ``reference`` (R, N)
    (exact: ``torch.unique`` over both)."""
    _, inv = torch.unique(torch.cat([reference, leaves]), dim=0, return_inverse=True)
    return torch.isin(inv[len(reference) :], inv[: len(reference)])


@register_datamodule("ghm")
class GHMDataModule(SyntheticDataModule):
    """Sequences generated by a random GHM, for root classification or leaf denoising.

    The grammar is a deterministic function of the data config (``grammar``, sizes,
    ``n_rules``/``concentration``, ``n_classes`` and ``grammar_seed``, drawn on the CPU), so a
    checkpoint's ``config.json`` rebuilds the exact Bayes reference (:attr:`grammar`).

    Splits are disjoint by construction, for every seed: the sequence space is partitioned by
    :func:`split_of` (``holdout`` of it for validation, as much for test, the rest for
    training) and each split is drawn from the grammar restricted to its part, so no
    validation or test sequence of any seed is a training sequence of any seed.

    Batches (tuples of tensors, first the inputs, then the targets):

    - ``task="classification"``: ``(leaves (B, N) long, root (B,) long)``;
    - ``task="denoising"``: ``(y (B, N, S), leaves (B, N) long, sigma (B,), root (B,))`` with
      ``y = E x + σ g``, ``E x = one_hot(leaves)``; ``σ`` is ``sigma`` (``sigma_dist="fixed"``)
      or drawn per example, log-uniformly in ``[sigma_min, sigma_max]``.

    Args:
        grammar: ``"rhm"`` (sparse synonym rules) or ``"dirichlet"`` (dense).
        n_symbols, branching, depth: ``S``, ``m``, ``L`` (``N = m^L`` leaves).
        n_rules: RHM productions per symbol. concentration: Dirichlet ``α``.
        n_classes: root classes ``n_c ≤ S`` (the root is uniform on symbols ``0..n_c−1``;
            default ``S``).
        grammar_seed: seed of the grammar (independent of the sample ``seed``).
        holdout: fraction ``f`` of the sequence space held out for validation (and as much
            for test).
        task, sigma, sigma_dist, sigma_min, sigma_max: see above.
        fresh_noise: redraw ``σ`` and ``g`` of the training split every epoch (the clean
            training sequences stay fixed: ``n_train`` counts sequences); val/test are fixed.
    """

    def __init__(
        self,
        *,
        grammar: Literal["rhm", "dirichlet"] = "rhm",
        n_symbols: Annotated[int, Interval(ge=2)] = 8,
        branching: Annotated[int, Interval(ge=2)] = 2,
        depth: Annotated[int, Interval(ge=1)] = 4,
        n_rules: Annotated[int, Interval(ge=1)] = 2,
        concentration: Annotated[float, Interval(gt=0)] = 1.0,
        n_classes: Annotated[int | None, Interval(ge=1)] = None,
        grammar_seed: Seed = 0,
        holdout: Annotated[float, Interval(gt=0, lt=0.5)] = 0.1,
        task: Literal["classification", "denoising"] = "classification",
        sigma: Annotated[float, Interval(gt=0)] = 1.0,
        sigma_dist: Literal["fixed", "loguniform"] = "fixed",
        sigma_min: Annotated[float, Interval(gt=0)] = 0.05,
        sigma_max: Annotated[float, Interval(gt=0)] = 10.0,
        fresh_noise: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if grammar == "rhm" and n_rules > safe_pow(n_symbols, branching - 1):
            raise ValueError(
                f"RHM needs n_symbols*n_rules <= n_symbols**branching (disjoint rules), got "
                f"n_symbols={n_symbols}, n_rules={n_rules}, branching={branching}"
            )
        if n_classes is not None and n_classes > n_symbols:
            raise ValueError(f"need n_classes <= n_symbols, got {n_classes} > {n_symbols}")
        if sigma_dist == "loguniform" and not sigma_min < sigma_max:
            raise ValueError(f"need sigma_min < sigma_max, got {sigma_min} >= {sigma_max}")
        self._grammar: Grammar | None = None

    @classmethod
    def footprint(cls, cfg: Mapping[str, Any]) -> Footprint:
        """Memory of the grammar and all splits, from the sizes alone.

        The grammar holds ``L`` float32 tables of ``S^(m+1)`` entries (drawn with ~4 float64
        temporaries of that size); a sample stores its ``N = m^L`` int64 leaves (denoising:
        also y (N, S) float32); sampling a split draws ~1.1 n / (its share of the sequence
        space) trees at ~40 bytes per leaf (rejection, :func:`sample_part`) and, for
        denoising, 16 bytes per leaf and symbol of the kept ones.
        """
        s, m, depth = cfg["n_symbols"], cfg["branching"], cfg["depth"]
        leaves = safe_pow(m, depth)
        table = safe_pow(s, m + 1)
        per_leaf = 8 + (4 * s if cfg["task"] == "denoising" else 0)
        samples = sum(cfg[f"n_{split}"] for split in SPLITS)
        f = cfg.get("holdout", 0.1)
        share = {"train": 1 - 2 * f, "val": f, "test": f}
        drawn = max(1.1 * cfg[f"n_{split}"] / share[split] + 64 for split in SPLITS)
        largest = max(cfg[f"n_{split}"] for split in SPLITS)
        transient = leaves * (40 * drawn + (16 * s * largest if cfg["task"] == "denoising" else 0))
        return Footprint(
            other=depth * table * 4 + table * 32 + samples * leaves * per_leaf + transient
        )

    @property
    def grammar(self) -> Grammar:
        """The grammar of this config (drawn on the CPU from ``grammar_seed``) on :attr:`device`."""
        if self._grammar is None or self._grammar.device != self.device:
            self._grammar = build_grammar(self.hparams).to(self.device)
        return self._grammar

    def generate(self, split: str, n: int, generator: torch.Generator, device: torch.device) -> Any:
        hp = self.hparams
        leaves, root = sample_part(
            self.grammar.to(device), n, SPLITS.index(split), hp.holdout, generator
        )
        if hp.task == "classification":
            return leaves, root
        sigma = draw_sigma(n, hp, generator, device)
        return _noisy(leaves, sigma, hp.n_symbols, generator), leaves, sigma, root

    def train_dataloader(self) -> Any:
        loader = super().train_dataloader()
        if self.hparams.task == "denoising" and self.hparams.fresh_noise:
            return _FreshNoise(loader, self.hparams)
        return loader


def sample_part(
    grammar: Grammar, n: int, part: int, holdout: float, generator: torch.Generator
) -> tuple[Tensor, Tensor]:
    """``n`` trees of the grammar restricted to one part of :func:`split_of` (rejection:
    batches sized by the acceptance rate seen so far, ~``n / rate`` draws in all).

    Returns:
        leaves: (n, N) long, root: (n,) long.

    Raises:
        ValueError: when the part holds (almost) none of the grammar's mass.
    """
    share = rate = 1 - 2 * holdout if part == 0 else holdout
    cap = 100 * math.ceil(n / share) + 100_000  # total draws before giving up
    kept: list[tuple[Tensor, Tensor]] = []
    have = drawn = 0
    while have < n:
        # sized by the acceptance rate so far; at most doubling the draws (memory O(n / share))
        want = min(
            math.ceil(1.1 * (n - have) / rate) + 64,
            max(8 * math.ceil(n / share) + 64, drawn),
            cap - drawn,
        )
        if want <= 0:
            raise ValueError(
                f"the {SPLITS[part]} part of this grammar's sequences has too little mass "
                f"({have} of {drawn} draws): use a larger grammar or another holdout"
            )
        leaves, root = grammar.sample(want, generator)
        ok = split_of(leaves, holdout) == part
        kept.append((leaves[ok], root[ok]))
        have, drawn = have + int(ok.sum()), drawn + want
        rate = max(have / drawn, 1 / drawn)
    leaves, root = (torch.cat(t)[:n] for t in zip(*kept))
    return leaves, root


def _noisy(leaves: Tensor, sigma: Tensor, n_symbols: int, generator: torch.Generator) -> Tensor:
    """``y = E x + σ g``: leaves (B, N), sigma (B,) → (B, N, S)."""
    y = torch.nn.functional.one_hot(leaves, n_symbols).float()
    return y + sigma[:, None, None] * torch.randn(y.shape, generator=generator, device=y.device)


class _FreshNoise:
    """Wraps the training :class:`~zoo.core.TensorBatches`: fresh ``(σ, g)`` every epoch.

    Epoch ``e`` (the trainer's epoch) draws from a generator seeded by ``(seed, e)``, so runs
    stay reproducible and a resumed run sees the noise of an uninterrupted one (a mid-epoch
    resume redraws the noise of the batches it skips). Resumable like the wrapped loader.
    """

    def __init__(self, loader: TensorBatches, hp: Any) -> None:
        self.loader, self.hp = loader, hp

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[tuple[Tensor, ...]]:
        return self.loader.serve(self.epoch_batches)

    def state_dict(self) -> dict[str, int]:
        return self.loader.state_dict()

    def load_state_dict(self, state_dict: dict[str, int]) -> None:
        self.loader.load_state_dict(state_dict)

    def epoch_batches(self, epoch: int) -> Iterator[tuple[Tensor, ...]]:
        """Every batch of ``epoch``: ``(y, leaves, sigma, root)`` with this epoch's noise."""
        import numpy as np

        state = np.random.SeedSequence([int(self.hp.seed), 1000, epoch]).generate_state(
            1, np.uint64
        )
        gen: torch.Generator | None = None
        for _, leaves, _, root in self.loader.epoch_batches(epoch):
            if gen is None:
                gen = torch.Generator(device=leaves.device).manual_seed(int(state[0] >> 1))
            sigma = draw_sigma(len(leaves), self.hp, gen, leaves.device)
            yield _noisy(leaves, sigma, self.hp.n_symbols, gen), leaves, sigma, root


def draw_sigma(
    n: int, hp: Any, generator: torch.Generator | None, device: torch.device | str
) -> Tensor:
    """(n,) noise levels: ``hp.sigma`` or log-uniform on ``[hp.sigma_min, hp.sigma_max]``."""
    if hp["sigma_dist"] == "fixed":
        return torch.full((n,), float(hp["sigma"]), device=device)
    lo, hi = torch.tensor([hp["sigma_min"], hp["sigma_max"]], dtype=torch.float64).log().tolist()
    u = torch.rand(n, generator=generator, device=device)
    return torch.exp(lo + (hi - lo) * u)


def build_grammar(cfg: Any) -> Grammar:
    """The grammar a GHM data config describes (deterministic, drawn on the CPU)."""
    g = torch.Generator().manual_seed(int(cfg["grammar_seed"]))
    sizes = (int(cfg["n_symbols"]), int(cfg["branching"]), int(cfg["depth"]))
    n_c = cfg.get("n_classes")
    n_c = None if n_c is None else int(n_c)
    if cfg["grammar"] == "rhm":
        return rhm_grammar(*sizes, n_rules=int(cfg["n_rules"]), n_classes=n_c, generator=g)
    return dirichlet_grammar(
        *sizes, concentration=float(cfg["concentration"]), n_classes=n_c, generator=g
    )
