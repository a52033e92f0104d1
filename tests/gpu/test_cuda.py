"""On a CUDA device: every family trains through the recipe on the GPU, and DDP runs with NCCL.

Skipped without CUDA (``pytest -m gpu`` on a GPU machine: ``benchmarks/gpu_checks.sh``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import zoo
from tests.common import TINY_RUN, run_recipe
from zoo.core.checkpoint import CONFIG_NAME

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]

#: one fast model of each family
FAMILIES = ["gnn_nc", "slater", "deepsets", "rf_attention", "unet_bp"]


@pytest.mark.parametrize("name", FAMILIES)
def test_family_trains_on_cuda_and_exports_cpu_weights(name: str, compose_cfg, tmp_path) -> None:
    from train import train

    out = train(compose_cfg("train", [f"model={name}", *TINY_RUN, "trainer=gpu"], tmp_path))
    assert out["trainer"].strategy.root_device.type == "cuda"
    assert next(out["model"].parameters()).device.type == "cuda"
    datamodule = out["trainer"].datamodule
    assert datamodule.device.type == "cuda"  # the data is generated on the GPU
    loaded = zoo.load(out["export_dir"])
    assert next(loaded.parameters()).device.type == "cpu"
    assert any(k.startswith("test/") for k in out["metrics"])


def test_ddp_with_nccl_exports_one_checkpoint(tmp_path: Path) -> None:
    devices = torch.cuda.device_count()
    res = run_recipe(
        "train.py",
        [
            "model=gnn_nc",
            "model.depth=3",
            "data.n_train=8",
            "data.n_val=2",
            "data.n_test=2",
            *TINY_RUN,
            "trainer=ddp",
            f"trainer.devices={devices}",
            f"hydra.run.dir={tmp_path / 'run'}",
        ],
        tmp_path,
        timeout=600,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    log = res.stdout + res.stderr
    assert "nccl" in log.lower() or f"MEMBER: {devices}/{devices}" in log
    exports = sorted(p.parent for p in tmp_path.rglob(CONFIG_NAME))
    assert exports == [tmp_path / "run" / "checkpoint"]
    assert json.loads((exports[0] / CONFIG_NAME).read_text())["metrics"]
