"""Hyper-parameter validation from type hints.

Every model and datamodule declares its hyper-parameters as typed keyword arguments of
``__init__``. :func:`validate_kwargs` checks a user's overrides against that signature
*before* anything is built, so a typo or an out-of-range value fails with a message that
names the key instead of surfacing later as a shape error mid-training.

Each hint is checked by a pydantic :class:`~pydantic.TypeAdapter` (one per callable and
parameter, cached), in pydantic's lax mode tightened to what a config value means:
``bool``/``int``/``str`` must be exactly that type (a bool is not an int), a ``float`` also
takes an int (returned as a float) but never a bool, NaN or ±inf (unless annotated
:data:`ALLOW_INF`), ``list[X]`` takes a list or a tuple and returns a list, and a ``Literal``
takes only values equal to its members. ``X | None``, ``dict``, ``tuple[X, ...]``, ``Path``,
``Any`` and other hints behave as in pydantic (a class pydantic does not know gets an
``isinstance`` check); ranges are ``Annotated[X, Interval(...)]``, seeds :data:`Seed` and
devices :data:`Device`. A failure is re-raised as a plain ``ValueError`` naming the key
(``beta[1]`` inside a list), the value and what was expected.

Sizes are checked too, before anything is allocated: a model or datamodule estimates its
:class:`Footprint` from its config, and :func:`check_footprint` refuses one above
:func:`memory_limit` (``ZOO_MAX_MEMORY_GB``).
"""

from __future__ import annotations

import functools
import inspect
import math
import operator
import os
import types
import typing
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Union

import torch
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

__all__ = [
    "ALLOW_INF",
    "MEMORY_ENV",
    "AllowInf",
    "Device",
    "Footprint",
    "Interval",
    "Seed",
    "check_footprint",
    "hparam_defaults",
    "memory_limit",
    "safe_pow",
    "validate_kwargs",
]


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


@dataclass(frozen=True)
class AllowInf:
    """``Annotated`` marker of a float that may be ±inf (NaN is still refused): use
    :data:`ALLOW_INF`, e.g. ``Annotated[float, Interval(gt=0), ALLOW_INF]``."""


ALLOW_INF = AllowInf()


def _finite(value: float) -> float:
    """Reject NaN and ±inf."""
    if not math.isfinite(value):
        raise PydanticCustomError("not_finite", "must be finite")
    return value


def _not_nan(value: float) -> float:
    """Reject NaN (a float marked :data:`ALLOW_INF` may be ±inf)."""
    if math.isnan(value):
        raise PydanticCustomError("nan", "must not be NaN")
    return value


#: every seed the zoo uses feeds ``numpy.random.SeedSequence`` (any int >= 0) or
#: ``torch.Generator.manual_seed`` (at most 2**64 - 1): [0, 2**63) suits both
SEED_BOUND = 2**63


def _check_seed(value: int) -> int:
    if not 0 <= value < SEED_BOUND:
        raise PydanticCustomError("seed", "is not a valid seed: it must be an int in [0, 2**63)")
    return value


#: a seed hyper-parameter: an int in [0, 2**63)
Seed = Annotated[int, AfterValidator(_check_seed)]


def _check_device(value: str) -> str:
    """``"auto"``, ``"cpu"``, ``"cuda[:i]"`` or ``"mps"``, and only if this machine has it."""
    if value in ("auto", "cpu"):
        return value
    try:
        device = torch.device(value)
    except (RuntimeError, ValueError):
        device = None
    if device is None or device.type not in ("cpu", "cuda", "mps"):
        raise PydanticCustomError(
            "device", "is not a device: use 'auto', 'cpu', 'cuda', 'cuda:<index>' or 'mps'"
        )
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise PydanticCustomError(
                "device",
                "is not available: this machine has no CUDA GPU (torch.cuda.is_available() is "
                "False); use device='auto' or 'cpu'",
            )
        if device.index is not None and device.index >= count:
            raise PydanticCustomError(
                "device",
                "is not available: this machine has {count} CUDA GPU(s) (indices 0..{last})",
                {"count": count, "last": count - 1},
            )
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise PydanticCustomError(
            "device", "is not available: this machine has no MPS device; use 'auto' or 'cpu'"
        )
    return value


#: a device hyper-parameter, checked against this machine's devices
Device = Annotated[str, AfterValidator(_check_device)]


def _tuple_to_list(value: Any) -> Any:
    """Let a strict list accept a tuple."""
    return list(value) if isinstance(value, tuple) else value


_SCALARS: dict[type, Any] = {
    bool: StrictBool,
    int: StrictInt,
    str: StrictStr,
    float: Annotated[float, Strict(), AfterValidator(_finite)],  # strict float takes an int
}
_INF_FLOAT = Annotated[float, Strict(), AfterValidator(_not_nan)]
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


def _strict(hint: Any, allow_inf: bool = False) -> Any:
    """``hint`` rewritten for pydantic's lax mode with the zoo's stricter semantics.

    Scalars become strict (see :data:`_SCALARS`; floats finite unless inside an
    ``Annotated[..., ALLOW_INF]``), ``Literal`` gets a member-listing error, lists become
    strict but accept a tuple; the rewrite recurses through ``Annotated``, unions and generic
    arguments.
    """
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is float and allow_inf:
        return _INF_FLOAT
    if isinstance(hint, type) and hint in _SCALARS:
        return _SCALARS[hint]
    if origin is Literal:
        return Annotated[hint, _OneOf(args)]
    if origin is Annotated:
        allow_inf = allow_inf or any(isinstance(a, AllowInf) for a in args[1:])
        return Annotated[(_strict(args[0], allow_inf), *args[1:])]
    if args:
        inner = tuple(_strict(a, allow_inf) for a in args)
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


def validate_kwargs(
    fn: Callable | type,
    kwargs: Mapping[str, Any],
    *,
    what: str,
    fixed: Collection[str] = (),
) -> dict[str, Any]:
    """Validate ``kwargs`` against ``fn``'s typed signature; return the full argument dict.

    Args:
        fn: the callable or class whose keyword parameters define the schema.
        kwargs: user values; missing keys take the declared defaults.
        what: a label for error messages, e.g. ``"model 'gnn_nc'"``.
        fixed: parameters the caller supplies itself (e.g. a sampler's ``n``): setting one
            is an unknown-key error, and they are not in the returned dict.

    Raises:
        ValueError: on an unknown key (listing the valid ones), a missing required key, a
            wrong type or a value outside its :class:`Interval`.
    """
    params = {k: v for k, v in _params(fn).items() if k not in fixed}
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


# -- sizes: estimated before anything is allocated -----------------------------------------
MEMORY_ENV = "ZOO_MAX_MEMORY_GB"
DEFAULT_MEMORY_GB = 8.0
GIB = 2**30
#: Python and PyTorch state of one ``nn.Module`` (measured: 5-8 KiB for PyG convs and
#: torchmetrics metrics), which dominates the footprint of a deep narrow network
MODULE_BYTES = 8 * 1024


@dataclass(frozen=True)
class Footprint:
    """Estimated memory of a model or a dataset, computed from its config alone.

    Attributes:
        params: parameter and buffer elements (float32, 4 bytes each).
        modules: ``nn.Module`` objects (:data:`MODULE_BYTES` each).
        other: other bytes: the activations of one training batch, metric states, data splits
            and the transient tensors that generating them needs.
    """

    params: float = 0
    modules: float = 0
    other: float = 0

    def __post_init__(self) -> None:
        for name in ("params", "modules", "other"):  # ints too large for a float are inf
            value = getattr(self, name)
            object.__setattr__(self, name, float(value) if value < 2**1000 else math.inf)

    @property
    def bytes(self) -> float:
        """Total estimated bytes (may be ``inf`` for astronomically large configs)."""
        return 4 * self.params + MODULE_BYTES * self.modules + self.other


def memory_limit() -> float:
    """The largest footprint in bytes a config may have: ``$ZOO_MAX_MEMORY_GB`` GiB
    (default 8; ``inf`` disables the check)."""
    raw = os.environ.get(MEMORY_ENV, "").strip()
    if not raw:
        return DEFAULT_MEMORY_GB * GIB
    try:
        gb = float(raw)
    except ValueError:
        gb = math.nan
    if not gb > 0:  # also NaN
        raise ValueError(f"{MEMORY_ENV}={raw!r} must be a positive number of GiB (or 'inf')")
    return gb * GIB


def safe_pow(base: float, exp: float) -> float:
    """``base ** exp`` (exact for ints), or ``inf`` beyond ~2**1000: sizes such as a tree's
    ``branching ** depth`` leaves, computed without a huge integer power."""
    if base <= 1 or exp * math.log2(base) < 1000:
        return base**exp
    return math.inf


def _amount(n: float) -> str:
    """``≈ 2.5 GiB``, or an astronomical amount (beyond 2**80 bytes) as such."""
    if n < 2**80:
        return f"≈ {n / GIB:.3g} GiB"
    exact = f" (≈ {n / GIB:.3g} GiB)" if math.isfinite(n) else ""
    return f"an astronomical amount of memory{exact}"


def check_footprint(what: str, footprint: Footprint, other: str = "other memory") -> None:
    """Raise if ``footprint`` exceeds :func:`memory_limit`.

    Args:
        what: e.g. ``"model 'gnn_nc' (depth=1000000)"``.
        footprint: the estimate.
        other: what :attr:`Footprint.other` holds, for the message.

    Raises:
        ValueError: naming ``what``, the estimate and its parts, the limit and how to raise it.
    """
    need, limit = footprint.bytes, memory_limit()
    if need <= limit:
        return
    parts = [f"{footprint.params:.3g} parameters"] if footprint.params else []
    parts += [f"{footprint.modules:.3g} modules"] if footprint.modules else []
    if footprint.other:
        parts.append(f"{_amount(footprint.other)} of {other}" if parts else other)
    made_of = ", ".join(parts[:-1]) + (" and " if len(parts) > 1 else "") + parts[-1]
    hint = (
        f", or raise the limit with {MEMORY_ENV}={math.ceil(need / GIB * 1.25)}"
        if need < 2**50  # beyond a PiB no machine helps
        else ""
    )
    raise ValueError(
        f"{what} needs {_amount(need)} for {made_of}, more than the limit of "
        f"{limit / GIB:g} GiB ({MEMORY_ENV}): lower its sizes{hint}"
    )
