"""Shared fixtures: isolated W&B/HF environments and Hydra composition of the real recipes."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.common import RECIPES

sys.path.insert(0, str(RECIPES))  # the recipes are scripts: `from train import train`

# Never reach wandb.ai from tests, and keep its console quiet.
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.pop("WANDB_API_KEY", None)
os.environ.pop("WANDB_MODE", None)


@pytest.fixture(autouse=True)
def _isolated_home(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No user netrc/W&B settings/HF token leak into a test."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("NETRC", str(home / ".netrc"))
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(home / ".config" / "wandb"))
    monkeypatch.setenv("WANDB_CACHE_DIR", str(home / ".cache" / "wandb"))
    monkeypatch.setenv("WANDB_DATA_DIR", str(home / ".local" / "wandb"))
    monkeypatch.delenv("HF_TOKEN", raising=False)


@pytest.fixture
def compose_cfg() -> Iterator[Callable[..., object]]:
    """``compose_cfg(config_name, overrides, output_dir)`` → a resolved-ready DictConfig.

    Composes the real ``recipes/configs`` with Hydra and registers the HydraConfig so
    ``${hydra:runtime.output_dir}`` resolves to ``output_dir``.
    """
    import _common  # noqa: F401  (stores the registry's model/data configs in Hydra)
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    def _compose(config_name: str, overrides: list[str], output_dir: Path):
        GlobalHydra.instance().clear()
        with initialize_config_dir(str(RECIPES / "configs"), version_base="1.3"):
            cfg = compose(config_name, overrides=overrides, return_hydra_config=True)
        with open_dict(cfg):
            cfg.hydra.runtime.output_dir = str(output_dir)
            cfg.hydra.job.num = 0
        HydraConfig().set_config(cfg)
        with open_dict(cfg):
            del cfg.hydra
        return cfg

    yield _compose
    GlobalHydra.instance().clear()
