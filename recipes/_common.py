"""Helpers shared by the recipes (not part of the installed package)."""

from __future__ import annotations

import logging
import netrc
import os
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

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
