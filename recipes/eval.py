"""Evaluate any checkpoint on freshly generated data; print its metrics as JSON.

    python recipes/eval.py checkpoint=gnn_nc data.seed=1
    python recipes/eval.py checkpoint=path/to/dir data.seed=2 data.n_test=200
    python recipes/eval.py checkpoint=hf-hub:org/gnn_nc

The last line of output is one JSON object with the same keys as the ``metrics`` object
that export writes into the checkpoint's ``config.json``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import hydra
import pytorch_lightning as pl
from hydra.utils import instantiate
from omegaconf import DictConfig

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import CONFIG_DIR, plain

import zoo


def evaluate(cfg: DictConfig, model: zoo.core.ZooModule) -> dict[str, float]:
    """Test ``model`` (loaded from ``cfg.checkpoint``) on its data regenerated with the
    ``cfg.data`` overrides."""
    overrides = {k: v for k, v in plain(cfg.get("data")).items() if v is not None}
    datamodule = zoo.create_datamodule(model, **overrides)
    pl.seed_everything(overrides.get("seed", 0), workers=True, verbose=False)
    trainer: pl.Trainer = instantiate(cfg.trainer)
    results: list[dict[str, Any]] = trainer.test(model, datamodule=datamodule, verbose=False)
    return {k: float(v) for k, v in (results[0] if results else {}).items()}


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="eval")
def main(cfg: DictConfig) -> None:
    """Load ``cfg.checkpoint`` (a bad reference exits 1 with one ``error:`` line), test it."""
    try:
        model = zoo.load(str(cfg.checkpoint))
    except (OSError, ValueError) as e:  # no such directory/name, bad checkpoint, Hub unreachable
        raise SystemExit(f"error: {e}") from None
    metrics = evaluate(cfg, model)
    print(json.dumps(metrics, sort_keys=True))


if __name__ == "__main__":
    main()
