"""Scale-out: two torchrun nodes on 127.0.0.1, Hydra's submitit launchers (local and a real
SLURM), resuming a requeued job from its own last.ckpt."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import zoo
from tests.common import RECIPES, TINY_RUN, recipe_env, run_recipe
from zoo.core.checkpoint import CONFIG_NAME, WEIGHTS_NAME

# Four training graphs: one global batch of 4 per step, whether one process takes all four or
# two ranks take two each (DDP averages the two ranks' gradients: the same mean loss).
GNN = [
    "model=gnn_nc",
    "model.depth=3",
    "data.n_train=4",
    "data.n_val=2",
    "data.n_test=2",
    "logger=none",
    "callbacks.progress_bar=null",
    "trainer.max_epochs=3",
    "trainer.enable_model_summary=false",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_num_nodes_without_a_launcher_is_refused_before_training(compose_cfg, tmp_path) -> None:
    """Alone, a rank of a two-node run would wait forever for the other node."""
    from train import train

    cfg = compose_cfg("train", [*GNN, "trainer.num_nodes=2"], tmp_path)
    with pytest.raises(ValueError, match="torchrun --nnodes 2"):
        train(cfg)
    assert not any(tmp_path.iterdir())


def test_torchrun_two_nodes_export_one_checkpoint_equal_to_one_process(tmp_path: Path) -> None:
    """Two torchrun agents on 127.0.0.1 act as two nodes of one gloo job (one process each):
    exactly one checkpoint is exported (by global rank 0), and its weights equal those of one
    process training on the same global batch up to float summation order (gloo's all-reduce
    averages two half-batch gradients where one process takes the mean of the full batch).
    Without normalisation layers: BatchNorm normalises by each rank's own batch statistics
    (SyncBatchNorm, which would share them, runs on GPUs only), a real difference of DDP."""
    port, export = _free_port(), tmp_path / "export"
    gnn = [*GNN, "model.norm=none"]
    agents = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "torch.distributed.run",
                "--nnodes=2",
                "--nproc-per-node=1",
                f"--node-rank={rank}",
                "--master-addr=127.0.0.1",
                f"--master-port={port}",
                str(RECIPES / "train.py"),
                *gnn,
                "data.batch_size=2",
                "trainer=ddp_cpu",
                "trainer.devices=1",
                "trainer.num_nodes=2",
                f"hydra.run.dir={tmp_path / f'node{rank}'}",
                f"export_dir={export}",
            ],
            cwd=tmp_path,
            env=recipe_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for rank in (0, 1)
    ]
    logs = []
    for agent in agents:
        out, _ = agent.communicate(timeout=400)
        logs.append(out)
        assert agent.returncode == 0, out[-3000:]
    assert "MEMBER: 1/2" in logs[0] and "MEMBER: 2/2" in logs[1]
    assert sorted(p.parent for p in tmp_path.rglob(CONFIG_NAME)) == [export]

    single = tmp_path / "single"
    res = run_recipe(
        "train.py",
        [*gnn, "data.batch_size=4", f"hydra.run.dir={single}", f"export_dir={single / 'export'}"],
        tmp_path,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    two, one = load_file(export / WEIGHTS_NAME), load_file(single / "export" / WEIGHTS_NAME)
    assert two.keys() == one.keys()
    for k in one:
        torch.testing.assert_close(two[k], one[k], rtol=1e-5, atol=1e-6, msg=k)
    m2 = json.loads((export / CONFIG_NAME).read_text())["metrics"]
    m1 = json.loads((single / "export" / CONFIG_NAME).read_text())["metrics"]
    assert m2["test/acc_n"] == m1["test/acc_n"] == 2
    assert m2["test/loss"] == pytest.approx(m1["test/loss"], rel=1e-4)


def _sweep(tmp_path: Path, launcher: list[str]) -> subprocess.CompletedProcess:
    return run_recipe(
        "train.py",
        [
            "-m",
            *launcher,
            *GNN[:1],
            "model.depth=1,2",
            *GNN[2:-2],
            *TINY_RUN[2:],
            f"hydra.sweep.dir={tmp_path / 'sweep'}",
        ],
        tmp_path,
        timeout=500,
    )


def _exported_depths(tmp_path: Path) -> list[int]:
    exports = sorted((tmp_path / "sweep").rglob(CONFIG_NAME))
    for p in exports:
        zoo.load(p.parent)
    return sorted(json.loads(p.read_text())["model"]["depth"] for p in exports)


def test_local_launcher_sweep_exports_every_job(tmp_path: Path) -> None:
    """``hydra/launcher=local``: submitit's local executor runs the jobs as processes."""
    res = _sweep(tmp_path, ["hydra/launcher=local"])
    assert res.returncode == 0, res.stderr[-3000:]
    assert _exported_depths(tmp_path) == [1, 2]
    assert list((tmp_path / "sweep" / ".submitit").iterdir())  # submitit's own job folders


def _slurm_available() -> bool:
    if shutil.which("sinfo") is None:
        return False
    res = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True)
    return res.returncode == 0 and any(s in res.stdout for s in ("idle", "mix"))


@pytest.mark.skipif(
    not _slurm_available(),
    reason="no SLURM cluster answers here: start one with bash .ci/slurm_localhost.sh (root)",
)
def test_slurm_launcher_sweep_runs_as_slurm_jobs_and_exports_every_job(tmp_path: Path) -> None:
    """``hydra/launcher=slurm`` against a real slurmctld/slurmd: a two-job array completes
    and exports both checkpoints; each job ran inside SLURM (its submitit log names it)."""
    res = _sweep(
        tmp_path,
        ["hydra/launcher=slurm", "hydra.launcher.timeout_min=10", "hydra.launcher.cpus_per_task=1"],
    )
    assert res.returncode == 0, res.stderr[-3000:]
    assert _exported_depths(tmp_path) == [1, 2]
    submitit = tmp_path / "sweep" / ".submitit"
    assert "#SBATCH --requeue" in next(submitit.rglob("*_submission.sh")).read_text()
    logs = list(submitit.rglob("*_log.err"))
    assert len(logs) == 2  # and Lightning found SLURM's variables in each job:
    assert all("SLURM auto-requeueing enabled" in p.read_text() for p in logs)


def test_ckpt_path_last_and_a_requeued_slurm_job_resume_from_the_run_dir(
    compose_cfg, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``ckpt_path=last`` starts fresh when the run dir has no last.ckpt, and resumes from it
    when it has; a requeued SLURM job (``SLURM_RESTART_COUNT`` > 0) does so without asking."""
    from train import train

    base = [*GNN[:5], *TINY_RUN]
    first = train(compose_cfg("train", [*base, "ckpt_path=last"], tmp_path))
    assert first["trainer"].global_step == 2
    again = train(compose_cfg("train", [*base, "ckpt_path=last", "trainer.max_epochs=2"], tmp_path))
    assert (again["trainer"].current_epoch, again["trainer"].global_step) == (2, 4)
    monkeypatch.setenv("SLURM_RESTART_COUNT", "1")
    requeued = train(compose_cfg("train", [*base, "trainer.max_epochs=3"], tmp_path))
    assert (requeued["trainer"].current_epoch, requeued["trainer"].global_step) == (3, 6)


@pytest.mark.skipif(
    not _slurm_available(),
    reason="no SLURM cluster answers here: start one with bash .ci/slurm_localhost.sh (root)",
)
def test_slurm_job_requeued_mid_training_resumes_from_its_last_checkpoint(tmp_path: Path) -> None:
    """A running job is requeued (``scontrol requeue``: what a pre-emption does): SLURM stops
    it with SIGTERM, which saves ``last.ckpt``; the requeued job resumes from it, finishes all
    epochs, and the sweep exports its checkpoint."""
    epochs = 12
    sweep = subprocess.Popen(
        [
            sys.executable,
            str(RECIPES / "train.py"),
            "-m",
            "hydra/launcher=slurm",
            "hydra.launcher.timeout_min=10",
            "hydra.launcher.cpus_per_task=1",
            *GNN[:-2],
            f"trainer.max_epochs={epochs}",
            GNN[-1],
            f"hydra.sweep.dir={tmp_path / 'sweep'}",
        ],
        cwd=tmp_path,
        env=recipe_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    last = tmp_path / "sweep" / "0" / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + 240
    while not last.is_file() and time.monotonic() < deadline and sweep.poll() is None:
        time.sleep(0.5)
    assert last.is_file(), "the job never wrote last.ckpt"
    job = next(p.name for p in (tmp_path / "sweep" / ".submitit").iterdir() if p.is_dir())
    subprocess.run(["scontrol", "requeue", job], check=True, capture_output=True)
    # SLURM holds a requeued job back (BeginTime, about 2 min): once it is pending again, let
    # it start at once.
    for _ in range(120):
        state = subprocess.run(["squeue", "-h", "-j", job, "-o", "%T"], capture_output=True)
        if state.stdout.strip() == b"PENDING":
            subprocess.run(["scontrol", "update", f"JobId={job}", "StartTime=now"], check=True)
            break
        time.sleep(0.5)
    out, _ = sweep.communicate(timeout=400)
    assert sweep.returncode == 0, out[-3000:]
    err = next((tmp_path / "sweep" / ".submitit").rglob("*_log.err")).read_text()
    assert "Restoring states from the checkpoint path at" in err and "last.ckpt" in err
    config = json.loads((tmp_path / "sweep" / "0" / "checkpoint" / CONFIG_NAME).read_text())
    assert config["metrics"]["test/acc_n"] == 2
    assert torch.load(last, weights_only=True)["epoch"] == epochs - 1
