"""Reproduce a paper figure: ``python recipes/reproduce.py fig=<name> [fig.<param>=...]``.

Figures are registered by the families (``zoo.core.figures.register_figure``); their
parameters are the keys of ``recipes/configs/fig/<name>.yaml``. Each figure is written as
``<name>.png`` and ``<name>.pdf`` to ``docs/figures/`` unless ``out_dir=...`` is given.
"""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import CONFIG_DIR, REPO_ROOT, plain

import zoo  # noqa: F401  (registers the families' figures)
from zoo.core.figures import run_figure


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="reproduce")
def main(cfg: DictConfig) -> None:
    params = plain(cfg.fig)
    name = params.pop("name")
    out_dir = Path(cfg.out_dir) if cfg.get("out_dir") else REPO_ROOT / "docs" / "figures"
    for path in run_figure(name, out_dir, **params):
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
