"""Registries: one generic name → entry mechanism, and the model/datamodule registries.

:class:`Registry` is what every registry in the zoo is (models, datamodules, set samplers and
targets, figures): names are the API (timm style), listing is sorted, unknown names get
close-match suggestions and the valid list, and re-using a name for a different entry fails.

A model is registered with :func:`register_model` next to its class, together with the
datamodule it trains on, that datamodule's defaults, and the hyper-parameters the model
*shares* with its data (e.g. a U-Net's ``depth`` is the tree depth of its data). One function,
:meth:`ModelSpec.configs`, turns user overrides into a consistent (model, data) config pair;
:func:`create` and :func:`create_datamodule` build from it.
"""

from __future__ import annotations

import difflib
import fnmatch
import importlib
import pkgutil
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from zoo.core.config import Footprint, check_footprint, hparam_defaults, validate_kwargs

if TYPE_CHECKING:
    import pytorch_lightning as pl

    from zoo.core.module import ZooModule

__all__ = [
    "DATAMODULES",
    "MODELS",
    "ModelSpec",
    "Registry",
    "create",
    "create_datamodule",
    "get_datamodule_class",
    "get_spec",
    "import_submodules",
    "list_datamodules",
    "list_models",
    "register_datamodule",
    "register_model",
]

E = TypeVar("E")
T = TypeVar("T", bound=type)


class Registry(Generic[E]):
    """Named entries of one ``kind`` (``"model"``, ``"target"``, ...).

    Args:
        kind: what an entry is, for error messages ("unknown target 'x'").
        identity: maps an entry to what makes two registrations "the same" (default: the
            entry itself); re-registering the same name with the same identity is a no-op
            (module re-import), with another one a ``ValueError``.

    Example::

        SAMPLERS: Registry[SamplerFn] = Registry("sampler")

        @SAMPLERS.register("gaussian")
        def gaussian(n, n_set, dim, generator, device): ...

        SAMPLERS.get("gausian")  # ValueError: unknown sampler 'gausian'. Did you mean ...
    """

    def __init__(self, kind: str, identity: Callable[[E], Any] | None = None) -> None:
        self.kind = kind
        self._identity = identity or (lambda e: e)
        self._entries: dict[str, E] = {}

    def add(self, name: str, entry: E) -> E:
        """Register ``entry`` as ``name``; returns ``entry``."""
        if not isinstance(name, str) or not name:
            raise ValueError(f"a {self.kind} name must be a non-empty str, got {name!r}")
        old = self._entries.get(name)
        if old is not None and self._identity(old) is not self._identity(entry):
            raise ValueError(
                f"{self.kind} name {name!r} is already registered to {self._identity(old)!r}; "
                f"pick another name"
            )
        self._entries[name] = entry
        return entry

    def register(self, name: str) -> Callable[[E], E]:
        """Decorator form of :meth:`add` for entries that are the decorated object."""
        return lambda entry: self.add(name, entry)

    def unknown(self, name: Any) -> ValueError:
        """The error for an unknown ``name``: close matches first, then every valid name."""
        valid = self.names()
        if not isinstance(name, str) or not name:
            return ValueError(
                f"a {self.kind} name must be a non-empty str, got {name!r} "
                f"({type(name).__name__}). Valid {self.kind}s: {valid}"
            )
        close = difflib.get_close_matches(name, valid, n=3)
        hint = f" Did you mean {close}?" if close else ""
        return ValueError(f"unknown {self.kind} {name!r}.{hint} Valid {self.kind}s: {valid}")

    def get(self, name: str) -> E:
        """The entry of ``name``; unknown names raise :meth:`unknown`."""
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            raise self.unknown(name) from None

    def names(self, pattern: str | None = None) -> list[str]:
        """Sorted names, optionally filtered by a ``fnmatch`` pattern."""
        return sorted(n for n in self._entries if pattern is None or fnmatch.fnmatch(n, pattern))

    def items(self) -> list[tuple[str, E]]:
        """``(name, entry)`` pairs sorted by name."""
        return sorted(self._entries.items())

    def remove(self, name: str) -> None:
        """Forget ``name`` (tests that register temporary entries)."""
        self._entries.pop(name, None)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)


@dataclass(frozen=True)
class ModelSpec:
    """What a registered model name stands for.

    Attributes:
        name: registry name (= Hydra ``model=`` choice = checkpoint folder name).
        cls: the LightningModule class.
        defaults: overrides of ``cls.__init__`` defaults that define this name.
        data: registered datamodule name.
        data_defaults: overrides of the datamodule's defaults for this model.
        shared: model hyper-parameter → data key that must hold the same value (a U-Net's
            ``depth`` is its data's tree depth). The data takes the model's value unless only
            the data key is set; setting both to different values is an error.
        description: one line for ``list_models`` tables and model cards.
        paper: the result the model reproduces (model cards).
    """

    name: str
    cls: type
    defaults: dict[str, Any] = field(default_factory=dict)
    data: str = ""
    data_defaults: dict[str, Any] = field(default_factory=dict)
    shared: dict[str, str] = field(default_factory=dict)
    description: str = ""
    paper: str = ""

    @property
    def family(self) -> str:
        """The family package the model lives in (``graphs``, ``ansatz``, ...)."""
        parts = self.cls.__module__.split(".")
        return parts[1] if len(parts) > 1 and parts[0] == "zoo" else parts[0]

    def configs(
        self, model: Mapping[str, Any] | None = None, data: Mapping[str, Any] | None = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """The validated ``(model kwargs, data config)`` pair for these overrides.

        The one place a data config is written: registry defaults ⊕ overrides, with every
        :attr:`shared` key reconciled. Nothing is built, so a bad value fails first.

        Args:
            model: model hyper-parameters the user set.
            data: data keys the user set (without ``name``).

        Raises:
            ValueError: on invalid values, or a shared key set to different values on the
                two sides (naming both keys).
        """
        model, data = dict(model or {}), dict(data or {})
        data.pop("name", None)
        m = {**self.defaults, **model}
        d = {**self.data_defaults, **data}
        for mk, dk in self.shared.items():
            if mk in model and dk in data and _plain(model[mk]) != _plain(data[dk]):
                raise ValueError(
                    f"model.{mk}={model[mk]!r} contradicts data.{dk}={data[dk]!r} for model "
                    f"{self.name!r}: they must be equal; set model.{mk} alone and the data follows"
                )
            if dk in data and mk not in model:
                m[mk] = data[dk]
        m = validate_kwargs(self.cls, m, what=f"model {self.name!r}")
        for mk, dk in self.shared.items():
            d[dk] = m[mk]
        data_cfg = _data_config({"name": self.data, **d})
        _check_model(self, m, data_cfg)
        return m, data_cfg

    def model_config(self, **overrides: Any) -> dict[str, Any]:
        """Full, validated ``__init__`` kwargs of this model (defaults ⊕ overrides)."""
        return self.configs(overrides)[0]

    def data_config(self, **overrides: Any) -> dict[str, Any]:
        """Full, validated data config (with its ``name``) of the default model."""
        return self.configs(None, overrides)[1]


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def _sizes(cfg: Mapping[str, Any], defaults: Mapping[str, Any]) -> str:
    """`` (depth=1000000, width=8)``: the numeric settings of ``cfg`` that differ from
    ``defaults`` (what a size error is most likely about), or ``""``."""
    set_ = [
        f"{k}={_short(v)}"
        for k, v in cfg.items()
        if isinstance(v, (int, float)) and not isinstance(v, bool) and v != defaults.get(k)
    ]
    return f" ({', '.join(set_)})" if set_ else ""


def _short(value: float) -> str:
    """``repr`` of a number, ints of more than 20 digits as ``≈1.00e+400``."""
    digits = str(abs(value))
    if not isinstance(value, int) or len(digits) <= 20:
        return repr(value)
    return f"{'-' if value < 0 else ''}≈{digits[0]}.{digits[1:3]}e+{len(digits) - 1}"


def _estimate(footprint: Callable[..., Footprint], *args: Any) -> Footprint:
    try:
        return footprint(*args)
    except OverflowError:  # sizes beyond a float: astronomically large
        return Footprint(other=float("inf"))


def _check_model(spec: ModelSpec, hp: dict[str, Any], data: dict[str, Any]) -> None:
    """The model's own consistency checks (``cls.check_hparams(hp, data)``), then its
    estimated footprint (``cls.footprint(hp, data)``) against the memory limit."""
    check = getattr(spec.cls, "check_hparams", None)
    if check is not None:
        check(hp, data)
    footprint = getattr(spec.cls, "footprint", None)
    if footprint is not None:
        defaults = {**hparam_defaults(spec.cls), **spec.defaults}
        check_footprint(
            f"model {spec.name!r}{_sizes(hp, defaults)}",
            _estimate(footprint, hp, data),
            other=f"activations and training state for a batch of {data.get('batch_size')}",
        )


MODELS: Registry[ModelSpec] = Registry("model", identity=lambda spec: spec.cls)
DATAMODULES: Registry[type] = Registry("datamodule")


def register_model(
    name: str,
    *,
    data: str,
    defaults: Mapping[str, Any] | None = None,
    data_defaults: Mapping[str, Any] | None = None,
    shared: Mapping[str, str] | tuple[str, ...] = (),
    description: str = "",
    paper: str = "",
) -> Callable[[T], T]:
    """Class decorator registering ``name``; stack it to register several names per class.

    ``shared`` lists the hyper-parameters the model shares with its data: a tuple of keys
    with the same name on both sides, or a ``{model_key: data_key}`` mapping.

    Example::

        @register_model("gcn_nc", data="sbm", defaults={"conv": "gcn"}, shared=("n_classes",))
        @register_model("gnn_nc", data="sbm", shared=("n_classes",))
        class NodeGNN(ZooModule): ...
    """
    shared_map = dict(shared) if isinstance(shared, Mapping) else {k: k for k in shared}

    def deco(cls: T) -> T:
        spec = ModelSpec(
            name=name,
            cls=cls,
            defaults=dict(defaults or {}),
            data=data,
            data_defaults=dict(data_defaults or {}),
            shared=shared_map,
            description=description or next(iter((cls.__doc__ or "").strip().splitlines()), ""),
            paper=paper,
        )
        clash = sorted(set(spec.data_defaults) & set(shared_map.values()))
        if clash:
            raise ValueError(
                f"model {name!r}: data_defaults {clash} are shared with the model; set them "
                f"in defaults (the data follows)"
            )
        MODELS.add(name, spec)
        return cls

    return deco


def register_datamodule(name: str) -> Callable[[T], T]:
    """Class decorator registering a ``LightningDataModule`` under ``name``."""

    def deco(cls: T) -> T:
        DATAMODULES.add(name, cls)
        cls.zoo_name = name
        return cls

    return deco


def list_models(pattern: str | None = None) -> list[str]:
    """Sorted registered model names, optionally filtered by a ``fnmatch`` pattern."""
    return MODELS.names(pattern)


def list_datamodules() -> list[str]:
    """Sorted registered datamodule names."""
    return DATAMODULES.names()


def get_spec(name: str) -> ModelSpec:
    """The :class:`ModelSpec` of ``name``; unknown names list the valid ones."""
    return MODELS.get(name)


def get_datamodule_class(name: str) -> type:
    """The datamodule class registered as ``name``."""
    return DATAMODULES.get(name)


def _data_config(cfg: Mapping[str, Any]) -> dict[str, Any]:
    cfg = dict(cfg)
    if "name" not in cfg:
        raise ValueError(f"a data config needs a 'name'; registered: {list_datamodules()}")
    name = cfg.pop("name")
    cls = get_datamodule_class(name)
    cfg = validate_kwargs(cls, cfg, what=f"datamodule {name!r}")
    footprint = getattr(cls, "footprint", None)
    if footprint is not None:
        check_footprint(
            f"datamodule {name!r}{_sizes(cfg, hparam_defaults(cls))}",
            _estimate(footprint, cfg),
            other="its splits and the tensors that generate them",
        )
    return {"name": name, **cfg}


def check_shared(name: str | None, hparams: Mapping[str, Any], data: Mapping[str, Any]) -> None:
    """Raise if the model ``name`` with ``hparams`` and the data config ``data`` disagree on
    a shared key (naming both keys); a no-op for unregistered names."""
    if name is None or name not in MODELS:
        return
    bad = [
        f"model.{mk}={hparams[mk]!r} vs data.{dk}={data[dk]!r}"
        for mk, dk in MODELS.get(name).shared.items()
        if mk in hparams and dk in data and _plain(hparams[mk]) != _plain(data[dk])
    ]
    if bad:
        raise ValueError(
            f"model {name!r} and its data disagree on shared keys: {'; '.join(bad)}; build the "
            "data with zoo.create_datamodule(model) or set the model's value"
        )


def create(name: str, **overrides: Any) -> ZooModule:
    """A fresh (untrained) model registered as ``name``, with validated ``overrides``.

    The returned module knows its registry name (``module.zoo_name``) and the data config
    it is meant to train on (``module.zoo_data_config``), which follows the shared keys:
    ``create("unet_bp", depth=4)`` trains on depth-4 trees.
    """
    spec = get_spec(name)
    model_cfg, data_cfg = spec.configs(overrides)
    module = spec.cls(**model_cfg)
    module.zoo_name = name
    module.zoo_data_config = data_cfg
    return module


def create_datamodule(
    ref: ZooModule | str | Mapping[str, Any], **overrides: Any
) -> pl.LightningDataModule:
    """The datamodule for ``ref`` with validated ``overrides`` (e.g. ``seed=1``).

    ``ref`` is a module from :func:`create`/``zoo.load`` (its training data config; an
    override that contradicts the model's shared keys raises), a registered model name (its
    default data, shared keys following ``overrides``), or a data config mapping with a ``name``.
    """
    if isinstance(ref, str):
        cfg = get_spec(ref).data_config(**overrides)
    else:
        if isinstance(ref, Mapping):
            base = dict(ref)
        else:
            base = dict(getattr(ref, "zoo_data_config", None) or {})
            if not base:
                raise ValueError(
                    "this module carries no data config; build it with zoo.create/load"
                )
        cfg = _data_config({**base, **overrides})
        if not isinstance(ref, Mapping):
            check_shared(ref.zoo_name, ref.hparams, cfg)
    cfg = dict(cfg)
    name = cfg.pop("name")
    return get_datamodule_class(name)(**cfg)


def import_submodules(package: str) -> list[str]:
    """Import every public module and subpackage of ``package`` so that their registrations
    run; a new file in a family registers itself without touching any ``__init__``.

    Returns:
        The imported module names, sorted (modules starting with ``_`` are skipped).
    """
    path = importlib.import_module(package).__path__
    names = sorted(
        info.name
        for info in pkgutil.iter_modules(path, prefix=f"{package}.")
        if not info.name.rpartition(".")[2].startswith("_")
    )
    for name in names:
        importlib.import_module(name)
    return names
