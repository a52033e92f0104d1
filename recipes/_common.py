"""Helpers shared by the recipes (not part of the installed package).

Importing this module feeds Hydra's ``model`` and ``data`` config groups from the zoo's
registry (Hydra's ``ConfigStore``): ``model=<name>`` is the registered model's full
hyper-parameters and ``data=<name>`` its data config, in which every key the model shares with
its data is the interpolation ``${model.<key>}``. No YAML mirrors the registry.
"""

from __future__ import annotations

import logging
import netrc
import os
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

import zoo
from zoo.core.registry import ModelSpec, get_spec

log = logging.getLogger("zoo.recipes")

REPO_ROOT = Path(__file__).resolve().parents[1]
CONFIG_DIR = REPO_ROOT / "recipes" / "configs"


def plain(cfg: DictConfig | None) -> dict[str, Any]:
    """A resolved plain dict of ``cfg`` (``{}`` for ``None``)."""
    return {} if cfg is None else OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]


def wandb_has_credentials() -> bool:
    """Whether W&B could log online: an API key in the environment or in ``~/.netrc``."""
    if os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_IDENTITY_TOKEN_FILE"):
        return True
    host = os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai").split("://")[-1]
    try:
        auth = netrc.netrc(os.environ.get("NETRC") or None).authenticators(host.rstrip("/"))
    except (FileNotFoundError, netrc.NetrcParseError):
        return False
    return bool(auth and auth[2])


def registry_nodes(spec: ModelSpec) -> tuple[dict[str, Any], dict[str, Any]]:
    """The Hydra ``model`` and ``data`` nodes of a registered model (defaults from the registry;
    shared data keys interpolate the model's)."""
    model, data = spec.configs()
    data.update({dk: f"${{model.{mk}}}" for mk, dk in spec.shared.items()})
    return {"name": spec.name, **model}, data


def register_configs() -> None:
    """Store every registered model's ``model`` and ``data`` nodes in Hydra's ConfigStore."""
    cs = ConfigStore.instance()
    for name in zoo.list_models():
        model, data = registry_nodes(get_spec(name))
        cs.store(group="model", name=name, node=model)
        cs.store(group="data", name=name, node=data)


def _task_overrides() -> list[str]:
    try:
        return list(HydraConfig.get().overrides.task)
    except ValueError:  # not inside a Hydra job
        return []


def model_and_data(cfg: DictConfig) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """``(name, model kwargs, data config)`` of a composed train config, reconciled by the
    registry (:meth:`zoo.core.registry.ModelSpec.configs`).

    A shared data key that still holds its ``${model.<key>}`` interpolation follows the model;
    one set explicitly (``data.depth=3``) takes the model along unless the model key was set
    too (on the command line or to a non-default value), in which case they must agree.
    """
    model = plain(cfg.model)
    spec = get_spec(model.pop("name"))
    raw: dict[str, Any] = OmegaConf.to_container(cfg.data, resolve=False)  # type: ignore[assignment]
    data = plain(cfg.data)
    data_set = {dk for dk in spec.shared.values() if not _is_interpolation(raw.get(dk))}
    on_cli = {o.split("=", 1)[0].lstrip("+~") for o in _task_overrides()}
    defaults = spec.model_config()
    for mk, dk in spec.shared.items():
        if dk in data_set and model.get(mk) == defaults.get(mk) and f"model.{mk}" not in on_cli:
            model.pop(mk, None)  # the model follows the data
    for dk in set(spec.shared.values()) - data_set:
        data.pop(dk, None)  # the data follows the model
    model_cfg, data_cfg = spec.configs(model, data)
    return spec.name, model_cfg, data_cfg


def _is_interpolation(value: Any) -> bool:
    return isinstance(value, str) and value.startswith("${") and value.endswith("}")


register_configs()
