"""Building blocks of the ansatz family: MLPs, log-domain sums, input checks, gradient guard
and the state-dict flattening that lets a model be composed of parts."""

from __future__ import annotations

import functools
import itertools
from collections.abc import Iterable
from typing import Any, Literal

import torch
from torch import Tensor, nn

__all__ = [
    "Activation",
    "check_sets",
    "flatten_state_dict",
    "mlp",
    "mlp_size",
    "signed_logsumexp",
    "zero_nonfinite_grads",
]

Activation = Literal["relu", "gelu", "silu", "tanh"]
_ACTS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "tanh": nn.Tanh,
}


def mlp(sizes: list[int], activation: str = "silu") -> nn.Sequential:
    """Linear layers of ``sizes`` with ``activation`` between them (none after the last)."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(itertools.pairwise(sizes)):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(_ACTS[activation]())
    return nn.Sequential(*layers)


def mlp_size(sizes: list[int]) -> tuple[int, int]:
    """(parameters, modules) of :func:`mlp` ``(sizes)``, without building it."""
    params = sum(a * b + b for a, b in itertools.pairwise(sizes))
    return params, 2 * len(sizes) - 2  # Sequential, Linear layers, activations between


def check_sets(x: Tensor, n_set: int | None, dim: int) -> None:
    """Raise ``ValueError`` unless x: (B, N, D) with D = ``dim`` (and N = ``n_set`` if set)."""
    if x.dim() != 3 or x.shape[-1] != dim or (n_set is not None and x.shape[1] != n_set):
        want = f"(B, {n_set if n_set is not None else 'N'}, {dim})"
        raise ValueError(f"expected x of shape {want}, got {tuple(x.shape)}")


def signed_logsumexp(sign: Tensor, logabs: Tensor, dim: int = -1) -> tuple[Tensor, Tensor]:
    """(sign, log|s|) of s = Σ_l sign_l · exp(logabs_l) along ``dim``, never leaving log space.

    Max-shifted: with m = max_l logabs_l, s = e^m Σ_l sign_l e^{logabs_l − m}, so every term is
    ≤ 1 in magnitude. Terms with logabs = −inf (zero determinants) contribute 0.
    """
    m = logabs.amax(dim=dim, keepdim=True)
    m = torch.where(torch.isfinite(m), m, torch.zeros_like(m)).detach()
    s = (sign * torch.exp(logabs - m)).sum(dim=dim)
    return torch.sign(s), m.squeeze(dim) + torch.log(s.abs())


def zero_nonfinite_grads(params: nn.Module | Iterable[Tensor]) -> Tensor:
    """Zero all gradients of ``params`` (a module's parameters, or e.g. an optimiser's
    ``param_groups`` flattened) if any is NaN/inf; return whether they were finite (a 0-d
    bool tensor).

    A determinant that becomes exactly singular in floating point makes the slogdet backward
    evaluate 0 · ∞ (its true gradient, the adjugate, is finite); such a step is skipped. One
    batched norm per gradient (torch's foreach kernel: NaN and inf propagate into it) and one
    host read per step, instead of a check per parameter. ``torch.nn.utils.get_total_norm``
    computes the same norms but first groups the tensors by device and dtype in Python, which
    costs more than the norms themselves for the zoo's small models.
    """
    if isinstance(params, nn.Module):
        params = params.parameters()
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return torch.tensor(True)
    finite = torch.stack(torch._foreach_norm(grads)).isfinite().all()
    if not finite:
        for g in grads:
            g.zero_()
    return finite


def _member_names(module: nn.Module) -> set[str]:
    """Names of the direct parameters, buffers and submodules of ``module``."""
    return {
        name
        for named in (
            module.named_parameters(recurse=False),
            module.named_buffers(recurse=False),
            module.named_children(),
        )
        for name, _ in named
    }


def _save_flat(
    parts: dict[str, set[str]], module: nn.Module, state: dict[str, Tensor], prefix: str, *_: Any
) -> None:
    """State-dict post-hook: ``<prefix><child>.<rest>`` → ``<prefix><rest>``, in the order a
    module holding the children's members itself would list them: their own tensors first,
    then their submodules' entries."""
    before: list[tuple[str, Tensor]] = []
    own: list[tuple[str, Tensor]] = []
    nested: list[tuple[str, Tensor]] = []
    after: list[tuple[str, Tensor]] = []
    for key, value in state.items():
        child = next((c for c in parts if key.startswith(f"{prefix}{c}.")), None)
        if child is None:
            (after if own or nested else before).append((key, value))
            continue
        rest = key[len(prefix) + len(child) + 1 :]
        (nested if "." in rest else own).append((prefix + rest, value))
    state.clear()
    state.update(before + own + nested + after)


def _load_flat(
    parts: dict[str, set[str]], module: nn.Module, state: dict[str, Tensor], prefix: str, *_: Any
) -> None:
    """Load pre-hook: ``<prefix><rest>`` → ``<prefix><child>.<rest>`` for each child's members
    (a flat key whose nested form is given too is left, so strict loading reports it)."""
    for key in [k for k in state if k.startswith(prefix)]:
        rest = key[len(prefix) :]
        child = next((c for c, names in parts.items() if rest.split(".", 1)[0] in names), None)
        if child is not None and f"{prefix}{child}.{rest}" not in state:
            state[f"{prefix}{child}.{rest}"] = state.pop(key)


def flatten_state_dict(module: nn.Module, *children: str) -> None:
    """Save and load the entries of the submodules ``children`` of ``module`` without their
    ``<child>.`` prefix (``slater.coef`` is stored as ``coef``).

    A model composed of parts (a Slater part, a Jastrow factor) thus keeps the flat keys of
    the checkpoints written when it held those tensors itself; ``load_state_dict`` (strict
    included) maps the flat keys back. Call it after the children are assigned; their member
    names must be disjoint from each other and from ``module``'s own.
    """
    parts = {c: _member_names(getattr(module, c)) for c in children}
    seen = _member_names(module) - set(children)
    for c, names in parts.items():
        if clash := seen & names:
            raise ValueError(f"cannot flatten {c!r}: names {sorted(clash)} are taken")
        seen |= names
    # partials of module-level functions: the model stays picklable and deep-copyable
    module.register_state_dict_post_hook(functools.partial(_save_flat, parts))
    module.register_load_state_dict_pre_hook(functools.partial(_load_flat, parts))
