"""Train a registered zoo model, test it, export a checkpoint directory, optionally push.

    python recipes/train.py model=gnn_nc                       # CPU, W&B offline, minutes
    python recipes/train.py experiment=gnn_nc export_dir=checkpoints/gnn_nc
    python recipes/train.py model=gnn_nc trainer=ddp_cpu trainer.devices=2
    python recipes/train.py -m model=gnn_nc model.depth=2,4,8  # Hydra multirun sweep
    python recipes/train.py model=gnn_nc ckpt_path=<run>/checkpoints/last.ckpt  # resume

Thin by design (instantiate → fit → test → export): every model-specific choice lives in
the model class and its configs.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

import hydra
import pytorch_lightning as pl
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import CONFIG_DIR, log, model_and_data, plain, wandb_has_credentials

import zoo
from zoo.core.checkpoint import headline_metrics, save_checkpoint


def build_logger(cfg: DictConfig) -> pl.loggers.Logger | None:
    """The configured logger; W&B goes offline when no credentials are configured."""
    lcfg = plain(cfg.get("logger"))
    if not lcfg or "_target_" not in lcfg:
        return None
    if lcfg["_target_"].endswith("WandbLogger"):
        if lcfg.get("offline") is None:
            lcfg["offline"] = os.environ.get("WANDB_MODE") is None and not wandb_has_credentials()
        Path(lcfg.get("save_dir") or ".").mkdir(parents=True, exist_ok=True)
    return instantiate(lcfg)


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
    pl.seed_everything(cfg.seed, workers=True)
    # Build (and so validate) model and data before any trainer or logger exists.
    name, mcfg, dcfg = model_and_data(cfg)
    model = zoo.create(name, **mcfg)
    model.zoo_data_config = dcfg  # the data it trains on, reconciled with the model
    datamodule = zoo.create_datamodule(model)

    logger = build_logger(cfg)
    callbacks = build_callbacks(cfg, model)
    trainer: pl.Trainer = instantiate(cfg.trainer, logger=logger or False, callbacks=callbacks)
    if logger is not None:
        logger.log_hyperparams(plain(cfg))

    start = time.perf_counter()
    trainer.fit(model, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))
    fit_s = time.perf_counter() - start

    metrics: dict[str, Any] = {}
    if cfg.get("test", True):
        ckpt = trainer.checkpoint_callback
        best = "best" if ckpt is not None and getattr(ckpt, "best_model_path", "") else None
        results = trainer.test(model, datamodule=datamodule, ckpt_path=best, verbose=False)
        metrics = {k: float(v) for k, v in (results[0] if results else {}).items()}

    export_dir = None
    if trainer.is_global_zero:
        export_dir = Path(cfg.export_dir)
        save_checkpoint(model, export_dir, metrics=metrics, command=command)
        hub = cfg.get("hub") or {}
        if hub.get("push"):
            from zoo.core.hub import push

            url = push(export_dir, hub.repo_id, token=hub.get("token"), private=hub.private)
            log.info("pushed %s to %s", export_dir, url)
    wandb_dir, wandb_summary = _finish_wandb(logger, metrics)
    if trainer.is_global_zero:
        _report(metrics, export_dir, wandb_dir, fit_s)
    return {
        "metrics": metrics,
        "export_dir": export_dir,
        "trainer": trainer,
        "model": model,
        "wandb_dir": wandb_dir,
        "wandb_summary": wandb_summary,
    }


def _finish_wandb(logger: Any, metrics: dict[str, Any]) -> tuple[Path | None, dict[str, Any]]:
    """Put the test metrics into the W&B summary and close the run (one run per job).

    Returns the offline run directory (``None`` when online or not W&B) and a copy of the
    in-process summary (offline runs write only a binary ``.wandb`` log, no summary JSON).
    """
    from pytorch_lightning.loggers import WandbLogger

    if (
        not isinstance(logger, WandbLogger)
        or not logger.experiment
        or not hasattr(logger.experiment, "summary")
    ):
        return None, {}
    import wandb

    run = logger.experiment
    run.summary.update(metrics)
    summary = {k: run.summary[k] for k in run.summary.keys()}  # noqa: SIM118 (not iterable)
    run_dir = Path(run.dir).parent
    offline = bool(run.offline)
    wandb.finish()
    return (run_dir if offline else None), summary


def _report(
    metrics: dict[str, Any], export_dir: Path, wandb_dir: Path | None, fit_s: float
) -> None:
    from rich.console import Console
    from rich.table import Table

    head = headline_metrics(metrics)
    table = Table(title=f"test metrics (fit took {fit_s:.1f} s)")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for k, v in sorted(head.items()):
        table.add_row(k, f"{v:.4g}")
    console = Console()
    console.print(table)
    if len(head) < len(metrics):
        console.print(f"(+{len(metrics) - len(head)} more metrics in the checkpoint's config.json)")
    console.print(
        f"checkpoint: [bold]{export_dir}[/]  (zoo.load({str(export_dir)!r}))", soft_wrap=True
    )
    if wandb_dir is not None:
        console.print(
            f"W&B offline run: [bold]{wandb_dir}[/]  (upload: wandb sync {wandb_dir})",
            soft_wrap=True,
        )


def _command() -> str:
    try:
        overrides = HydraConfig.get().overrides.task
    except ValueError:
        overrides = sys.argv[1:]
    return " ".join(["python recipes/train.py", *overrides])


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="train")
def main(cfg: DictConfig) -> float | None:
    """Hydra entry point; returns the monitored metric for sweepers."""
    log.debug(OmegaConf.to_yaml(cfg))
    out = train(cfg, command=_command())
    ckpt = out["trainer"].checkpoint_callback
    score = getattr(ckpt, "best_model_score", None)
    return float(score) if score is not None else None


if __name__ == "__main__":
    main()
