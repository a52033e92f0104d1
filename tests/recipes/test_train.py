"""Real tiny runs of recipes/train.py: every model, W&B offline, resume, DDP, sweeps."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import zoo
from tests.common import REPO_ROOT, TINY_RUN, run_recipe
from zoo.core.card import headline_metrics
from zoo.core.checkpoint import CARD_NAME, CONFIG_NAME, WEIGHTS_NAME

SMALL_GNN = [
    "model=gnn_nc",
    "model.depth=3",
    "data.n_train=4",
    "data.n_val=2",
    "data.n_test=2",
]


@pytest.mark.parametrize("name", zoo.list_models())
def test_fast_dev_run_every_model(name: str, compose_cfg, tmp_path: Path) -> None:
    from train import train

    cfg = compose_cfg(
        "train",
        [
            f"model={name}",
            "logger=none",
            "callbacks.progress_bar=null",
            "+trainer.fast_dev_run=true",
            "trainer.enable_model_summary=false",
            f"export_dir={tmp_path / 'export'}",
        ],
        tmp_path,
    )
    out = train(cfg, command=f"python recipes/train.py model={name}")
    export = out["export_dir"]
    assert sorted(p.name for p in export.iterdir()) == sorted(
        [CONFIG_NAME, WEIGHTS_NAME, CARD_NAME]
    )
    saved = json.loads((export / CONFIG_NAME).read_text())
    assert saved["model"]["name"] == name
    assert saved["metrics"] == pytest.approx(out["metrics"])
    assert any(k.startswith("test/") for k in out["metrics"]), "no test/* metric was logged"
    loaded = zoo.load(export)
    for k, v in out["model"].state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[k], v.cpu(), rtol=0, atol=0)


def test_train_selects_best_weights_and_logs_wandb_offline(compose_cfg, tmp_path: Path) -> None:
    from train import train

    overrides = [*SMALL_GNN, *TINY_RUN, "logger=wandb", "trainer.max_epochs=2"]
    cfg = compose_cfg("train", overrides, tmp_path)
    out = train(cfg)
    run_dir = out["wandb_dir"]
    assert run_dir is not None and run_dir.is_dir() and run_dir.name.startswith("offline-run-")
    assert list(run_dir.glob("run-*.wandb")), "offline run wrote no .wandb log"
    assert out["metrics"]
    head = headline_metrics(out["metrics"])
    assert {"test/overlap", "test/overlap_ci", "test/overlap_n"} <= set(out["wandb_summary"])
    for k, v in out["wandb_summary"].items():  # read back from the run: what we put there
        assert k.removesuffix("_ci").removesuffix("_n") in head
        assert (
            list(v) == pytest.approx(out["metrics"][k])
            if k.endswith("_ci")
            else v == (pytest.approx(out["metrics"][k]))
        )
    ckpt = out["trainer"].checkpoint_callback
    assert Path(ckpt.best_model_path).name.startswith("best")
    assert (tmp_path / "checkpoints" / "last.ckpt").is_file()


def test_interrupted_run_resumes(compose_cfg, tmp_path: Path) -> None:
    """Resumed into a new run dir, the run ends with the weights of an uninterrupted one."""
    from train import train

    first = train(compose_cfg("train", [*SMALL_GNN, *TINY_RUN], tmp_path / "a"))
    steps = first["trainer"].global_step
    assert steps == 2
    last = tmp_path / "a" / "checkpoints" / "last.ckpt"
    before = {p: p.read_bytes() for p in (tmp_path / "a").rglob("*") if p.is_file()}
    two_epochs = [*SMALL_GNN, *TINY_RUN, "trainer.max_epochs=2"]
    resumed = train(compose_cfg("train", [*two_epochs, f"ckpt_path={last}"], tmp_path / "b"))
    assert resumed["trainer"].current_epoch == 2
    assert resumed["trainer"].global_step == 2 * steps
    assert {p: p.read_bytes() for p in (tmp_path / "a").rglob("*") if p.is_file()} == before
    straight = train(compose_cfg("train", two_epochs, tmp_path / "c"))
    for k, v in straight["model"].state_dict().items():
        assert torch.equal(resumed["model"].state_dict()[k], v), k


def test_invalid_hyperparameters_fail_before_training(compose_cfg, tmp_path: Path) -> None:
    from train import train

    cfg = compose_cfg("train", [*SMALL_GNN, *TINY_RUN, "model.depth=-1"], tmp_path)
    with pytest.raises(ValueError, match="depth=-1 is out of range"):
        train(cfg)
    cfg = compose_cfg("train", [*SMALL_GNN, *TINY_RUN, "+model.dept=3"], tmp_path)
    with pytest.raises(ValueError, match=r"unknown hyper-parameter\(s\) \['dept'\]"):
        train(cfg)
    assert not (tmp_path / "checkpoints").exists() and not (tmp_path / "checkpoint").exists()


def test_unknown_model_lists_the_valid_ones(tmp_path: Path) -> None:
    res = run_recipe("train.py", ["model=gnn_cn"], tmp_path, timeout=120)
    assert res.returncode != 0
    assert "gnn_nc" in res.stderr and "Available options" in res.stderr


@pytest.mark.parametrize("strategy", ["ddp_spawn", "ddp_fork", "ddp_notebook"])
def test_multiprocessing_ddp_is_refused_before_training(
    strategy: str, compose_cfg, tmp_path: Path
) -> None:
    """Lightning's spawn/fork launcher joins before reading the workers' results: with the
    hundreds of metrics gnn_nc logs it hangs after testing. Refused, pointing to ddp."""
    from train import train

    overrides = [*SMALL_GNN, *TINY_RUN, f"trainer.strategy={strategy}", "trainer.devices=2"]
    with pytest.raises(ValueError, match="trainer=ddp_cpu"):
        train(compose_cfg("train", overrides, tmp_path))
    assert not any(tmp_path.iterdir())


def test_ddp_subprocess_relaunch_exports_one_checkpoint(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    res = run_recipe(
        "train.py",
        [*SMALL_GNN, *TINY_RUN, "trainer=ddp_cpu", "trainer.devices=2", f"hydra.run.dir={run_dir}"],
        tmp_path,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    assert "world_size=2" in res.stdout + res.stderr or "MEMBER: 2/2" in res.stdout + res.stderr
    exports = sorted(p.parent for p in tmp_path.rglob(CONFIG_NAME))
    assert exports == [run_dir / "checkpoint"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # no stray Hydra dirs
    zoo.load(run_dir / "checkpoint")


def test_multirun_sweep(tmp_path: Path) -> None:
    res = run_recipe(
        "train.py",
        [
            "-m",
            *SMALL_GNN[:1],
            "model.depth=1,2",
            *SMALL_GNN[2:],
            *TINY_RUN,
            f"hydra.sweep.dir={tmp_path / 'sweep'}",
        ],
        tmp_path,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    depths = sorted(
        json.loads(p.read_text())["model"]["depth"] for p in (tmp_path / "sweep").rglob(CONFIG_NAME)
    )
    assert depths == [1, 2]


def test_quickstart_command_prints_checkpoint_and_wandb_run(tmp_path: Path) -> None:
    """README command 1, shrunk: the real CLI, W&B offline by default."""
    res = run_recipe(
        "train.py",
        [*SMALL_GNN, "trainer.max_epochs=1", f"hydra.run.dir={tmp_path / 'run'}"],
        tmp_path,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    assert f"checkpoint: {tmp_path / 'run' / 'checkpoint'}" in res.stdout
    assert "W&B offline run:" in res.stdout and "wandb sync" in res.stdout
    zoo.load(tmp_path / "run" / "checkpoint")


def test_eval_prints_metrics_json_with_export_keys(tmp_path: Path, compose_cfg) -> None:
    from train import train

    out = train(compose_cfg("train", [*SMALL_GNN, *TINY_RUN], tmp_path))
    res = run_recipe("eval.py", [f"checkpoint={out['export_dir']}", "data.seed=1"], tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    metrics = json.loads(res.stdout.strip().splitlines()[-1])
    saved = json.loads((out["export_dir"] / CONFIG_NAME).read_text())["metrics"]
    assert set(metrics) == set(saved)
    assert REPO_ROOT.exists()


@pytest.mark.slow
def test_compile_trains_through_torch_compile_and_exports_plain_weights(
    compose_cfg, tmp_path: Path
) -> None:
    """``compile=true`` (20 s to 1.5 min of compilation on the CPU): the model's calls go
    through torch.compile, and the export is the same flat state dict as without it."""
    from train import train

    out = train(compose_cfg("train", [*SMALL_GNN, *TINY_RUN, "compile=true"], tmp_path))
    assert out["model"]._compiled_call_impl is not None
    plain = zoo.create("gnn_nc", depth=3).state_dict()
    assert sorted(zoo.load(out["export_dir"]).state_dict()) == sorted(plain)
