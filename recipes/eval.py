"""Evaluate any checkpoint on freshly generated data; print its metrics as JSON.

    python recipes/eval.py checkpoint=gnn_nc data.seed=1
    python recipes/eval.py checkpoint=gnn_nc data.seeds=[1,2,3]       # pooled over 3 seeds
    python recipes/eval.py checkpoint=path/to/dir data.seed=2 data.n_test=200
    python recipes/eval.py checkpoint=hf-hub:org/gnn_nc logger=wandb
    python recipes/eval.py checkpoint=checkpoints/gnn_nc data.n_test=400 rewrite=true
    python recipes/eval.py checkpoint=unet_bp_sigma +model.diffusion_samples=8192

The last line of output is one JSON object with the keys of the ``metrics`` object that export
writes into the checkpoint's ``config.json``: every metric ``x`` with its 95 % bootstrap
interval ``x_ci`` and count ``x_n`` (see ``zoo.core.evaluation``). With ``data.seeds`` the
examples of all seeds are pooled before the bootstrap. ``rewrite=true`` re-measures a local
checkpoint's card: the metrics measured here (on the checkpoint's own held-out test split
unless the seed is overridden) replace those of its ``config.json`` and model card; the
weights are kept. ``+model.<key>`` overrides a model's evaluation-only hyper-parameters
(``eval_hparams``: e.g. the number of diffusion samples), which a rewrite records.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import hydra
import pytorch_lightning as pl
from hydra.utils import instantiate
from omegaconf import DictConfig

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import CONFIG_DIR, build_logger, finish_wandb, plain, recipe_command

import zoo
from zoo.core.checkpoint import HUB_PREFIX, read_config, resolve
from zoo.core.evaluation import flat, fold, pool


def _seeds(data: dict[str, Any]) -> list[int | None]:
    """The evaluation seeds: ``data.seeds`` (a non-empty list) or ``[data.seed]``."""
    seeds = data.pop("seeds", None)
    if seeds is None:
        return [data.pop("seed", None)]
    if data.pop("seed", None) is not None:
        raise ValueError("give data.seed or data.seeds, not both")
    if not isinstance(seeds, list) or not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"data.seeds must be a non-empty list of distinct seeds, got {seeds!r}")
    return list(seeds)


def evaluate(
    cfg: DictConfig, model: zoo.core.ZooModule, logger: pl.loggers.Logger | None = None
) -> dict[str, Any]:
    """Test ``model`` on its data regenerated with the ``cfg.data`` overrides, once per seed;
    returns the folded metrics (pooled over the seeds when there are several)."""
    overrides = {k: v for k, v in plain(cfg.get("data")).items() if v is not None}
    seeds = _seeds(overrides)
    runs: list[tuple[dict[str, float], list[Any]]] = []
    for seed in seeds:
        data = dict(overrides, **({"seed": seed} if seed is not None else {}))
        datamodule = zoo.create_datamodule(model, **data)
        pl.seed_everything(datamodule.config.get("seed", 0), workers=True, verbose=False)
        trainer: pl.Trainer = instantiate(cfg.trainer, logger=logger or False)
        results: list[dict[str, Any]] = trainer.test(model, datamodule=datamodule, verbose=False)
        logged = {k: float(v) for k, v in (results[0] if results else {}).items()}
        runs.append((logged, list(model.zoo_eval.get("test", []))))
    if len(runs) == 1:
        return fold(runs[0][0])
    # Pool: the i-th column group of every run, bootstrapped together; a metric that no group
    # produces (none of the zoo's) would be averaged over seeds without an interval.
    pooled: dict[str, float] = {}
    for i, (_, statistics) in enumerate(runs[0][1]):
        found = pool([run[1][i][0] for run in runs], statistics)
        pooled.update(
            {k: v for name, e in found.items() for k, v in flat(f"test/{name}", e).items()}
        )
    for key in runs[0][0]:
        if key not in pooled:
            pooled[key] = sum(run[0][key] for run in runs) / len(runs)
    return fold(pooled)


def apply_eval_hparams(cfg: DictConfig, model: zoo.core.ZooModule) -> None:
    """Set the ``cfg.model`` overrides (``+model.diffusion_samples=8192``) on ``model``; only
    its ``eval_hparams`` (how the test stage measures, never the weights) may change."""
    overrides = plain(cfg.get("model"))
    allowed = type(model).eval_hparams
    for key in sorted(set(overrides) - set(allowed)):
        raise ValueError(
            f"model.{key} cannot change at evaluation (it would not match the weights); "
            f"{model.zoo_name} takes evaluation-only overrides {list(allowed) or 'none'}"
        )
    if overrides:
        spec = zoo.core.get_spec(model.zoo_name)
        hp = {k: v for k, v in dict(model.hparams).items() if k != "name"}
        data = {k: v for k, v in (model.zoo_data_config or {}).items() if k != "name"}
        spec.configs({**hp, **overrides}, data)  # validated like any model config
        model.hparams.update(overrides)


def rewrite(cfg: DictConfig, model: zoo.core.ZooModule, metrics: dict[str, Any]) -> Path:
    """Replace the metrics of the local checkpoint ``cfg.checkpoint`` (weights kept)."""
    ref = str(cfg.checkpoint)
    if ref.startswith(HUB_PREFIX):
        raise ValueError("rewrite=true re-measures a local checkpoint directory, not a Hub id")
    directory = resolve(ref)
    config = read_config(directory)
    data = dict(config["data"])
    overrides = {k: v for k, v in plain(cfg.get("data")).items() if v is not None}
    seeds = _seeds(dict(overrides))
    data.update({k: v for k, v in overrides.items() if k in ("n_test", "batch_size")})
    evaluation = {
        "command": recipe_command("eval.py"),
        "seeds": [data["seed"] if s is None else s for s in seeds],
    }
    return zoo.save(
        model,
        directory,
        metrics=metrics,
        command=config.get("command"),
        data_config=data,
        evaluation=evaluation,
    )


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="eval")
def main(cfg: DictConfig) -> None:
    """Load ``cfg.checkpoint`` (a bad reference exits 1 with one ``error:`` line), test it."""
    try:
        model = zoo.load(str(cfg.checkpoint))
        apply_eval_hparams(cfg, model)
        logger = build_logger(cfg)
        metrics = evaluate(cfg, model, logger)
        finish_wandb(logger, metrics)
        if cfg.get("rewrite"):
            print(f"rewrote {rewrite(cfg, model, metrics)}", file=sys.stderr)
    except (OSError, ValueError) as e:  # no such directory/name, bad checkpoint, Hub unreachable
        raise SystemExit(f"error: {e}") from None
    print(json.dumps(metrics, sort_keys=True))


if __name__ == "__main__":
    main()
