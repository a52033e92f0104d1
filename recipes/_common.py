"""Helpers shared by the recipes (not part of the installed package).

Importing this module feeds Hydra's ``model`` and ``data`` config groups from the zoo's
registry (Hydra's ``ConfigStore``): ``model=<name>`` is the registered model's full
hyper-parameters and ``data=<name>`` its data config, in which every key the model shares with
its data is the interpolation ``${model.<key>}``. No YAML mirrors the registry.
"""

from __future__ import annotations

import logging
import netrc
import os
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

import zoo
from zoo.core.registry import ModelSpec, get_spec

log = logging.getLogger("zoo.recipes")

REPO_ROOT = Path(__file__).resolve().parents[1]
CONFIG_DIR = REPO_ROOT / "recipes" / "configs"

# The jobs submitit starts from a recipe (hydra/launcher=slurm|local) unpickle the task
# function, which refers to this module by name; they inherit this environment.
if str(CONFIG_DIR.parent) not in os.environ.get("PYTHONPATH", "").split(os.pathsep):
    os.environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(CONFIG_DIR.parent), os.environ.get("PYTHONPATH")) if p
    )


def plain(cfg: DictConfig | None) -> dict[str, Any]:
    """A resolved plain dict of ``cfg`` (``{}`` for ``None``)."""
    return {} if cfg is None else OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]


def wandb_has_credentials() -> bool:
    """Whether W&B could log online: an API key in the environment or in ``~/.netrc``."""
    if os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_IDENTITY_TOKEN_FILE"):
        return True
    host = os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai").split("://")[-1]
    try:
        auth = netrc.netrc(os.environ.get("NETRC") or None).authenticators(host.rstrip("/"))
    except (FileNotFoundError, netrc.NetrcParseError):
        return False
    return bool(auth and auth[2])


def registry_nodes(spec: ModelSpec) -> tuple[dict[str, Any], dict[str, Any]]:
    """The Hydra ``model`` and ``data`` nodes of a registered model (defaults from the registry;
    shared data keys interpolate the model's)."""
    model, data = spec.configs()
    data.update({dk: f"${{model.{mk}}}" for mk, dk in spec.shared.items()})
    return {"name": spec.name, **model}, data


def register_configs() -> None:
    """Store every registered model's ``model`` and ``data`` nodes in Hydra's ConfigStore."""
    cs = ConfigStore.instance()
    for name in zoo.list_models():
        model, data = registry_nodes(get_spec(name))
        cs.store(group="model", name=name, node=model)
        cs.store(group="data", name=name, node=data)


def _task_overrides(outside: Sequence[str] = ()) -> list[str]:
    """The overrides of the running Hydra job (``outside`` when not inside one)."""
    try:
        return list(HydraConfig.get().overrides.task)
    except ValueError:  # not inside a Hydra job
        return list(outside)


def recipe_command(script: str) -> str:
    """The command line that ran this job, ``python recipes/<script> <overrides>`` (the
    command-line arguments outside a Hydra job), shell-quoted so it can be pasted back."""
    return shlex.join(["python", f"recipes/{script}", *_task_overrides(sys.argv[1:])])


def model_and_data(cfg: DictConfig) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """``(name, model kwargs, data config)`` of a composed train config, reconciled by the
    registry (:meth:`zoo.core.registry.ModelSpec.configs`).

    A shared data key that still holds its ``${model.<key>}`` interpolation follows the model;
    one set explicitly (``data.depth=3``) takes the model along unless the model key was set
    too (on the command line or to a non-default value), in which case they must agree.
    """
    model = plain(cfg.model)
    spec = get_spec(model.pop("name"))
    raw: dict[str, Any] = OmegaConf.to_container(cfg.data, resolve=False)  # type: ignore[assignment]
    data = plain(cfg.data)
    data_set = {dk for dk in spec.shared.values() if not _is_interpolation(raw.get(dk))}
    on_cli = {o.split("=", 1)[0].lstrip("+~") for o in _task_overrides()}
    defaults = spec.model_config()
    for mk, dk in spec.shared.items():
        if dk in data_set and model.get(mk) == defaults.get(mk) and f"model.{mk}" not in on_cli:
            model.pop(mk, None)  # the model follows the data
    for dk in set(spec.shared.values()) - data_set:
        data.pop(dk, None)  # the data follows the model
    model_cfg, data_cfg = spec.configs(model, data)
    return spec.name, model_cfg, data_cfg


def _is_interpolation(value: Any) -> bool:
    return isinstance(value, str) and value.startswith("${") and value.endswith("}")


def validate_trainer_cfg(cfg: DictConfig) -> None:
    """Check the ``trainer`` node of a composed config before any Trainer, logger or run
    directory exists: known option names, a bounded run, an accelerator and devices this
    machine has, a precision Lightning knows, a finite gradient clip.

    Raises:
        ValueError: naming the option, its value and the override that fixes it.
    """
    import difflib
    import inspect
    import math

    import pytorch_lightning as pl

    t = plain(cfg.get("trainer"))
    if t.get("_target_") in ("pytorch_lightning.Trainer", "lightning.pytorch.Trainer"):
        valid = sorted(set(inspect.signature(pl.Trainer.__init__).parameters) - {"self"})
        for key in sorted(set(t) - set(valid) - {"_target_"}):
            close = difflib.get_close_matches(key, valid, n=1)
            hint = f" (did you mean trainer.{close[0]}?)" if close else ""
            raise ValueError(f"unknown trainer option trainer.{key}{hint}; valid: {valid}")
    if not t.get("fast_dev_run"):
        _check_run_length(t)
    _check_devices(t)
    _check_strategy(t)
    precision = t.get("precision")
    if precision is not None and precision not in _precisions():
        raise ValueError(f"trainer.precision={precision!r} is not one of {_precisions()}")
    if t.get("accelerator") == "cpu" and precision in (16, "16", "16-mixed"):
        raise ValueError(
            f"trainer.precision={precision!r} (fp16 mixed precision) does not run on the CPU: "
            "use trainer.precision=bf16-mixed or 32-true"
        )
    clip = t.get("gradient_clip_val")
    number = isinstance(clip, (int, float)) and not isinstance(clip, bool)
    if clip is not None and not (number and math.isfinite(clip) and clip >= 0):
        raise ValueError(f"trainer.gradient_clip_val={clip!r} must be a finite number >= 0")
    nodes = t.get("num_nodes", 1)
    if not _is_count(nodes):
        raise ValueError(f"trainer.num_nodes={nodes!r} must be an int >= 1")
    if nodes > 1 and not _launched_on_a_cluster():
        raise ValueError(
            f"trainer.num_nodes={nodes} needs one process per device on every node, started "
            "by a launcher; alone, this run would wait forever for the other nodes. On each "
            f"node run: torchrun --nnodes {nodes} --nproc-per-node <devices> --node-rank <i> "
            "--master-addr <node 0> --master-port 29500 recipes/train.py ... "
            f"trainer.num_nodes={nodes} (or submit through SLURM: -m hydra/launcher=slurm)"
        )


def _launched_on_a_cluster() -> bool:
    """Whether a launcher started this process as one rank of a multi-node job: torchrun,
    SLURM's srun, LSF, MPI, or Lightning's own variables (``NODE_RANK``)."""
    from pytorch_lightning.plugins.environments import (
        LSFEnvironment,
        MPIEnvironment,
        SLURMEnvironment,
        TorchElasticEnvironment,
    )

    envs = (TorchElasticEnvironment, SLURMEnvironment, LSFEnvironment, MPIEnvironment)
    return "NODE_RANK" in os.environ or any(env.detect() for env in envs)


def _is_count(value: Any) -> bool:
    """An int >= 1 (not a bool)."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _check_run_length(t: dict[str, Any]) -> None:
    """``max_epochs`` >= 1 (or null: Lightning's 1000), ``max_steps`` >= 1 or -1; -1 epochs
    (train until stopped) only with a step or time limit."""
    epochs, steps, max_time = t.get("max_epochs"), t.get("max_steps", -1), t.get("max_time")
    if not (steps in (None, -1) or _is_count(steps)):
        raise ValueError(f"trainer.max_steps={steps!r} must be an int >= 1 (or -1: no limit)")
    if epochs == -1:
        if steps in (None, -1) and max_time is None:
            raise ValueError(
                "trainer.max_epochs=-1 trains until the run is stopped by hand: set "
                "trainer.max_epochs=N (N >= 1), or bound the run with +trainer.max_steps=N or "
                "+trainer.max_time=DD:HH:MM:SS"
            )
    elif not (epochs is None or _is_count(epochs)):
        raise ValueError(
            f"trainer.max_epochs={epochs!r} trains nothing: set trainer.max_epochs=N with N >= 1"
        )


def _check_devices(t: dict[str, Any]) -> None:
    """The accelerator exists and is available here, and so are the requested devices."""
    import torch
    from pytorch_lightning.accelerators import AcceleratorRegistry

    accel = t.get("accelerator", "auto")
    if not isinstance(accel, str) or accel == "auto":
        return
    known = sorted({"auto", "gpu", *AcceleratorRegistry.available_accelerators()})
    if accel not in known:
        raise ValueError(f"trainer.accelerator={accel!r} is not one of {known}")
    if accel == "gpu":  # Lightning's alias: CUDA, else MPS
        mps = not torch.cuda.is_available() and torch.backends.mps.is_available()
        accel = "mps" if mps else "cuda"
    accelerator = AcceleratorRegistry.get(accel)
    if not accelerator.is_available():
        raise ValueError(
            f"trainer.accelerator={t['accelerator']} but this machine has no {accel.upper()} "
            "device: train on the CPU with trainer=cpu (or trainer.accelerator=cpu)"
        )
    devices = t.get("devices", "auto")
    if devices != "auto":
        try:
            accelerator.parse_devices(devices)
        except Exception as e:  # Lightning's MisconfigurationException, TypeError, ValueError
            detail = " ".join(str(e).split())
            raise ValueError(
                f"trainer.devices={devices!r} is not available with trainer.accelerator="
                f"{t['accelerator']}: {detail}"
            ) from None


#: Lightning strategies that start their processes with multiprocessing (spawn/fork)
_MP_STRATEGIES = ("ddp_spawn", "ddp_fork", "ddp_notebook")


def _check_strategy(t: dict[str, Any]) -> None:
    """Refuse the multiprocessing DDP launchers. Lightning's ``_MultiProcessingLauncher``
    joins its workers before it reads their results from a pipe, so a worker whose logged
    metrics (every metric with its interval and n: hundreds of scalars for the per-layer
    collapse metrics) outgrow the pipe buffer blocks forever in ``put`` and the run hangs
    after testing. ``strategy=ddp`` (``trainer=ddp``/``ddp_cpu``) starts the ranks as
    subprocesses of the script instead, and has no such pipe."""
    strategy = t.get("strategy")
    if isinstance(strategy, str) and strategy.startswith(_MP_STRATEGIES):
        raise ValueError(
            f"trainer.strategy={strategy} starts the ranks with multiprocessing, which hangs "
            "once the logged metrics outgrow a pipe buffer (Lightning joins before reading): "
            "use trainer=ddp_cpu (CPU, gloo) or trainer=ddp (GPUs), i.e. trainer.strategy=ddp"
        )


def _precisions() -> list[Any]:
    """Every ``precision`` value Lightning accepts (its ``_PRECISION_INPUT`` literals)."""
    import typing

    from lightning_fabric.connector import _PRECISION_INPUT

    def members(hint: Any) -> list[Any]:
        args = typing.get_args(hint)
        return [m for a in args for m in members(a)] if args else [hint]

    return members(_PRECISION_INPUT)


register_configs()


#: Seconds an online W&B start may take before the run logs offline (``$WANDB_INIT_TIMEOUT``).
WANDB_INIT_TIMEOUT = 30.0


def wandb_init_timeout(value: float | str | None = None) -> float:
    """``value``, else ``$WANDB_INIT_TIMEOUT``, else :data:`WANDB_INIT_TIMEOUT` (seconds, > 0)."""
    raw = value if value is not None else os.environ.get("WANDB_INIT_TIMEOUT") or WANDB_INIT_TIMEOUT
    try:
        seconds = float(raw)
    except (TypeError, ValueError):
        seconds = float("nan")
    if not 0 < seconds < float("inf"):
        raise ValueError(
            f"logger.init_timeout (or $WANDB_INIT_TIMEOUT) must be a number of seconds > 0, "
            f"got {raw!r}"
        )
    return seconds


def start_wandb_online(lcfg: dict[str, Any], timeout: float) -> Any:
    """The W&B logger of ``lcfg`` (its ``_target_`` and keyword arguments) with its run started
    online now; if W&B cannot start online within ``timeout`` seconds (server unreachable,
    credentials refused), an offline one instead, after a warning saying why and how to upload.

    ``quiet`` keeps ``wandb.login`` from looking the user up before the run starts: that lookup
    is not bounded by ``init_timeout`` (about 10 s against an unreachable server). The server
    (``$WANDB_BASE_URL``) and the offline mode are passed to ``wandb.init`` explicitly: W&B reads
    its environment once per process, and ignores later changes.
    """
    import wandb
    from hydra.utils import get_class

    cls = get_class(lcfg["_target_"])
    kwargs = {k: v for k, v in lcfg.items() if k != "_target_"}
    base_url = os.environ.get("WANDB_BASE_URL")
    settings = wandb.Settings(init_timeout=timeout, quiet=True)
    if base_url:
        settings.base_url = base_url
    online = cls(**kwargs, settings=settings)
    try:
        online.experiment  # noqa: B018 (starts the run)
        return online
    except (wandb.errors.CommError, TimeoutError) as e:
        lines = [line.strip() for line in str(e).splitlines() if line.strip()]
        hint = next((i for i, line in enumerate(lines) if line.startswith("Consider")), None)
        reason = " ".join(lines[:hint]) or type(e).__name__  # without W&B's code hint
    offline = cls(**{**kwargs, "offline": True, "mode": "offline", "log_model": False})
    run_dir = Path(offline.experiment.dir).parent
    log.warning(
        "W&B could not start online at %s within %g s (%s); logging offline to %s instead "
        "(upload it later with `wandb sync %s`)",
        base_url or settings.base_url,
        timeout,
        reason,
        run_dir,
        run_dir,
    )
    return offline


def build_logger(cfg: DictConfig) -> pl.loggers.Logger | None:
    """The configured logger; W&B goes offline when no credentials are configured, and when it
    cannot start online within ``logger.init_timeout`` seconds (its run is then started here)."""
    lcfg = plain(cfg.get("logger"))
    if not lcfg or "_target_" not in lcfg:
        return None
    if lcfg["_target_"].endswith("WandbLogger"):
        timeout = wandb_init_timeout(lcfg.pop("init_timeout", None))
        if lcfg.get("offline") is None:
            lcfg["offline"] = os.environ.get("WANDB_MODE") is None and not wandb_has_credentials()
        Path(lcfg.get("save_dir") or ".").mkdir(parents=True, exist_ok=True)
        if not lcfg["offline"]:
            return start_wandb_online(lcfg, timeout)
        lcfg.setdefault("mode", "offline")  # explicit: W&B reads WANDB_MODE once per process
    return instantiate(lcfg)


def finish_wandb(logger: Any, metrics: dict[str, Any]) -> tuple[Path | None, dict[str, Any]]:
    """Put the metrics (intervals included) into the W&B summary and close the run (one run
    per job).

    Returns the offline run directory (``None`` when online or not W&B) and the summary's
    entries for the headline metrics and their intervals, read back from the run (offline
    runs write only a binary ``.wandb`` log, no summary JSON). Only those are read back: each
    summary lookup costs ~10 ms, and a collapse model reports thousands of metrics.
    """
    from pytorch_lightning.loggers import WandbLogger

    from zoo.core.card import headline_metrics

    if (
        not isinstance(logger, WandbLogger)
        or not logger.experiment
        or not hasattr(logger.experiment, "summary")
    ):
        return None, {}
    import wandb

    run = logger.experiment
    run.summary.update(metrics)
    head = headline_metrics(metrics)
    keys = [k for k in metrics if k in head or k.removesuffix("_ci").removesuffix("_n") in head]
    summary = {k: run.summary[k] for k in keys}
    run_dir = Path(run.dir).parent
    offline = bool(run.offline)
    wandb.finish()
    return (run_dir if offline else None), summary
