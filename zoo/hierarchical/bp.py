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

Public API: :func:`root_posterior` (Bayes classifier), :func:`leaf_posterior`,
:func:`bayes_denoiser` (``E[E x | y]`` for Gaussian noise), :func:`log_likelihood`,
:func:`is_grammatical` and the Bayes risk helpers :func:`bayes_mse` and :func:`bayes_accuracy`.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from zoo.hierarchical.data import Grammar

__all__ = [
    "bayes_accuracy",
    "bayes_denoiser",
    "bayes_mse",
    "gaussian_log_evidence",
    "is_grammatical",
    "leaf_log_evidence",
    "leaf_marginals",
    "leaf_posterior",
    "log_likelihood",
    "root_posterior",
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


def _check(grammar: Grammar, log_evidence: Tensor) -> None:
    if log_evidence.dim() != 3 or log_evidence.shape[1:] != (grammar.n_leaves, grammar.n_symbols):
        raise ValueError(
            f"log_evidence must be (B, {grammar.n_leaves}, {grammar.n_symbols}) for this grammar, "
            f"got {tuple(log_evidence.shape)}"
        )


def upward(grammar: Grammar, log_evidence: Tensor) -> tuple[list[Tensor], Tensor]:
    """Normalised inside messages of every level and the total log-normaliser.

    Args:
        log_evidence: (B, N, S) ``log p(y_i | x_i = s)`` (``−inf`` allowed), ``N = m^L``.

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
    for level in reversed(range(grammar.depth)):
        psi = grammar.flat(level).to(dtype)  # (S, S^m)
        kids = u.reshape(B, -1, m, S)
        u, logz = _normalise(_outer(kids) @ psi.T)
        log_scale = log_scale + logz.sum(-1)
        msgs.append(u)
    msgs.reverse()
    return msgs, log_scale


def log_likelihood(grammar: Grammar, log_evidence: Tensor) -> Tensor:
    """``log p(y) = log Σ_x p(x) Π_i p(y_i | x_i)``: (B,). ``−inf`` for impossible evidence."""
    msgs, log_scale = upward(grammar, log_evidence)
    pi = grammar.root_prior.to(msgs[0].dtype)
    return torch.log(msgs[0][:, 0] @ pi) + log_scale


def leaf_log_evidence(leaves: Tensor, n_symbols: int, dtype: torch.dtype = torch.float32) -> Tensor:
    """Hard evidence of observed leaves: (B, N) long → (B, N, S) with 0 / −inf."""
    oh = torch.nn.functional.one_hot(leaves, n_symbols).bool()
    return torch.zeros(oh.shape, dtype=dtype, device=leaves.device).masked_fill(~oh, -math.inf)


def root_posterior(grammar: Grammar, leaves: Tensor) -> Tensor:
    """Bayes classifier ``p(root | leaves)``: leaves (B, N) long → (B, S).

    Rows are zero for sequences the grammar cannot generate.
    """
    msgs, _ = upward(grammar, leaf_log_evidence(leaves, grammar.n_symbols))
    post = msgs[0][:, 0] * grammar.root_prior.to(msgs[0].dtype)
    return _normalise(post)[0]


def is_grammatical(grammar: Grammar, leaves: Tensor) -> Tensor:
    """(B,) bool: ``p(leaves) > 0`` (exact for sparse rules)."""
    return torch.isfinite(log_likelihood(grammar, leaf_log_evidence(leaves, grammar.n_symbols)))


def leaf_posterior(grammar: Grammar, log_evidence: Tensor) -> Tensor:
    """Posterior marginals of the leaves ``p(x_i = s | y)``: (B, N, S) → (B, N, S).

    Args:
        log_evidence: (B, N, S) ``log p(y_i | x_i = s)`` up to per-leaf constants.
    """
    msgs, _ = upward(grammar, log_evidence)
    B, S, m = msgs[0].shape[0], grammar.n_symbols, grammar.branching
    o = grammar.root_prior.to(msgs[0].dtype).expand(B, 1, S)
    for level in range(grammar.depth):
        psi = grammar.flat(level).to(o.dtype)  # (S, S^m)
        kids = msgs[level + 1].reshape(B, -1, m, S)  # (B, n, m, S)
        n = kids.shape[1]
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
        o = _normalise(torch.stack(outs, 2).reshape(B, n * m, S))[0]
    return _normalise(o * msgs[-1])[0]


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
