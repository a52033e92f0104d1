"""Paths and overrides shared by the tests (importable as ``tests.common``)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
RECIPES = REPO_ROOT / "recipes"

# Overrides that make any registered model train for a couple of steps.
TINY_RUN = [
    "logger=none",
    "callbacks.progress_bar=null",
    "trainer.max_epochs=1",
    "+trainer.limit_train_batches=2",
    "+trainer.limit_val_batches=1",
    "+trainer.limit_test_batches=1",
    "trainer.enable_model_summary=false",
]


def quiet_trainer(**kw: Any) -> Any:
    """A CPU ``pl.Trainer`` without logger, checkpoints, progress bar or summary (``**kw``
    adds to or overrides those)."""
    import pytorch_lightning as pl

    opts: dict[str, Any] = {
        "accelerator": "cpu",
        "logger": False,
        "enable_checkpointing": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
    }
    return pl.Trainer(**{**opts, **kw})


def recipe_env() -> dict[str, str]:
    """The environment of a recipe run as a subprocess: unbuffered output, one thread."""
    return {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}


def run_recipe(
    script: str, args: list[str], cwd: Path, timeout: int = 300
) -> subprocess.CompletedProcess:
    """``python recipes/<script> <args>`` in ``cwd``, its output captured as text."""
    return subprocess.run(
        [sys.executable, str(RECIPES / script), *args],
        cwd=cwd,
        env=recipe_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
