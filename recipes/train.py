"""Train a registered zoo model, test it, export a checkpoint directory, optionally push.

    python recipes/train.py model=gnn_nc                       # CPU, W&B offline, minutes
    python recipes/train.py experiment=gnn_nc export_dir=checkpoints/gnn_nc
    python recipes/train.py model=gnn_nc trainer=ddp_cpu trainer.devices=2
    python recipes/train.py -m model=gnn_nc model.depth=2,4,8  # Hydra multirun sweep
    python recipes/train.py model=gnn_nc ckpt_path=<run>/checkpoints/last.ckpt  # resume

Resuming is exact (same weights as an uninterrupted run): ``last.ckpt`` is rewritten every epoch
and when SIGTERM or SIGINT (Ctrl-C) stops the run, which then exits non-zero and prints the
command that resumes it. ``ckpt_path`` takes local files only, and only ones you trust: a
Lightning ``.ckpt`` is a pickle, and unpickling runs code (``zoo.load`` never unpickles, it
reads safetensors).

Thin by design (instantiate → fit → test → export): every model-specific choice lives in
the model class and its configs.
"""

from __future__ import annotations

import os
import secrets
import shlex
import signal
import sys
import time
import zipfile
from pathlib import Path
from typing import Any, NoReturn

import hydra
import pytorch_lightning as pl
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.utilities.exceptions import SIGTERMException

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (
    CONFIG_DIR,
    build_logger,
    finish_wandb,
    log,
    model_and_data,
    plain,
    recipe_command,
    validate_trainer_cfg,
)

import zoo
from zoo.core.callbacks import ResumableModelCheckpoint
from zoo.core.card import headline_metrics
from zoo.core.checkpoint import check_export_target, export_id
from zoo.core.evaluation import fold, format_metric


def build_callbacks(cfg: DictConfig, model: zoo.core.ZooModule) -> list[pl.Callback]:
    """Callbacks of the config; a checkpoint callback monitors the model's own metric."""
    out = []
    for name, ccfg in plain(cfg.get("callbacks")).items():
        if not ccfg:
            continue
        if ccfg["_target_"].endswith("ModelCheckpoint"):
            ccfg["monitor"] = ccfg.get("monitor") or model.monitor
            ccfg["mode"] = ccfg.get("mode") or model.monitor_mode
            ccfg.setdefault("filename", "best")
        log.debug("callback %s: %s", name, ccfg)
        out.append(instantiate(ccfg))
    return out


def train(cfg: DictConfig, command: str | None = None) -> dict[str, Any]:
    """Run one training job described by ``cfg``.

    Returns:
        ``{"metrics": test metrics, "export_dir": Path | None, "trainer": Trainer,
        "model": module, "wandb_dir": Path | None}``.
    """
    check_export_target(cfg.export_dir)  # refuse a target that is not ours before training
    # local, existing, a checkpoint: or refuse ("last": this run directory's own last.ckpt)
    ckpt_path = resume_path(cfg.get("ckpt_path"), last=own_last_checkpoint(cfg))
    pl.seed_everything(cfg.seed, workers=True)
    # Build (and so validate) model and data before any trainer or logger exists.
    name, mcfg, dcfg = model_and_data(cfg)
    model = zoo.create(name, **mcfg)
    model.zoo_data_config = dcfg  # the data it trains on, reconciled with the model
    datamodule = zoo.create_datamodule(model)
    validate_trainer_cfg(cfg)  # the trainer options too, still before any logger or run dir

    logger = build_logger(cfg)
    callbacks = build_callbacks(cfg, model)
    trainer: pl.Trainer = instantiate(cfg.trainer, logger=logger or False, callbacks=callbacks)
    if logger is not None:
        logger.log_hyperparams(plain(cfg))

    start = time.perf_counter()
    try:
        if cfg.get("compile"):  # the model's calls (forward) through torch.compile, in place
            model.compile()
        trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
    except SIGTERMException:  # SIGTERM or SIGINT: stopped where last.ckpt was saved
        _exit_interrupted(trainer)
    fit_s = time.perf_counter() - start

    metrics: dict[str, Any] = {}
    if cfg.get("test", True):
        ckpt = trainer.checkpoint_callback
        best = "best" if ckpt is not None and getattr(ckpt, "best_model_path", "") else None
        try:
            results = trainer.test(model, datamodule=datamodule, ckpt_path=best, verbose=False)
        except SIGTERMException:  # nothing exported yet: resuming tests and exports
            _exit_interrupted(trainer)
        metrics = fold(results[0] if results else {})

    export_dir = own_export = None
    if trainer.is_global_zero:
        export_dir = zoo.save(model, cfg.export_dir, metrics=metrics, command=command)
        own_export = model.zoo_export_id
        hub = cfg.get("hub") or {}
        if hub.get("push"):
            from zoo.core.hub import push

            url = push(export_dir, hub.repo_id, token=hub.get("token"), private=hub.private)
            log.info("pushed %s to %s", export_dir, url)
    wandb_dir, wandb_summary = finish_wandb(logger, metrics)
    if trainer.is_global_zero:
        _report(metrics, export_dir, wandb_dir, fit_s, own_export)
    return {
        "metrics": metrics,
        "export_dir": export_dir,
        "trainer": trainer,
        "model": model,
        "wandb_dir": wandb_dir,
        "wandb_summary": wandb_summary,
    }


def own_last_checkpoint(cfg: DictConfig) -> Path | None:
    """Where this run writes its ``last.ckpt`` (``None`` without the checkpoint callback)."""
    ccfg = plain(cfg.get("callbacks")).get("model_checkpoint") or {}
    return Path(ccfg["dirpath"]) / "last.ckpt" if ccfg.get("dirpath") else None


def resume_path(ckpt_path: str | os.PathLike | None, last: Path | None = None) -> Path | None:
    """The absolute path of the local ``.ckpt`` to resume from (``None``: a fresh run).

    Checked before anything is built. Lightning checkpoints are pickles, which can run code
    when loaded: resume only from files you trust. URLs are refused outright (Lightning would
    download and unpickle them with ``weights_only=False``).

    ``ckpt_path=last`` resumes from ``last`` (this run directory's own ``last.ckpt``) when it
    exists and starts fresh otherwise; a SLURM job that was requeued (``SLURM_RESTART_COUNT``
    > 0, e.g. by ``hydra/launcher=slurm`` after a pre-emption or time limit) does so without
    being asked, since it runs again with the same overrides in the same directory.

    Raises:
        ValueError: for a URL, or a file that is not a checkpoint written by ``torch.save``.
        FileNotFoundError: when ``ckpt_path`` is not an existing file.
    """
    requeued = os.environ.get("SLURM_RESTART_COUNT", "0").strip() not in ("", "0")
    if str(ckpt_path) == "last" or (requeued and ckpt_path in (None, "")):
        if last is None:
            raise ValueError(
                "ckpt_path=last resumes from the run's own checkpoints/last.ckpt, but this run "
                "writes none (callbacks.model_checkpoint is off): pass the .ckpt path instead"
            )
        found = last.is_file()
        log.info("resuming from %s" if found else "no %s yet: starting fresh", last)
        return last.resolve() if found else None
    if ckpt_path is None or str(ckpt_path) == "":
        return None
    text = str(ckpt_path)
    if "://" in text:
        raise ValueError(
            f"ckpt_path={text!r} is a URL: resume only from a local .ckpt file you trust "
            "(a Lightning checkpoint is a pickle, and loading one can run code). Download it "
            "yourself from a source you trust and pass its local path."
        )
    path = Path(text).expanduser()
    if not path.is_file():
        what = "is a directory, not a .ckpt file" if path.is_dir() else "does not exist"
        raise FileNotFoundError(
            f"ckpt_path={text!r} {what}: pass the checkpoint of the run to resume, e.g. "
            "ckpt_path=outputs/<model>/<run>/checkpoints/last.ckpt"
        )
    if not zipfile.is_zipfile(path):
        raise ValueError(
            f"ckpt_path={text!r} is not a Lightning checkpoint (not a torch.save archive): pass "
            "the last.ckpt or best.ckpt of a training run (an exported checkpoint directory "
            "is loaded with zoo.load, not resumed)"
        )
    return path.resolve()


def resume_command(ckpt: Path) -> str:
    """The command line that resumes this job from ``ckpt``: its overrides, ``ckpt_path`` last."""
    try:
        overrides = list(HydraConfig.get().overrides.task)
    except ValueError:  # not inside a Hydra job
        overrides = []
    kept = [o for o in overrides if o.lstrip("+~").split("=", 1)[0] != "ckpt_path"]
    args = [*kept, f"ckpt_path={ckpt}"]
    return " ".join(["python", "recipes/train.py", *(shlex.quote(a) for a in args)])


def _exit_interrupted(trainer: pl.Trainer) -> NoReturn:
    """After a SIGTERM/SIGINT stop: say what was saved and how to resume, exit 128 + signal."""
    ckpt = next(
        (c for c in trainer.checkpoint_callbacks if isinstance(c, ResumableModelCheckpoint)), None
    )
    sig = (ckpt.stop_signal if ckpt is not None else None) or signal.SIGTERM
    last = Path(ckpt.last_model_path) if ckpt is not None and ckpt.last_model_path else None
    if trainer.is_global_zero:
        if last is not None and last.is_file():
            print(
                f"\nStopped by {sig.name} at epoch {trainer.current_epoch}, step "
                f"{trainer.global_step}; the run is saved in {last}. Resume it with:\n"
                f"  {resume_command(last)}",
                file=sys.stderr,
                flush=True,
            )
        else:
            print(
                f"\nStopped by {sig.name} before any checkpoint was saved: nothing to resume, "
                "run the command again.",
                file=sys.stderr,
                flush=True,
            )
    raise SystemExit(128 + sig)


def _report(
    metrics: dict[str, Any],
    export_dir: Path,
    wandb_dir: Path | None,
    fit_s: float,
    own_export: str | None = None,
) -> None:
    """Print the test metrics and where the checkpoint is (unless a later save replaced it)."""
    from rich.console import Console
    from rich.table import Table

    head = headline_metrics(metrics)
    table = Table(title=f"test metrics (fit took {fit_s:.1f} s)")
    table.add_column("metric")
    table.add_column("value [95% interval], n", justify="right")
    for k in sorted(head):
        table.add_row(k, format_metric(metrics, k))
    console = Console()
    console.print(table)
    if len(head) < len(metrics):
        console.print(f"(+{len(metrics) - len(head)} more metrics in the checkpoint's config.json)")
    if own_export is not None and export_id(export_dir) != own_export:
        console.print(
            f"[bold yellow]export superseded:[/] {export_dir} no longer holds this run's "
            f"checkpoint (export_id {own_export}): another save replaced it after this run's. "
            "Give each run its own export_dir.",
            soft_wrap=True,
        )
    else:
        console.print(
            f"checkpoint: [bold]{export_dir}[/]  (zoo.load({str(export_dir)!r}))", soft_wrap=True
        )
    if wandb_dir is not None:
        console.print(
            f"W&B offline run: [bold]{wandb_dir}[/]  (upload: wandb sync {wandb_dir})",
            soft_wrap=True,
        )


def register_run_id() -> None:
    """``${zoo.run_id:}`` (used by ``hydra.run.dir``/``hydra.sweep.dir``): ``<PID>-<6 random hex>``,
    so two runs started in the same second never share a directory; one value per config."""
    OmegaConf.register_new_resolver(
        "zoo.run_id", lambda: f"{os.getpid()}-{secrets.token_hex(3)}", use_cache=True, replace=True
    )


register_run_id()


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="train")
def main(cfg: DictConfig) -> float | None:
    """Hydra entry point; returns the monitored metric for sweepers."""
    log.debug(OmegaConf.to_yaml(cfg))
    out = train(cfg, command=recipe_command("train.py"))
    ckpt = out["trainer"].checkpoint_callback
    score = getattr(ckpt, "best_model_score", None)
    return float(score) if score is not None else None


if __name__ == "__main__":
    main()
