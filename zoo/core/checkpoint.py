"""The checkpoint directory format, the same on disk, in ``checkpoints/`` and on the Hub.

A checkpoint directory holds exactly::

    config.json         {"model": {"name": ..., **hparams}, "data": {"name": ..., **cfg},
                         "metrics": {...}, "command": ..., "zoo_version": ...}
    model.safetensors   the state dict (weights and persistent buffers)
    README.md           the model card: data, command, measured metrics

Directories are written atomically (built in a sibling temporary directory, then renamed
into place) and weights are only ever read with ``safetensors`` — never unpickled — and
loaded *strictly*: a weight file that does not match the config raises.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from zoo.core.module import ZooModule
from zoo.core.registry import check_shared, create, get_spec
from zoo.core.version import __version__

__all__ = [
    "CARD_NAME",
    "CONFIG_NAME",
    "WEIGHTS_NAME",
    "checkpoints_root",
    "headline_metrics",
    "load",
    "load_checkpoint",
    "read_config",
    "resolve",
    "save_checkpoint",
]

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
CARD_NAME = "README.md"
HUB_PREFIX = "hf-hub:"


def checkpoints_root() -> Path:
    """Shipped pretrained checkpoints: ``$ZOO_CHECKPOINTS`` or ``<repo>/checkpoints``."""
    env = os.environ.get("ZOO_CHECKPOINTS")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "checkpoints"


def _jsonable(metrics: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in metrics.items():
        if isinstance(v, torch.Tensor):
            v = v.item() if v.numel() == 1 else v.tolist()
        if isinstance(v, float) and not math.isfinite(v):
            v = str(v)
        out[str(k)] = v
    return out


def headline_metrics(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """The headline metrics (``test/acc``), without nested ones (``test/nc_h/layer_07/nc1``)."""
    return {k: v for k, v in metrics.items() if k.count("/") <= 1}


def _fmt(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else f"`{v}`"


def model_card(config: Mapping[str, Any], extra: str = "") -> str:
    """Render the model card (``README.md``) of a checkpoint from its config."""
    model, data = dict(config["model"]), dict(config["data"])
    name = model.pop("name")
    spec = get_spec(name)
    family = spec.family
    metrics = config.get("metrics", {})
    lines = [
        "---",
        "library_name: zoo",
        f"tags: [zoo, pytorch-lightning, {family}]",
        "license: mit",
        "---",
        "",
        f"# `{name}`",
        "",
        spec.description,
        "",
    ]
    if spec.paper:
        lines += [f"Reproduces: {spec.paper}", ""]
    lines += ["## Usage", "", "```python", "import zoo", "", f'model = zoo.load("{name}")']
    lines += ["datamodule = zoo.create_datamodule(model, seed=1)  # fresh data, same distribution"]
    lines += ["```", "", "## Metrics (measured on the test split)", ""]
    if metrics:
        # Nested metrics stay in config.json and in the model's own section below.
        head = headline_metrics(metrics)
        lines += ["| metric | value |", "|---|---|"]
        lines += [f"| {k} | {_fmt(v)} |" for k, v in sorted(head.items())]
        if len(head) < len(metrics):
            lines += ["", f"{len(metrics) - len(head)} more metrics in `config.json`."]
    else:
        lines += ["No metrics recorded."]
    lines += ["", "Re-measure on fresh data with:", ""]
    lines += ["```", f"python recipes/eval.py checkpoint={name} data.seed=1", "```", ""]
    if extra:
        lines += [extra.strip(), ""]
    lines += ["## Training data", "", f"Datamodule `{data.pop('name', '?')}`:", ""]
    lines += ["| key | value |", "|---|---|"] + [f"| {k} | {_fmt(v)} |" for k, v in data.items()]
    lines += ["", "## Hyper-parameters", "", "| key | value |", "|---|---|"]
    lines += [f"| {k} | {_fmt(v)} |" for k, v in model.items()]
    lines += ["", "## How it was trained", ""]
    lines += ["```", config.get("command") or "(no command recorded)", "```", ""]
    lines += [
        "## Limitations",
        "",
        "A small model trained on synthetic data for research on the theory it illustrates; "
        "metrics hold for the data distribution above only.",
        "",
    ]
    return "\n".join(lines)


def save_checkpoint(
    module: ZooModule,
    directory: str | os.PathLike,
    *,
    metrics: Mapping[str, Any] | None = None,
    command: str | None = None,
    data_config: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``module`` as a checkpoint directory, atomically.

    Args:
        module: a model built by ``zoo.create``/``zoo.load`` (it knows its registry name).
        directory: target directory; replaced as a whole if it exists.
        metrics: measured metrics for ``config.json`` and the model card.
        command: the command that produced the weights (model card).
        data_config: the data config trained on (defaults to ``module.zoo_data_config``).

    Returns:
        The checkpoint directory.
    """
    if not module.zoo_name:
        raise ValueError("module has no zoo_name: build it with zoo.create(name) or zoo.load")
    directory = Path(directory)
    config = module.zoo_config
    if data_config is not None:
        config["data"] = dict(data_config)
    config["metrics"] = _jsonable(metrics if metrics is not None else module.zoo_metrics)
    config["command"] = command
    config["zoo_version"] = __version__
    json.dumps(config)  # fail before touching the disk if a value is not JSON-able

    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    try:
        state = {k: v.detach().contiguous().cpu() for k, v in module.state_dict().items()}
        save_file(
            state, tmp / WEIGHTS_NAME, metadata={"format": "pt", "zoo_model": module.zoo_name}
        )
        (tmp / CONFIG_NAME).write_text(json.dumps(config, indent=2, sort_keys=False) + "\n")
        extra = (
            module.model_card_extra(config["metrics"])
            if hasattr(module, "model_card_extra")
            else ""
        )
        (tmp / CARD_NAME).write_text(model_card(config, extra))
        old = None
        if directory.exists():
            old = directory.with_name(f".{directory.name}.old-{os.getpid()}")
            os.replace(directory, old)
        os.replace(tmp, directory)
        if old is not None:
            shutil.rmtree(old)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return directory


def read_config(directory: str | os.PathLike) -> dict[str, Any]:
    """``config.json`` of a checkpoint directory, with a clear error if it is not one."""
    directory = Path(directory)
    for fname in (CONFIG_NAME, WEIGHTS_NAME):
        if not (directory / fname).is_file():
            raise FileNotFoundError(f"{directory} is not a zoo checkpoint: {fname} is missing")
    config = json.loads((directory / CONFIG_NAME).read_text())
    if not isinstance(config.get("model"), dict) or "name" not in config["model"]:
        raise ValueError(f"{directory / CONFIG_NAME} has no model.name")
    return config


def load_checkpoint(directory: str | os.PathLike, map_location: str = "cpu") -> ZooModule:
    """Rebuild the model of a checkpoint directory and load its weights strictly.

    Raises:
        ValueError: if the weights do not match the architecture that the config describes
            (missing/unexpected keys or shape mismatches).
    """
    directory = Path(directory)
    config = read_config(directory)
    hparams = dict(config["model"])
    name = hparams.pop("name")
    module = create(name, **hparams)
    state = load_file(directory / WEIGHTS_NAME, device=map_location)
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise ValueError(f"weights in {directory} do not fit model {name!r} {hparams}: {e}") from e
    module.zoo_data_config = dict(config.get("data") or module.zoo_data_config or {})
    try:
        check_shared(name, module.hparams, module.zoo_data_config)
    except ValueError as e:
        raise ValueError(f"{directory / CONFIG_NAME}: {e}") from None
    module.zoo_metrics = dict(config.get("metrics") or {})
    module.eval()
    return module


def resolve(ref: str | os.PathLike) -> Path:
    """Turn a checkpoint reference into a local directory.

    ``ref`` is an ``hf-hub:org/name[@revision]`` id (downloaded through the HF cache, which
    works offline with ``HF_HUB_OFFLINE=1`` once cached), an existing directory, or a
    registered model name (its shipped pretrained checkpoint).
    """
    ref = os.fspath(ref)
    if ref.startswith(HUB_PREFIX):
        from zoo.core.hub import download

        repo_id, _, revision = ref[len(HUB_PREFIX) :].partition("@")
        return download(repo_id, revision=revision or None)
    path = Path(ref).expanduser()
    if path.is_dir():
        return path
    spec = get_spec(ref)  # unknown names raise, listing the valid ones
    shipped = checkpoints_root() / spec.name
    if not (shipped / WEIGHTS_NAME).is_file():
        raise FileNotFoundError(
            f"no pretrained checkpoint for {ref!r} at {shipped}; train one with "
            f"`python recipes/train.py model={ref}`"
        )
    return shipped


def load(ref: str | os.PathLike, map_location: str = "cpu") -> ZooModule:
    """A pretrained model from a registered name, a checkpoint directory or an ``hf-hub:`` id."""
    return load_checkpoint(resolve(ref), map_location=map_location)
