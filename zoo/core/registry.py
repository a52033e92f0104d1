"""One registry of model names (timm style): names are the API.

A model is registered with :func:`register_model` next to its class, together with the
datamodule it trains on and that datamodule's defaults. :func:`create` builds a fresh,
validated LightningModule from a name; :func:`create_datamodule` builds the matching data.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from zoo.core.config import validate_kwargs

if TYPE_CHECKING:
    import pytorch_lightning as pl

    from zoo.core.module import ZooModule

__all__ = [
    "ModelSpec",
    "create",
    "create_datamodule",
    "get_datamodule_class",
    "get_spec",
    "list_datamodules",
    "list_models",
    "register_datamodule",
    "register_model",
]

T = TypeVar("T", bound=type)


@dataclass(frozen=True)
class ModelSpec:
    """What a registered name stands for.

    Attributes:
        name: registry name (= recipe config name = checkpoint folder name).
        cls: the LightningModule class.
        defaults: overrides of ``cls.__init__`` defaults that define this name.
        data: registered datamodule name.
        data_defaults: overrides of the datamodule's defaults for this model.
        description: one line for ``list_models`` tables and model cards.
        paper: the result the model reproduces (model cards).
    """

    name: str
    cls: type
    defaults: dict[str, Any] = field(default_factory=dict)
    data: str = ""
    data_defaults: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    paper: str = ""

    def model_config(self, **overrides: Any) -> dict[str, Any]:
        """Full, validated ``__init__`` kwargs of this model (defaults ⊕ overrides)."""
        return validate_kwargs(
            self.cls, {**self.defaults, **overrides}, what=f"model {self.name!r}"
        )

    def data_config(self, **overrides: Any) -> dict[str, Any]:
        """Full, validated datamodule config, including its ``name``."""
        return _data_config({"name": self.data, **self.data_defaults, **overrides})


_MODELS: dict[str, ModelSpec] = {}
_DATAMODULES: dict[str, type] = {}


def _unknown(kind: str, name: str, valid: list[str]) -> ValueError:
    close = difflib.get_close_matches(name, valid, n=3)
    hint = f" Did you mean {close}?" if close else ""
    return ValueError(f"unknown {kind} {name!r}.{hint} Valid {kind}s: {sorted(valid)}")


def register_model(
    name: str,
    *,
    data: str,
    defaults: Mapping[str, Any] | None = None,
    data_defaults: Mapping[str, Any] | None = None,
    description: str = "",
    paper: str = "",
) -> Callable[[T], T]:
    """Class decorator registering ``name``; stack it to register several names per class.

    Example::

        @register_model("gcn_nc", data="sbm", defaults={"conv": "gcn"})
        @register_model("gnn_nc", data="sbm")
        class NodeGNN(ZooModule): ...
    """

    def deco(cls: T) -> T:
        if name in _MODELS and _MODELS[name].cls is not cls:
            raise ValueError(f"model name {name!r} is already registered to {_MODELS[name].cls}")
        _MODELS[name] = ModelSpec(
            name=name,
            cls=cls,
            defaults=dict(defaults or {}),
            data=data,
            data_defaults=dict(data_defaults or {}),
            description=description or (cls.__doc__ or "").strip().splitlines()[0],
            paper=paper,
        )
        return cls

    return deco


def register_datamodule(name: str) -> Callable[[T], T]:
    """Class decorator registering a ``LightningDataModule`` under ``name``."""

    def deco(cls: T) -> T:
        _DATAMODULES[name] = cls
        cls.zoo_name = name
        return cls

    return deco


def list_models(pattern: str | None = None) -> list[str]:
    """Sorted registered model names, optionally filtered by a ``fnmatch`` pattern."""
    import fnmatch

    names = sorted(_MODELS)
    return [n for n in names if pattern is None or fnmatch.fnmatch(n, pattern)]


def list_datamodules() -> list[str]:
    """Sorted registered datamodule names."""
    return sorted(_DATAMODULES)


def get_spec(name: str) -> ModelSpec:
    """The :class:`ModelSpec` of ``name``; unknown names list the valid ones."""
    try:
        return _MODELS[name]
    except KeyError:
        raise _unknown("model", name, list(_MODELS)) from None


def get_datamodule_class(name: str) -> type:
    """The datamodule class registered as ``name``."""
    try:
        return _DATAMODULES[name]
    except KeyError:
        raise _unknown("datamodule", name, list(_DATAMODULES)) from None


def _data_config(cfg: Mapping[str, Any]) -> dict[str, Any]:
    cfg = dict(cfg)
    if "name" not in cfg:
        raise ValueError(f"a data config needs a 'name'; registered: {list_datamodules()}")
    name = cfg.pop("name")
    cls = get_datamodule_class(name)
    return {"name": name, **validate_kwargs(cls, cfg, what=f"datamodule {name!r}")}


def create(name: str, **overrides: Any) -> ZooModule:
    """A fresh (untrained) model registered as ``name``, with validated ``overrides``.

    The returned module knows its registry name (``module.zoo_name``) and the default data
    config it is meant to train on (``module.zoo_data_config``).
    """
    spec = get_spec(name)
    module = spec.cls(**spec.model_config(**overrides))
    module.zoo_name = name
    module.zoo_data_config = spec.data_config()
    return module


def create_datamodule(
    ref: ZooModule | str | Mapping[str, Any], **overrides: Any
) -> pl.LightningDataModule:
    """The datamodule for ``ref`` with validated ``overrides`` (e.g. ``seed=1``).

    ``ref`` is a module from :func:`create`/``zoo.load`` (its training data config), a
    registered model name (its default data), or a data config mapping with a ``name``.
    """
    if isinstance(ref, str):
        base = get_spec(ref).data_config()
    elif isinstance(ref, Mapping):
        base = dict(ref)
    else:
        base = dict(getattr(ref, "zoo_data_config", None) or {})
        if not base:
            raise ValueError("this module carries no data config; build it with zoo.create/load")
    cfg = _data_config({**base, **overrides})
    name = cfg.pop("name")
    return get_datamodule_class(name)(**cfg)
