"""Reproduce a paper figure: ``python recipes/reproduce.py fig=<name> [fig.<param>=...]``.

Figures are registered by the families (``zoo.core.figures.register_figure``); their
parameters are the keys of ``recipes/configs/fig/<name>.yaml``. Each figure is written as
``<name>.png`` and ``<name>.pdf`` to ``docs/figures/`` unless ``out_dir=...`` is given; with
``logger=wandb`` the PNGs are also logged as W&B images (offline unless an API key is set).
``trainer=gpu`` trains a figure's models on a GPU, for figures that take an ``accelerator``.
"""

from __future__ import annotations

import inspect
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import CONFIG_DIR, REPO_ROOT, build_logger, finish_wandb, plain

import zoo  # noqa: F401  (registers the families' figures)
from zoo.core.figures import get_figure, run_figure


def reproduce(cfg: DictConfig) -> list[Path]:
    """Build and save the figure ``cfg.fig``; log its PNGs to W&B when ``cfg.logger`` says so."""
    params = plain(cfg.fig)
    name = params.pop("name")
    accelerator = (cfg.get("trainer") or {}).get("accelerator", "cpu")
    if "accelerator" in inspect.signature(get_figure(name)).parameters:
        params.setdefault("accelerator", accelerator)
    elif accelerator != "cpu":
        raise ValueError(f"figure {name!r} trains on the CPU only: drop trainer={accelerator}")
    out_dir = Path(cfg.out_dir) if cfg.get("out_dir") else REPO_ROOT / "docs" / "figures"
    logger = build_logger(cfg)  # before the (long) figure: a bad logger config fails first
    paths = run_figure(name, out_dir, **params)
    if logger is not None and hasattr(logger, "log_image"):
        pngs = [p for p in paths if p.suffix == ".png"]
        logger.log_image(key=f"figures/{name}", images=[str(p) for p in pngs])
    finish_wandb(logger, {f"fig/{k}": v for k, v in params.items() if isinstance(v, (int, float))})
    return paths


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="reproduce")
def main(cfg: DictConfig) -> None:
    for path in reproduce(cfg):
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
