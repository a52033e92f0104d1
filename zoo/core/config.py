"""Hyper-parameter validation from type hints.

Every model and datamodule declares its hyper-parameters as typed keyword arguments of
``__init__``. :func:`validate_kwargs` checks a user's overrides against that signature
*before* anything is built, so a typo or an out-of-range value fails with a message that
names the key instead of surfacing later as a shape error mid-training.

Supported annotations: ``int``, ``float``, ``bool``, ``str``, ``Literal[...]``,
``X | None``, ``list[X]``/``tuple[X, ...]``, ``dict``, ``Any`` and
``Annotated[X, Interval(...)]`` for ranges. (pydantic would do this too, but it is not a
dependency of the stack and we need only this small subset.)
"""

from __future__ import annotations

import inspect
import math
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Union

__all__ = ["Interval", "hparam_defaults", "validate_kwargs"]


@dataclass(frozen=True)
class Interval:
    """A numeric range constraint, used as ``Annotated[int, Interval(ge=1)]``."""

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None

    def check(self, key: str, value: float) -> None:
        """Raise ``ValueError`` naming ``key`` if ``value`` lies outside the interval."""
        ok = (
            (self.ge is None or value >= self.ge)
            and (self.gt is None or value > self.gt)
            and (self.le is None or value <= self.le)
            and (self.lt is None or value < self.lt)
        )
        if not ok:
            raise ValueError(f"{key}={value!r} is out of range: must be {self}")

    def __str__(self) -> str:
        parts = [
            f"{op} {bound}"
            for op, bound in ((">=", self.ge), (">", self.gt), ("<=", self.le), ("<", self.lt))
            if bound is not None
        ]
        return " and ".join(parts)


def _params(fn: Callable | type) -> dict[str, tuple[inspect.Parameter, Any]]:
    """Keyword parameters of ``fn`` with their (extras-preserving) type hints.

    For a class, its ``__init__`` is read; while that ``__init__`` forwards ``**kwargs`` to
    its parent, the parents' parameters are included (so a base class can own shared
    hyper-parameters such as the optimiser's).
    """
    fns = [fn]
    if isinstance(fn, type):
        fns = []
        for klass in fn.__mro__:
            if "__init__" not in vars(klass):
                continue
            fns.append(klass.__init__)
            kinds = {p.kind for p in inspect.signature(klass.__init__).parameters.values()}
            if inspect.Parameter.VAR_KEYWORD not in kinds:
                break
    out: dict[str, tuple[inspect.Parameter, Any]] = {}
    for f in fns:
        hints = typing.get_type_hints(f, include_extras=True)
        for name, p in inspect.signature(f).parameters.items():
            if name == "self" or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) or name in out:
                continue
            out[name] = (p, hints.get(name, Any))
    return out


def hparam_defaults(fn: Callable | type) -> dict[str, Any]:
    """The declared defaults of ``fn``'s keyword parameters (required ones are omitted)."""
    return {
        k: p.default
        for k, (p, _) in _params(fn).items()
        if p.default is not inspect.Parameter.empty
    }


def _to_plain(value: Any) -> Any:
    """OmegaConf containers → plain Python; leaves everything else alone."""
    try:
        from omegaconf import DictConfig, ListConfig, OmegaConf

        if isinstance(value, (DictConfig, ListConfig)):
            return OmegaConf.to_container(value, resolve=True)
    except ImportError:  # pragma: no cover - omegaconf is a dependency
        pass
    return value


def _coerce(key: str, value: Any, hint: Any) -> Any:
    """Check ``value`` against ``hint`` and return it in canonical form (e.g. int→float)."""
    value = _to_plain(value)
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if hint is Any:
        return value
    if origin is Annotated:
        value = _coerce(key, value, args[0])
        for meta in args[1:]:
            if isinstance(meta, Interval) and value is not None:
                meta.check(key, value)
        return value
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(key, value, a)
            except ValueError as e:
                errors.append(str(e))
        raise ValueError("; ".join(errors))
    if origin is Literal:
        if value not in args:
            raise ValueError(f"{key}={value!r} is not one of {list(args)}")
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise ValueError(f"{key}={value!r} must be a bool")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{key}={value!r} must be an int")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{key}={value!r} must be a float")
        if math.isnan(value):
            raise ValueError(f"{key} must not be NaN")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ValueError(f"{key}={value!r} must be a str")
        return value
    if origin in (list, tuple, Sequence) or hint in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{key}={value!r} must be a list")
        if not args:
            return list(value)
        if origin is tuple and args[-1] is not Ellipsis:  # fixed-length tuple[X, Y]
            if len(value) != len(args):
                raise ValueError(f"{key}={value!r} must have length {len(args)}")
            return [_coerce(f"{key}[{i}]", v, a) for i, (v, a) in enumerate(zip(value, args))]
        return [_coerce(f"{key}[{i}]", v, args[0]) for i, v in enumerate(value)]
    if origin in (dict, Mapping) or hint is dict:
        if not isinstance(value, Mapping):
            raise ValueError(f"{key}={value!r} must be a mapping")
        return dict(value)
    return value


def validate_kwargs(fn: Callable | type, kwargs: Mapping[str, Any], *, what: str) -> dict[str, Any]:
    """Validate ``kwargs`` against ``fn``'s typed signature; return the full argument dict.

    Args:
        fn: the callable or class whose keyword parameters define the schema.
        kwargs: user values; missing keys take the declared defaults.
        what: a label for error messages, e.g. ``"model 'gnn_nc'"``.

    Raises:
        ValueError: on an unknown key (listing the valid ones), a missing required key, a
            wrong type or a value outside its :class:`Interval`.
    """
    params = _params(fn)
    kwargs = dict(_to_plain(dict(kwargs)))
    unknown = sorted(set(kwargs) - set(params))
    if unknown:
        raise ValueError(
            f"unknown hyper-parameter(s) {unknown} for {what}; valid keys are {sorted(params)}"
        )
    out: dict[str, Any] = {}
    for name, (p, hint) in params.items():
        if name in kwargs:
            try:
                out[name] = _coerce(name, kwargs[name], hint)
            except ValueError as e:
                raise ValueError(f"invalid hyper-parameter for {what}: {e}") from None
        elif p.default is not inspect.Parameter.empty:
            out[name] = p.default
        else:
            raise ValueError(f"missing required hyper-parameter {name!r} for {what}")
    return out
