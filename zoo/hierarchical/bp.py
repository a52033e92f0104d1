"""Exact belief propagation on a GHM tree, batched on the device.

Upward (inside) messages, for node ``v`` at level ``ℓ`` with children ``c_1..c_m``:

    u_v(s) = Σ_{t ∈ [S]^m} ψ⁽ℓ⁾(t | s) Π_j u_{c_j}(t_j),          u_leaf(s) = p(y_leaf | s),

computed for a whole level at once as ``(u_{c_1} ⊗ … ⊗ u_{c_m}) @ ψ⁽ℓ⁾ᵀ`` on a (B, n, S^m)
outer product. Downward (outside) messages, ``o_root = π``:

    o_{c_j}(t_j) = Σ_s o_v(s) Σ_{t_{-j}} ψ⁽ℓ⁾(t | s) Π_{k≠j} u_{c_k}(t_k),

and the marginal posterior of a node is ``p(x_v = s | y) ∝ o_v(s) u_v(s)``. Messages are
normalised at every node and their log-normalisers accumulated, so everything is computed in
the log domain (``log p(y) = log Σ_s π_s u_root(s) + Σ log-normalisers``) without underflow:
the input is a log-evidence ``log p(y_i | x_i = s)``, shifted by its per-leaf max.

Two contractions give the same messages: the dense one above, O(S^{m+1}) per node, and a
gather over the rules ``(s → t, ψ(t | s))`` with ``ψ > 0``, O(R·m) per node
(``u_v(s) = Σ_{r: parent_r = s} ψ_r Π_j u_{c_j}(t_{r,j})``, an ``index_add`` over parents;
downward, rule ``r`` adds ``o_v(parent_r) ψ_r Π_{k≠j} u_{c_k}(t_{r,k})`` to
``o_{c_j}(t_{r,j})``). ``method="auto"`` takes the sparse path for sparse grammars
(:attr:`Grammar.sparse`, e.g. the RHM's ``R = S·n_rules`` rules) and the dense one otherwise
(Dirichlet grammars).

Public API: :func:`root_posterior` (Bayes classifier), :func:`leaf_posterior`,
:func:`bayes_denoiser` (``E[E x | y]`` for Gaussian noise), :func:`log_likelihood`,
:func:`is_grammatical`, :func:`level_grammatical`, exact posterior sampling
:func:`sample_posterior` (downward sampling from ``p(x | y)``) and the Bayes risk helpers
:func:`bayes_mse` and :func:`bayes_accuracy`.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import Tensor

from zoo.hierarchical.data import Grammar, Rules

Method = Literal["auto", "dense", "sparse"]

__all__ = [
    "bayes_accuracy",
    "bayes_denoiser",
    "bayes_mse",
    "gaussian_log_evidence",
    "is_grammatical",
    "leaf_log_evidence",
    "leaf_marginals",
    "leaf_posterior",
    "level_grammatical",
    "log_likelihood",
    "parse",
    "root_posterior",
    "sample_posterior",
    "upward",
]

_TINY = 1e-30


def _normalise(u: Tensor) -> tuple[Tensor, Tensor]:
    """``(u / Σ_s u, log Σ_s u)`` over the last axis; all-zero rows stay zero (log = −inf)."""
    z = u.sum(-1, keepdim=True)
    return u / z.clamp_min(_TINY), torch.log(z.squeeze(-1))


def _outer(msgs: Tensor) -> Tensor:
    """(B, n, m, S) → (B, n, S^m): ``u_{c_1} ⊗ … ⊗ u_{c_m}`` in row-major tuple order."""
    out = msgs[:, :, 0]
    for j in range(1, msgs.shape[2]):
        out = (out[..., :, None] * msgs[:, :, j, None, :]).flatten(-2)
    return out


def _sparse(grammar: Grammar, method: Method) -> bool:
    if method not in ("auto", "dense", "sparse"):
        raise ValueError(f"method must be 'auto', 'dense' or 'sparse', got {method!r}")
    return grammar.sparse if method == "auto" else method == "sparse"


def _rules(grammar: Grammar, level: int, dtype: torch.dtype) -> Rules:
    parent, children, prob = grammar.rules(level)
    return Rules(parent, children, prob.to(dtype))


def _flat_index(children: Tensor, n_symbols: int) -> Tensor:
    """Rules' children (R, m) → (m·R,) indices ``j·S + t_{r,j}`` into a (m·S,) row."""
    m = children.shape[1]
    offsets = n_symbols * torch.arange(m, device=children.device)[:, None]
    return (children.T + offsets).reshape(-1)


def _gather(kids: Tensor, children: Tensor) -> Tensor:
    """(B, n, m, S), rules' children (R, m) → ``u_{c_j}(t_{r,j})``: (B, n, m, R)."""
    B, n, m, S = kids.shape
    flat = kids.reshape(B * n, m * S).index_select(1, _flat_index(children, S))
    return flat.reshape(B, n, m, -1)


def _up_level(grammar: Grammar, level: int, kids: Tensor, sparse: bool) -> Tensor:
    """Unnormalised inside messages of level ``level``: kids (B, n, m, S) → (B, n, S)."""
    S = grammar.n_symbols
    if not sparse:
        return _outer(kids) @ grammar.flat(level).to(kids.dtype).T
    parent, children, prob = _rules(grammar, level, kids.dtype)
    g = _gather(kids, children)  # (B, n, m, R)
    w = g[:, :, 0]
    for j in range(1, g.shape[2]):
        w = w * g[:, :, j]
    # Σ_{r: parent_r = s} ψ_r w_r as one small matmul with the (R, S) parent matrix
    return w @ (torch.nn.functional.one_hot(parent, S).to(w.dtype) * prob[:, None])


def _down_level(grammar: Grammar, level: int, o: Tensor, kids: Tensor, sparse: bool) -> Tensor:
    """Unnormalised outside messages of the children: o (B, n, S), kids (B, n, m, S) →
    (B, n, m, S)."""
    B, n, m, S = kids.shape
    if sparse:
        parent, children, prob = _rules(grammar, level, o.dtype)
        g = _gather(kids, children)  # (B, n, m, R)
        a = o @ (torch.nn.functional.one_hot(parent, S).to(o.dtype).T * prob)  # (B, n, R)
        if m == 2:
            w = torch.stack([g[:, :, 1], g[:, :, 0]], 2)
        else:  # Π_{k≠j} g_k from prefix and suffix products
            ones = torch.ones_like(g[:, :, :1])
            pre = torch.cat([ones, g[:, :, :-1]], 2).cumprod(2)
            suf = torch.cat([g[:, :, 1:], ones], 2).flip(2).cumprod(2).flip(2)
            w = pre * suf
        w = (w * a[:, :, None]).reshape(B, n, -1)  # (B, n, m·R)
        # rule r of child j adds to o_{c_j}(t_{r,j}): a (m·R, m·S) one-hot matmul
        scatter = torch.nn.functional.one_hot(_flat_index(children, S), m * S).to(w.dtype)
        return (w @ scatter).reshape(B, n, m, S)
    psi = grammar.flat(level).to(o.dtype)  # (S, S^m)
    a = (o @ psi).reshape(B, n, *([S] * m))  # Σ_s o(s) ψ(t | s): (B, n, S, …, S)
    # o_{c_j} = einsum over every child axis but j of a · Π_{k≠j} u_{c_k}
    axes = list(range(2, m + 2))
    outs = []
    for j in range(m):
        ops: list = [a, [0, 1, *axes]]
        for k in range(m):
            if k != j:
                ops += [kids[:, :, k], [0, 1, 2 + k]]
        outs.append(torch.einsum(*ops, [0, 1, 2 + j]))
    return torch.stack(outs, 2)


def _check(grammar: Grammar, log_evidence: Tensor) -> None:
    if log_evidence.dim() != 3 or log_evidence.shape[1:] != (grammar.n_leaves, grammar.n_symbols):
        raise ValueError(
            f"log_evidence must be (B, {grammar.n_leaves}, {grammar.n_symbols}) for this grammar, "
            f"got {tuple(log_evidence.shape)}"
        )


def upward(
    grammar: Grammar, log_evidence: Tensor, method: Method = "auto"
) -> tuple[list[Tensor], Tensor]:
    """Normalised inside messages of every level and the total log-normaliser.

    Args:
        log_evidence: (B, N, S) ``log p(y_i | x_i = s)`` (``−inf`` allowed), ``N = m^L``.
        method: ``"dense"``, ``"sparse"`` (gather over rules) or ``"auto"`` (module doc).

    Returns:
        msgs: ``L + 1`` tensors, level ``ℓ`` of shape (B, m^ℓ, S), each row summing to 1
            (or all zero when the evidence below is impossible);
        log_scale: (B,) the sum of all log-normalisers, so that
            ``u_v = msgs · exp(scale of v's subtree)``.
    """
    _check(grammar, log_evidence)
    dtype = torch.promote_types(
        torch.promote_types(log_evidence.dtype, grammar.root_prior.dtype), torch.float32
    )
    le = log_evidence.to(dtype)
    mx = le.amax(-1, keepdim=True)
    mx = torch.where(torch.isfinite(mx), mx, torch.zeros_like(mx))
    u, logz = _normalise(torch.exp(le - mx))
    log_scale = (logz + mx.squeeze(-1)).sum(-1)
    msgs = [u]
    B, S, m = u.shape[0], grammar.n_symbols, grammar.branching
    sparse = _sparse(grammar, method)
    for level in reversed(range(grammar.depth)):
        u, logz = _normalise(_up_level(grammar, level, u.reshape(B, -1, m, S), sparse))
        log_scale = log_scale + logz.sum(-1)
        msgs.append(u)
    msgs.reverse()
    return msgs, log_scale


def log_likelihood(grammar: Grammar, log_evidence: Tensor, method: Method = "auto") -> Tensor:
    """``log p(y) = log Σ_x p(x) Π_i p(y_i | x_i)``: (B,). ``−inf`` for impossible evidence."""
    msgs, log_scale = upward(grammar, log_evidence, method)
    pi = grammar.root_prior.to(msgs[0].dtype)
    return torch.log(msgs[0][:, 0] @ pi) + log_scale


def leaf_log_evidence(leaves: Tensor, n_symbols: int, dtype: torch.dtype = torch.float32) -> Tensor:
    """Hard evidence of observed leaves: (B, N) long → (B, N, S) with 0 / −inf."""
    oh = torch.nn.functional.one_hot(leaves, n_symbols).bool()
    return torch.zeros(oh.shape, dtype=dtype, device=leaves.device).masked_fill(~oh, -math.inf)


def parse(grammar: Grammar, leaves: Tensor) -> list[Tensor] | None:
    """The unique derivation of hard leaves in an unambiguous grammar, by table look-up.

    Every child tuple has at most one parent per level (the RHM), so the symbols above given
    leaves are determined: ``x_v = parent_ℓ[code(x_{c_1}, …, x_{c_m})]`` (−1 for a tuple that
    is no rule's, or below a −1), O(m) integer operations per node — the sparse path of
    :func:`root_posterior` for hard evidence.

    Returns:
        ``L + 1`` long tensors, level ``ℓ`` of shape (B, m^ℓ) (−1 where no symbol can
        generate the block below), or ``None`` for an ambiguous grammar.
    """
    S, m = grammar.n_symbols, grammar.branching
    tables = []
    for level in range(grammar.depth):
        parent, tup = grammar.flat(level).nonzero(as_tuple=True)
        if tup.numel() != tup.unique().numel():
            return None
        tables.append(
            torch.full((S**m,), -1, dtype=torch.long, device=leaves.device).index_put_(
                (tup.to(leaves.device),), parent.to(leaves.device)
            )
        )
    powers = S ** torch.arange(m - 1, -1, -1, device=leaves.device)
    x = leaves
    levels = [x]
    for level in reversed(range(grammar.depth)):
        kids = x.reshape(len(x), -1, m)
        bad = (kids < 0).any(-1)
        x = tables[level][(kids.clamp_min(0) * powers).sum(-1)].masked_fill(bad, -1)
        levels.append(x)
    return levels[::-1]


def root_posterior(grammar: Grammar, leaves: Tensor, method: Method = "auto") -> Tensor:
    """Bayes classifier ``p(root | leaves)``: leaves (B, N) long → (B, S).

    Rows are zero for sequences the grammar cannot generate. The sparse path of an
    unambiguous grammar is the look-up :func:`parse` (the posterior is the one-hot of the
    parsed root); otherwise the upward pass.
    """
    derivation = parse(grammar, leaves) if _sparse(grammar, method) else None
    if derivation is not None:
        root = derivation[0][:, 0]
        pi = grammar.root_prior.to(leaves.device)
        ok = (root >= 0) & (pi[root.clamp_min(0)] > 0)
        dtype = torch.promote_types(pi.dtype, torch.float32)
        return torch.nn.functional.one_hot(root.clamp_min(0), grammar.n_symbols).to(dtype) * ok[
            :, None
        ].to(dtype)
    msgs, _ = upward(grammar, leaf_log_evidence(leaves, grammar.n_symbols), method)
    post = msgs[0][:, 0] * grammar.root_prior.to(msgs[0].dtype)
    return _normalise(post)[0]


def is_grammatical(grammar: Grammar, leaves: Tensor) -> Tensor:
    """(B,) bool: ``p(leaves) > 0`` (exact for sparse rules)."""
    return level_grammatical(grammar, leaves)[:, 0]


def leaf_posterior(grammar: Grammar, log_evidence: Tensor, method: Method = "auto") -> Tensor:
    """Posterior marginals of the leaves ``p(x_i = s | y)``: (B, N, S) → (B, N, S).

    Args:
        log_evidence: (B, N, S) ``log p(y_i | x_i = s)`` up to per-leaf constants.
        method: see :func:`upward`.
    """
    msgs, _ = upward(grammar, log_evidence, method)
    B, S, m = msgs[0].shape[0], grammar.n_symbols, grammar.branching
    sparse = _sparse(grammar, method)
    o = grammar.root_prior.to(msgs[0].dtype).expand(B, 1, S)
    for level in range(grammar.depth):
        kids = msgs[level + 1].reshape(B, -1, m, S)  # (B, n, m, S)
        o = _normalise(_down_level(grammar, level, o, kids, sparse).reshape(B, -1, S))[0]
    return _normalise(o * msgs[-1])[0]


def level_grammatical(grammar: Grammar, leaves: Tensor) -> Tensor:
    """Grammaticality of every level: leaves (B, N) long → (B, L) bool.

    Column ``ℓ`` is true when every node of level ``ℓ`` can generate the block of leaves below
    it (its inside message is non-zero; for column 0 the root must also have ``π > 0``): the
    sequence is grammatical up to height ``L − ℓ``. Column 0 is :func:`is_grammatical`, and a
    column is never true where a later one (a lower level) is false.
    """
    pi = grammar.root_prior.to(leaves.device)
    derivation = parse(grammar, leaves) if grammar.sparse else None
    if derivation is not None:
        root = derivation[0][:, 0]
        ok = [(root >= 0) & (pi[root.clamp_min(0)] > 0)]
        ok += [(x >= 0).all(-1) for x in derivation[1:-1]]
        return torch.stack(ok, 1)
    msgs, _ = upward(grammar, leaf_log_evidence(leaves, grammar.n_symbols))
    ok = [(msgs[0][:, 0] @ pi.to(msgs[0].dtype)) > 0]
    ok += [(u.sum(-1) > 0).all(-1) for u in msgs[1:-1]]
    return torch.stack(ok, 1)


def sample_posterior(
    grammar: Grammar,
    log_evidence: Tensor,
    generator: torch.Generator | None = None,
    method: Method = "auto",
) -> list[Tensor]:
    """Exact samples of the whole tree from ``p(x | y)`` by downward sampling.

    After the upward pass, the root is drawn from ``∝ π(s) u_root(s)`` and, level by level,
    each node's children from ``∝ ψ(t | s) Π_j u_{c_j}(t_j)`` given its drawn symbol ``s``
    (over the rules of ``s`` on the sparse path, over all ``S^m`` tuples on the dense one).
    With zero evidence (``log_evidence = 0``) these are exact samples of the grammar.

    Args:
        log_evidence: (B, N, S) ``log p(y_i | x_i = s)``; every row must be possible.
        generator: the only randomness.

    Returns:
        ``L + 1`` long tensors, level ``ℓ`` of shape (B, m^ℓ); the last are the leaves.
    """
    msgs, _ = upward(grammar, log_evidence, method)
    B, S, m = msgs[0].shape[0], grammar.n_symbols, grammar.branching
    sparse = _sparse(grammar, method)
    dtype = msgs[0].dtype
    x = _draw(msgs[0] * grammar.root_prior.to(dtype), generator)  # (B, 1)
    levels = [x]
    powers = S ** torch.arange(m - 1, -1, -1, device=x.device)
    for level in range(grammar.depth):
        kids = msgs[level + 1].reshape(B, -1, m, S)  # (B, n, m, S)
        if sparse:
            parent, children, prob = _rules(grammar, level, dtype)
            w = _gather(kids, children).prod(2) * prob * (parent == x[..., None])  # (B, n, R)
            x = children[_draw(w, generator)]  # (B, n, m)
        else:
            w = grammar.flat(level).to(dtype)[x] * _outer(kids)  # (B, n, S^m)
            x = (_draw(w, generator)[..., None] // powers) % S
        x = x.reshape(B, -1)
        levels.append(x)
    return levels


def _draw(w: Tensor, generator: torch.Generator | None) -> Tensor:
    """One index per row ``∝ w`` over the last axis: (..., K) non-negative → (...) long."""
    cdf = w.double().cumsum(-1)
    u = torch.rand(w.shape[:-1], generator=generator, device=w.device, dtype=torch.float64)
    idx = torch.searchsorted(cdf, (u * cdf[..., -1])[..., None], right=True)[..., 0]
    # round-off at the top end: the last column of non-zero weight
    col = torch.arange(w.shape[-1], device=w.device)
    last = torch.where(w > 0, col, -1).amax(-1)
    return torch.minimum(idx, last)


def gaussian_log_evidence(
    y: Tensor, sigma: Tensor | float, embedding: Tensor | None = None
) -> Tensor:
    """``log p(y_i | x_i = s) = −‖y_i − e_s‖² / (2σ²)`` up to a per-leaf constant.

    Args:
        y: (B, N, D) noisy embeddings. sigma: scalar or (B,). embedding: ``E``: (S, D),
            default the identity (one-hot, ``D = S``).

    Returns:
        (B, N, S) log-evidence.
    """
    if embedding is None:
        embedding = torch.eye(y.shape[-1], dtype=y.dtype, device=y.device)
    sigma = torch.as_tensor(sigma, dtype=y.dtype, device=y.device).reshape(-1, 1, 1)
    # −‖y − e‖²/2σ² = (y·e − ‖e‖²/2)/σ² + const(y)
    return (y @ embedding.T - 0.5 * (embedding**2).sum(-1)) / sigma**2


def bayes_denoiser(
    grammar: Grammar, y: Tensor, sigma: Tensor | float, embedding: Tensor | None = None
) -> Tensor:
    """``E[E x | y] = Σ_s p(x_i = s | y) e_s`` for ``y = E x + σ g``: (B, N, D) → (B, N, D)."""
    post = leaf_posterior(grammar, gaussian_log_evidence(y.double(), sigma, embedding))
    post = post.to(y.dtype)
    return post if embedding is None else post @ embedding


def bayes_mse(grammar: Grammar, y: Tensor, sigma: Tensor | float, leaves: Tensor) -> Tensor:
    """Per-coordinate squared error of the Bayes denoiser (one-hot ``E``): (B,).

    ``mean_{i,d} (E[E x | y]_{i,d} − (E x)_{i,d})²`` per example, the same normalisation as
    ``F.mse_loss`` of a model output (B, N, S).
    """
    clean = torch.nn.functional.one_hot(leaves, grammar.n_symbols).to(y.dtype)
    return ((bayes_denoiser(grammar, y, sigma) - clean) ** 2).mean((1, 2))


def bayes_accuracy(grammar: Grammar, leaves: Tensor, root: Tensor) -> Tensor:
    """(B,) float: 1 where the Bayes classifier ``argmax p(root | leaves)`` is right."""
    return (root_posterior(grammar, leaves).argmax(-1) == root).float()


def leaf_marginals(grammar: Grammar) -> Tensor:
    """Prior marginals ``p(x_i = s)`` of every leaf: (N, S) (downward pass of ``π``)."""
    S, m = grammar.n_symbols, grammar.branching
    p = grammar.root_prior.double()[None]  # (1, S)
    for level in range(grammar.depth):
        joint = (p @ grammar.flat(level).double()).reshape(-1, *([S] * m))  # (n, S, …, S)
        kids = [joint.sum(tuple(1 + k for k in range(m) if k != j)) for j in range(m)]
        p = torch.stack(kids, 1).reshape(-1, S)
    return p
