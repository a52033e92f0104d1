"""The target registry of the ``sets`` datamodule: exact functions of a set and their symmetry.

A target is ``fn(x: (B, N, D), **target_params) -> (B,) or (B, k)``, exact (computed in x's
dtype), registered with :func:`register_target` by the family that studies it (the ansatz
family's pairwise energies and fermion ground states, the attention family's query/key
functions, where ``x[:, 0]`` is the query and ``x[:, 1:]`` the keys).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from torch import Tensor

from zoo.core.registry import Registry

__all__ = [
    "SYMMETRIES",
    "TARGETS",
    "TargetSpec",
    "evaluate_target",
    "get_target",
    "list_targets",
    "register_target",
]

SYMMETRIES = ("symmetric", "antisymmetric", "invariant_in_keys", "equivariant")
Symmetry = Literal["symmetric", "antisymmetric", "invariant_in_keys", "equivariant"]
TargetFn = Callable[..., Tensor]


@dataclass(frozen=True)
class TargetSpec:
    """A registered target: its exact value function and its symmetry.

    Attributes:
        name: registry name (``target=`` in the data config).
        fn: ``fn(x: (B, N, D), **params) -> (B,) or (B, k)``, exact (computed in x's dtype).
        symmetry: ``"symmetric"`` (invariant under permutations of the N points),
            ``"antisymmetric"`` (sign flip under transpositions), ``"invariant_in_keys"``
            (x[:, 0] is a query; invariant under permutations of x[:, 1:]) or
            ``"equivariant"`` (one output per point, (B, N·k), permuted with the points).
        description: one line for docs and model cards.
    """

    name: str
    fn: TargetFn
    symmetry: Symmetry
    description: str = ""


TARGETS: Registry[TargetSpec] = Registry("target", identity=lambda spec: spec.fn)


def register_target(
    name: str, *, symmetry: Symmetry, description: str = ""
) -> Callable[[TargetFn], TargetFn]:
    """Decorator registering an exact target ``fn(x: (B, N, D), **params)`` as ``name``."""
    if symmetry not in SYMMETRIES:
        raise ValueError(f"symmetry={symmetry!r} is not one of {SYMMETRIES}")

    def deco(fn: TargetFn) -> TargetFn:
        doc = description or (fn.__doc__ or "").strip().splitlines()[0]
        TARGETS.add(name, TargetSpec(name=name, fn=fn, symmetry=symmetry, description=doc))
        return fn

    return deco


def list_targets(symmetry: str | None = None) -> list[str]:
    """Sorted registered target names, optionally only those of one symmetry kind."""
    return [n for n, s in TARGETS.items() if symmetry is None or s.symmetry == symmetry]


def get_target(name: str) -> TargetSpec:
    """The :class:`TargetSpec` of ``name``; unknown names list the valid ones."""
    return TARGETS.get(name)


def evaluate_target(name: str, x: Tensor, **params: Any) -> Tensor:
    """Exact value of target ``name`` at x: (B, N, D) → (B,) or (B, k).

    Raises:
        ValueError: on an unknown target, bad ``params`` or an output of the wrong shape.
    """
    spec = get_target(name)
    if x.dim() != 3:
        raise ValueError(f"x must be (B, N, D), got shape {tuple(x.shape)}")
    try:
        y = spec.fn(x, **params)
    except TypeError as e:
        raise ValueError(f"bad target_params for target {name!r}: {e}") from None
    if y.dim() not in (1, 2) or y.shape[0] != x.shape[0]:
        raise ValueError(
            f"target {name!r} returned shape {tuple(y.shape)}, expected (B,) or (B, k)"
        )
    return y
