"""Hyper-parameter validation from type hints.

Every model and datamodule declares its hyper-parameters as typed keyword arguments of
``__init__``. :func:`validate_kwargs` checks a user's overrides against that signature
*before* anything is built, so a typo or an out-of-range value fails with a message that
names the key instead of surfacing later as a shape error mid-training.

Each hint is checked by a pydantic :class:`~pydantic.TypeAdapter` (one per callable and
parameter, cached), in pydantic's lax mode tightened to what a config value means:
``bool``/``int``/``str`` must be exactly that type (a bool is not an int), a ``float`` also
takes an int (returned as a float) but never a bool or NaN, ``list[X]`` takes a list or a
tuple and returns a list, and a ``Literal`` takes only values equal to its members.
``X | None``, ``dict``, ``tuple[X, ...]``, ``Path``, ``Any`` and other hints behave as in
pydantic (a class pydantic does not know gets an ``isinstance`` check); ranges are
``Annotated[X, Interval(...)]``. A failure is re-raised as a plain ``ValueError`` naming the
key (``beta[1]`` inside a list), the value and what was expected.
"""

from __future__ import annotations

import functools
import inspect
import math
import operator
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Union

from pydantic import (
    AfterValidator,
    BeforeValidator,
    ConfigDict,
    GetCoreSchemaHandler,
    Strict,
    StrictBool,
    StrictInt,
    StrictStr,
    TypeAdapter,
    ValidationError,
)
from pydantic_core import ErrorDetails, PydanticCustomError, core_schema

__all__ = ["Interval", "hparam_defaults", "validate_kwargs"]


@dataclass(frozen=True)
class Interval:
    """A numeric range constraint, used as ``Annotated[int, Interval(ge=1)]``."""

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None

    def _bounds(self) -> list[tuple[str, float, Callable[[Any, Any], bool]]]:
        """The set bounds as ``(symbol, bound, comparison)``."""
        ops = (
            (">=", self.ge, operator.ge),
            (">", self.gt, operator.gt),
            ("<=", self.le, operator.le),
            ("<", self.lt, operator.lt),
        )
        return [(sym, bound, op) for sym, bound, op in ops if bound is not None]

    def _check(self, value: Any) -> Any:
        """Return ``value`` if it lies in the interval (or is None), else raise."""
        if value is not None and not all(op(value, bound) for _, bound, op in self._bounds()):
            raise PydanticCustomError(
                "out_of_range", "is out of range: must be {range}", {"range": str(self)}
            )
        return value

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        """Validate as the annotated type, then check the range."""
        return core_schema.no_info_after_validator_function(self._check, handler(source))

    def __str__(self) -> str:
        return " and ".join(f"{sym} {bound}" for sym, bound, _ in self._bounds())


@dataclass(frozen=True)
class _OneOf:
    """``Annotated`` marker for a ``Literal``: its error lists the members."""

    members: tuple[Any, ...]

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        """Validate as the ``Literal``, replacing pydantic's error with ``is not one of [...]``."""
        return core_schema.custom_error_schema(
            handler(source),
            custom_error_type="not_one_of",
            custom_error_message="is not one of {members}",
            custom_error_context={"members": list(self.members)},
        )


def _not_nan(value: float) -> float:
    """Reject NaN (inf is a valid float)."""
    if math.isnan(value):
        raise PydanticCustomError("nan", "must not be NaN")
    return value


def _tuple_to_list(value: Any) -> Any:
    """Let a strict list accept a tuple."""
    return list(value) if isinstance(value, tuple) else value


_SCALARS: dict[type, Any] = {
    bool: StrictBool,
    int: StrictInt,
    str: StrictStr,
    float: Annotated[float, Strict(), AfterValidator(_not_nan)],  # strict float takes an int
}
_CONFIG = ConfigDict(arbitrary_types_allowed=True)

# the zoo's wording for pydantic's error types; other errors keep pydantic's message
_MESSAGES = {
    "bool_type": "must be a bool",
    "int_type": "must be an int",
    "float_type": "must be a float",
    "string_type": "must be a str",
    "list_type": "must be a list",
    "dict_type": "must be a mapping",
    "missing": "is too short",
}


def _strict(hint: Any) -> Any:
    """``hint`` rewritten for pydantic's lax mode with the zoo's stricter semantics.

    Scalars become strict (see :data:`_SCALARS`), ``Literal`` gets a member-listing error,
    lists become strict but accept a tuple; the rewrite recurses through ``Annotated``,
    unions and generic arguments.
    """
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if isinstance(hint, type) and hint in _SCALARS:
        return _SCALARS[hint]
    if origin is Literal:
        return Annotated[hint, _OneOf(args)]
    if origin is Annotated:
        return Annotated[(_strict(args[0]), *args[1:])]
    if args:
        inner = tuple(_strict(a) for a in args)
        is_union = origin in (Union, types.UnionType)
        hint = Union[inner] if is_union else origin[inner]  # noqa: UP007 - built at run time
    if hint is list or origin is list:
        return Annotated[hint, Strict(), BeforeValidator(_tuple_to_list)]
    return hint


@functools.cache
def _params(fn: Callable | type) -> dict[str, tuple[inspect.Parameter, Any]]:
    """Keyword parameters of ``fn`` with their (extras-preserving) type hints; cached.

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


@functools.cache
def _adapter(fn: Callable | type, name: str) -> TypeAdapter:
    """The (cached) validator of ``fn``'s parameter ``name``."""
    return TypeAdapter(_strict(_params(fn)[name][1]), config=_CONFIG)


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


def _describe(name: str, value: Any, error: ErrorDetails) -> str:
    """One pydantic error as ``key[i]=value must be ...``."""
    key = name
    for part in error["loc"]:
        try:
            value = value[part]
        except (KeyError, IndexError, TypeError):
            continue  # a union member's tag, not a step into the value
        key += f"[{part!r}]"
    text = _MESSAGES.get(error["type"], error["msg"].removeprefix("Input "))
    return f"{key}={error['input']!r} {text}"


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
    kwargs = dict(_to_plain(kwargs))
    unknown = sorted(set(kwargs) - set(params))
    if unknown:
        raise ValueError(
            f"unknown hyper-parameter(s) {unknown} for {what}; valid keys are {sorted(params)}"
        )
    out: dict[str, Any] = {}
    for name, (p, _) in params.items():
        if name in kwargs:
            value = _to_plain(kwargs[name])
            try:
                out[name] = _adapter(fn, name).validate_python(value)
            except ValidationError as e:
                errors = "; ".join(_describe(name, value, err) for err in e.errors())
                raise ValueError(f"invalid hyper-parameter for {what}: {errors}") from None
        elif p.default is not inspect.Parameter.empty:
            out[name] = p.default
        else:
            raise ValueError(f"missing required hyper-parameter {name!r} for {what}")
    return out
