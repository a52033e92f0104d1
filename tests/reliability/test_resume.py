"""Exact resume: interrupted (SIGTERM, SIGINT, SIGKILL) + resumed == uninterrupted, bitwise.

Also: signals save ``last.ckpt`` and print the resume command, ``ckpt_path`` takes trusted local
files only, ``last.ckpt`` is rewritten every epoch, best-model tracking survives a resume into a
new run dir, random states are restored, run dirs never collide, and the training loaders serve
epoch ``e`` the same whatever came before (also from the middle of an epoch).

The end-to-end cases run ``recipes/train.py`` as real subprocesses (about 5 s of imports each),
the uninterrupted run of a family beside the interrupted one; two families run in CI, the
others are marked slow.
"""

from __future__ import annotations

import hashlib
import os
import random
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from safetensors.torch import load_file

import zoo
from tests.common import RECIPES, TINY_RUN
from zoo.core.callbacks import RandomState, ResumableModelCheckpoint
from zoo.core.checkpoint import WEIGHTS_NAME
from zoo.core.data import TensorBatches

QUIET = ["logger=none", "callbacks.progress_bar=null", "trainer.enable_model_summary=false"]
EPOCHS = 3  # the interrupted run is stopped in epoch 2, after last.ckpt of epoch 1 exists
# One fast config per family, each epoch long enough (~1 s) to be interrupted in its middle.
FAMILIES = {
    "gnn_nc": [
        "model=gnn_nc",
        "model.depth=2",
        "data.n_nodes=100",
        "data.n_train=200",
        "data.n_val=2",
        "data.n_test=2",
    ],
    "unet_bp": [  # denoising with fresh noise every epoch
        "model=unet_bp",
        "model.width=16",
        "model.diffusion_samples=8",
        "model.diffusion_steps=4",
        "data.fresh_noise=true",
        "data.n_train=2048",
        "data.n_val=64",
        "data.n_test=64",
        "data.batch_size=16",
    ],
    "deepsets": [
        "model=deepsets",
        "data.n_train=4096",
        "data.n_val=64",
        "data.n_test=64",
        "data.batch_size=16",
    ],
    "lowrank_attention": [  # a fresh training set every epoch, per-step cosine schedule
        "model=lowrank_attention",
        "model.dim=8",
        "data.n_set=5",
        "data.resample=true",
        "data.n_train=4096",
        "data.n_val=64",
        "data.n_test=64",
        "data.batch_size=16",
    ],
}
CI_CASES = [("lowrank_attention", "SIGTERM"), ("gnn_nc", "SIGKILL")]
SLOW_CASES = [
    (family, sig)
    for family in FAMILIES
    for sig in ("SIGTERM", "SIGKILL")
    if (family, sig) not in CI_CASES
] + [("gnn_nc", "SIGINT")]
SMALL_GNN = ["model=gnn_nc", "model.depth=2", "data.n_nodes=50", "data.n_train=4"]
SMALL_GNN += ["data.n_val=2", "data.n_test=2"]


# -- helpers ---------------------------------------------------------------------------------
def train_cmd(args: list[str], run_dir: Path) -> list[str]:
    return [sys.executable, str(RECIPES / "train.py"), *args, f"hydra.run.dir={run_dir}"]


def popen(cmd: list[str], log: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    with log.open("w") as out:  # a file, not a pipe: the child never blocks on a full pipe
        return subprocess.Popen(cmd, cwd=log.parent, env=env, stdout=out, stderr=subprocess.STDOUT)


def finish(proc: subprocess.Popen, log: Path, timeout: float = 300) -> tuple[int, str]:
    rc = proc.wait(timeout=timeout)
    return rc, log.read_text()


def ckpt_epoch(path: Path) -> int:
    """The ``epoch`` field of a Lightning checkpoint (-1 while it does not exist yet)."""
    if not path.is_file():
        return -1
    return int(torch.load(path, map_location="cpu", weights_only=True)["epoch"])


def wait_for_epoch(proc: subprocess.Popen, last: Path, epoch: int, log: Path) -> None:
    """Poll until ``last`` holds an epoch >= ``epoch`` (Lightning writes it atomically)."""
    deadline = time.monotonic() + 240
    while ckpt_epoch(last) < epoch:
        if proc.poll() is not None:
            pytest.fail(
                f"the run ended before {last} held epoch {epoch}:\n{log.read_text()[-3000:]}"
            )
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"no {last} of epoch {epoch} within 240 s")
        time.sleep(0.02)


def digest(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root``."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def max_abs_diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max(
        (float((a[k].double() - b[k].double()).abs().max()) for k in a if a[k].numel()),
        default=0.0,
    )


def resume_line(output: str) -> str:
    """The resume command the interrupted run printed."""
    lines = output.splitlines()
    i = next(i for i, line in enumerate(lines) if line.endswith("Resume it with:"))
    return lines[i + 1].strip()


def run_resumed(command: str, run_dir: Path, log: Path) -> tuple[int, str]:
    """Run a printed ``python recipes/train.py ...`` command (into ``run_dir``)."""
    argv = shlex.split(command)
    assert argv[:2] == ["python", "recipes/train.py"], command
    return finish(popen(train_cmd(argv[2:], run_dir), log), log)


# -- end to end: interrupted + resumed == uninterrupted --------------------------------------
_uninterrupted: dict[str, tuple[subprocess.Popen, Path, Path]] = {}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    yield tmp_path_factory.mktemp("resume_runs")
    for proc, _, _ in _uninterrupted.values():  # none outlives the module
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def uninterrupted_weights(family: str) -> dict[str, torch.Tensor]:
    proc, log, run = _uninterrupted[family]
    rc, out = finish(proc, log)
    assert rc == 0, out[-3000:]
    return load_file(run / "checkpoint" / WEIGHTS_NAME)


def interrupt(family: str, sig: str, runs: Path, compare: bool = True) -> dict[str, Any]:
    """An identical run stopped by ``sig`` once ``last.ckpt`` of epoch 1 exists, beside the
    family's uninterrupted run (started once, when ``compare``); returns the stopped run's exit
    code, output and paths."""
    args = [*QUIET, *FAMILIES[family], f"trainer.max_epochs={EPOCHS}"]
    if compare and family not in _uninterrupted:
        run = runs / family / "uninterrupted"
        run.mkdir(parents=True)
        _uninterrupted[family] = (
            popen(train_cmd(args, run), run.parent / "a.log"),
            run.parent / "a.log",
            run,
        )
    stopped = runs / family / f"stopped_{sig}{'' if compare else '_only'}"
    stopped.mkdir(parents=True)
    log = stopped.parent / f"{stopped.name}.log"
    proc = popen(train_cmd(args, stopped), log)
    last = stopped / "checkpoints" / "last.ckpt"
    wait_for_epoch(proc, last, 1, log)
    before = last.stat().st_mtime_ns
    proc.send_signal(getattr(signal, sig))
    rc, out = finish(proc, log)
    return {"args": args, "rc": rc, "output": out, "run": stopped, "last": last, "before": before}


def check_stop_report(stopped: dict[str, Any], sig: str) -> str:
    """A SIGTERM/SIGINT stop: exit 128 + signal, ``last.ckpt`` saved on the signal (loadable
    with ``weights_only=True``), no export, and the exact resume command printed (returned)."""
    rc, out, last = stopped["rc"], stopped["output"], stopped["last"]
    assert rc == 128 + getattr(signal, sig), out[-3000:]
    assert f"Stopped by {sig}" in out
    state = torch.load(last, map_location="cpu", weights_only=True)
    assert last.stat().st_mtime_ns > stopped["before"] and state["global_step"] > 0
    assert {"state_dict", "optimizer_states", "loops", "zoo_random_state"} <= state.keys()
    assert not (stopped["run"] / "checkpoint").exists(), "an interrupted run must not export"
    command = resume_line(out)
    expected = ["python", "recipes/train.py", *stopped["args"], f"ckpt_path={last}"]
    assert command == shlex.join(expected)
    return command


def check_resume_is_exact(family: str, sig: str, runs: Path) -> None:
    stopped = interrupt(family, sig, runs)
    last = stopped["last"]
    if sig == "SIGKILL":
        assert stopped["rc"] == -signal.SIGKILL
        command = shlex.join(["python", "recipes/train.py", *stopped["args"], f"ckpt_path={last}"])
    else:
        command = check_stop_report(stopped, sig)  # resume with the very command printed
    saved = digest(stopped["run"] / "checkpoints")
    state = torch.load(last, map_location="cpu", weights_only=True)
    where = f"epoch {state['epoch']}, step {state['global_step']}"

    resumed = stopped["run"].parent / f"resumed_{sig}"  # a NEW run dir
    rc, out = run_resumed(command, resumed, stopped["run"].parent / f"c_{sig}.log")
    assert rc == 0, out[-3000:]
    assert "dirpath has changed" not in out
    assert digest(stopped["run"] / "checkpoints") == saved, "the resumed run changed the old one"

    a = uninterrupted_weights(family)
    c = load_file(resumed / "checkpoint" / WEIGHTS_NAME)
    delta = max_abs_diff(a, c)
    print(f"{family} {sig} (stopped at {where}): max|Δ| = {delta:.3g}")
    assert all(torch.equal(a[k], c[k]) for k in a), (
        f"{family}: resumed after {sig} at {where} differs from the uninterrupted run, "
        f"max|Δ| = {delta:.3g}"
    )


@pytest.mark.parametrize(("family", "sig"), CI_CASES)
def test_resume_after_interruption_is_bitwise_exact(family: str, sig: str, runs: Path) -> None:
    check_resume_is_exact(family, sig, runs)


@pytest.mark.slow
@pytest.mark.parametrize(("family", "sig"), SLOW_CASES)
def test_resume_after_interruption_is_bitwise_exact_slow(family: str, sig: str, runs: Path) -> None:
    check_resume_is_exact(family, sig, runs)


@pytest.mark.parametrize(
    "sig", [pytest.param("SIGTERM", marks=pytest.mark.slow), "SIGINT"]
)  # SIGTERM in CI: test_resume_after_interruption_is_bitwise_exact[lowrank_attention-SIGTERM]
def test_signal_saves_last_exits_nonzero_and_prints_resume_command(sig: str, runs: Path) -> None:
    check_stop_report(interrupt("gnn_nc", sig, runs, compare=False), sig)


# -- ckpt_path: trusted local files only -----------------------------------------------------
def test_url_ckpt_path_is_refused_before_training_without_a_request(
    compose_cfg, tmp_path: Path
) -> None:
    from train import train

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.setblocking(False)
    url = f"http://127.0.0.1:{server.getsockname()[1]}/x.ckpt"
    try:
        cfg = compose_cfg("train", [*SMALL_GNN, *TINY_RUN, f"ckpt_path={url}"], tmp_path)
        with pytest.raises(ValueError, match=r"is a URL: resume only from a local \.ckpt file you"):
            train(cfg)
        with pytest.raises(BlockingIOError):  # nobody connected
            server.accept()
    finally:
        server.close()
    assert not (tmp_path / "checkpoints").exists() and not (tmp_path / "checkpoint").exists()


def test_missing_ckpt_path_is_refused_with_the_path(compose_cfg, tmp_path: Path) -> None:
    from train import train

    cfg = compose_cfg("train", [*SMALL_GNN, *TINY_RUN, "ckpt_path=does/not/exist.ckpt"], tmp_path)
    with pytest.raises(FileNotFoundError, match=r"ckpt_path='does/not/exist.ckpt' does not exist"):
        train(cfg)
    (tmp_path / "adir").mkdir()
    cfg = compose_cfg("train", [*SMALL_GNN, *TINY_RUN, f"ckpt_path={tmp_path / 'adir'}"], tmp_path)
    with pytest.raises(FileNotFoundError, match=r"is a directory, not a \.ckpt file"):
        train(cfg)
    assert not (tmp_path / "checkpoints").exists()


def test_a_file_that_is_not_a_checkpoint_is_refused_and_left_alone(
    compose_cfg, tmp_path: Path
) -> None:
    from train import train

    user_file = tmp_path / "notes.ckpt"
    user_file.write_bytes(b"my notes, not a checkpoint\n")
    cfg = compose_cfg("train", [*SMALL_GNN, *TINY_RUN, f"ckpt_path={user_file}"], tmp_path / "run")
    with pytest.raises(ValueError, match="is not a Lightning checkpoint"):
        train(cfg)
    assert user_file.read_bytes() == b"my notes, not a checkpoint\n"
    assert not (tmp_path / "run").exists()


def test_train_docstring_says_ckpt_files_are_trusted_only() -> None:
    import train

    doc = " ".join((train.__doc__ or "").split())
    assert "only ones you trust" in doc and "zoo.load never unpickles" in doc.replace("``", "")


# -- checkpoints: last every epoch, best tracking across run dirs, random states -------------
class _Probe(pl.Callback):
    """Records, at the start of each epoch, the epoch stored in last.ckpt and fresh draws of
    the global random generators."""

    def __init__(self, last: Path) -> None:
        self.last, self.last_epochs, self.draws = last, {}, {}

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        e = trainer.current_epoch
        self.last_epochs[e] = ckpt_epoch(self.last)
        self.draws[e] = (torch.rand(3).tolist(), np.random.rand(3).tolist(), random.random())


def fit(root: Path, max_epochs: int, ckpt_path: Path | None = None, monitor: str = "epoch") -> Any:
    """A tiny gnn_nc fit with the recipe's checkpoint callbacks; returns (trainer, probe)."""
    pl.seed_everything(0)
    model = zoo.create("gnn_nc", depth=2)
    dm = zoo.create_datamodule(model, n_nodes=50, n_train=4, n_val=2, n_test=2)
    ckpt = ResumableModelCheckpoint(
        dirpath=root / "checkpoints", filename="best", monitor=monitor, mode="min"
    )
    probe = _Probe(root / "checkpoints" / "last.ckpt")
    trainer = pl.Trainer(
        max_epochs=max_epochs,
        accelerator="cpu",
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=root,
        callbacks=[ckpt, RandomState(), probe],
    )
    trainer.fit(model, datamodule=dm, ckpt_path=ckpt_path, weights_only=True)
    return trainer, probe


def test_last_ckpt_is_rewritten_every_epoch_without_improvement(tmp_path: Path) -> None:
    # monitor "epoch" in mode "min": epoch 0 stays the best, the monitor never improves
    trainer, probe = fit(tmp_path, max_epochs=4)
    assert probe.last_epochs == {0: -1, 1: 0, 2: 1, 3: 2}
    assert ckpt_epoch(tmp_path / "checkpoints" / "last.ckpt") == 3
    assert ckpt_epoch(tmp_path / "checkpoints" / "best.ckpt") == 0
    assert float(trainer.checkpoint_callback.best_model_score) == 0


def test_random_states_are_restored_on_resume(tmp_path: Path) -> None:
    _, straight = fit(tmp_path / "a", max_epochs=3)
    fit(tmp_path / "b", max_epochs=2)
    torch.manual_seed(123), np.random.seed(123), random.seed(123)  # a new process
    _, resumed = fit(tmp_path / "c", max_epochs=3, ckpt_path=tmp_path / "b/checkpoints/last.ckpt")
    assert list(resumed.draws) == [2]
    assert resumed.draws[2] == straight.draws[2]


def test_best_model_tracking_survives_a_resume_into_a_new_run_dir(
    compose_cfg, tmp_path: Path
) -> None:
    from train import train

    never_improves = [
        "callbacks.model_checkpoint.monitor=epoch",
        "callbacks.model_checkpoint.mode=min",
    ]
    args = [*SMALL_GNN, *TINY_RUN, *never_improves]
    first = train(compose_cfg("train", [*args, "trainer.max_epochs=2"], tmp_path / "a"))
    old = digest(tmp_path / "a")
    last = tmp_path / "a" / "checkpoints" / "last.ckpt"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        resumed = train(
            compose_cfg(
                "train", [*args, "trainer.max_epochs=3", f"ckpt_path={last}"], tmp_path / "b"
            )
        )
    assert not [w for w in caught if "dirpath has changed" in str(w.message)]
    ckpt = resumed["trainer"].checkpoint_callback
    assert resumed["trainer"].current_epoch == 3
    assert float(ckpt.best_model_score) == 0.0  # epoch 0, from the first run
    assert Path(ckpt.best_model_path) == tmp_path / "a" / "checkpoints" / "best.ckpt"
    assert ckpt_epoch(tmp_path / "b" / "checkpoints" / "last.ckpt") == 2
    assert digest(tmp_path / "a") == old  # the first run's files are untouched
    a = load_file(first["export_dir"] / WEIGHTS_NAME)
    b = load_file(resumed["export_dir"] / WEIGHTS_NAME)
    assert all(torch.equal(a[k], b[k]) for k in a), "the resumed run tested other weights"


# -- run dirs --------------------------------------------------------------------------------
def test_runs_started_in_the_same_second_get_different_dirs() -> None:
    import train  # noqa: F401  (registers the zoo.run_id resolver)
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import OmegaConf

    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(str(RECIPES / "configs"), version_base="1.3"):
            cfgs = [compose("train", return_hydra_config=True) for _ in range(2)]
    finally:
        GlobalHydra.instance().clear()
    runs = [OmegaConf.select(c, "hydra.run.dir") for c in cfgs]
    sweeps = [OmegaConf.select(c, "hydra.sweep.dir") for c in cfgs]
    assert runs[0] != runs[1] and sweeps[0] != sweeps[1]
    stamp = r"\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d"
    for run in runs:
        assert re.fullmatch(rf"outputs/gnn_nc/{stamp}_{os.getpid()}-[0-9a-f]{{6}}", run), run
    for sweep in sweeps:
        assert re.fullmatch(rf"multirun/gnn_nc/{stamp}_{os.getpid()}-[0-9a-f]{{6}}", sweep), sweep
    assert OmegaConf.select(cfgs[0], "hydra.run.dir") == runs[0]  # one value per run


# -- loaders: epoch e is the same whatever came before ---------------------------------------
def test_tensor_batches_permutation_of_an_epoch_is_independent_of_history() -> None:
    x = torch.arange(40)
    epoch = {"now": 0}
    fresh = TensorBatches([x], batch_size=8, shuffle=True, seed=3, epoch=lambda: epoch["now"])
    used = TensorBatches([x], batch_size=8, shuffle=True, seed=3, epoch=lambda: epoch["now"])
    for _ in range(5):
        list(used)  # five passes of epoch 0
    epoch["now"] = 3
    a, b = torch.cat([t for (t,) in fresh]), torch.cat([t for (t,) in used])
    assert torch.equal(a, b)
    epoch["now"] = 4
    assert not torch.equal(torch.cat([t for (t,) in used]), a)


def test_tensor_batches_resume_mid_epoch_with_the_next_batch() -> None:
    x = torch.arange(40)
    loader = TensorBatches([x], batch_size=8, shuffle=True, seed=1)
    list(loader)  # epoch 0
    it = iter(loader)  # epoch 1
    done = [next(it)[0] for _ in range(2)]
    state = loader.state_dict()
    assert state == {"epoch": 1, "batches": 2}
    again = TensorBatches([x], batch_size=8, shuffle=True, seed=1)
    again.load_state_dict(state)
    rest = [b for (b,) in again]
    full = [b for (b,) in TensorBatches([x], 8, shuffle=True, seed=1).epoch_batches(1)]
    assert [t.tolist() for t in done + rest] == [t.tolist() for t in full]
    epoch2 = TensorBatches([x], 8, shuffle=True, seed=1).epoch_batches(2)
    assert [b.tolist() for (b,) in again] == [b.tolist() for (b,) in epoch2]  # then epoch 2


@pytest.mark.parametrize(
    ("model", "data"),
    [
        ("unet_bp", {"fresh_noise": True, "n_train": 64, "batch_size": 16}),
        ("lowrank_attention", {"resample": True, "n_train": 64, "batch_size": 16}),
        ("deepsets", {"n_train": 64, "batch_size": 16}),
        ("gnn_nc", {"n_nodes": 30, "n_train": 6, "batch_size": 2}),
    ],
)
def test_training_loader_resumes_an_epoch_from_the_checkpointed_state(
    model: str, data: dict[str, Any]
) -> None:
    """The datamodule's state (what Lightning checkpoints) taken after one batch of epoch 2
    makes a fresh datamodule serve exactly the remaining batches: same order, noise, samples.
    Tensor data: epoch 2 is the same whatever came before; graphs shuffle with the global
    torch generator, as PyG's DataLoader (RandomState restores it)."""

    def datamodule() -> Any:
        dm = zoo.create_datamodule(zoo.create(model), n_val=2, n_test=2, **data)
        dm.setup("fit")
        return dm

    def flat(batches: Any) -> list[torch.Tensor]:
        out = []
        for b in batches:
            out += [b.x, b.y, b.batch] if hasattr(b, "x") else list(b)
        return out

    torch.manual_seed(0)
    used = datamodule()
    loader = used.train_dataloader()
    for _ in range(2):
        list(loader)  # epochs 0 and 1
    it = iter(loader)
    first = flat([next(it)])
    state = used.state_dict()
    assert {k: state["train_loader"][k] for k in ("epoch", "batches")} == {"epoch": 2, "batches": 1}
    rest = flat(it)
    assert len(rest) > 0

    torch.manual_seed(1)  # another process
    mid = datamodule()
    mid.load_state_dict(state)  # before the loader exists, as when Lightning restores
    resumed = flat(mid.train_dataloader())
    assert len(resumed) == len(rest) and all(torch.equal(a, b) for a, b in zip(resumed, rest))
    if model != "gnn_nc":
        fresh = datamodule()
        fresh.load_state_dict({"train_loader": {"epoch": 2, "batches": 0}})
        again = flat(fresh.train_dataloader())
        assert len(again) == len(first + rest)
        assert all(torch.equal(a, b) for a, b in zip(again, first + rest))
