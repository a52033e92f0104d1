"""Paths and overrides shared by the tests (importable as ``tests.common``)."""

from __future__ import annotations

from pathlib import Path

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
