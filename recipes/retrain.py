"""Retrain the zoo: every shipped checkpoint by the commands recorded in its config.json.

    python recipes/retrain.py                                   # all of checkpoints/, on CPU
    python recipes/retrain.py gnn_nc unet_bp -o trainer=gpu     # two of them, on a GPU
    python recipes/retrain.py --export-root checkpoints         # replace the shipped ones

Each checkpoint's ``config.json`` records the training command that produced it
(``python recipes/train.py experiment=<name> export_dir=checkpoints/<name> ...``) and the
evaluation that measured its card (``python recipes/eval.py ... rewrite=true``). Both are run
again, as subprocesses, with ``export_dir``/``checkpoint`` pointing into ``--export-root`` and
the given Hydra overrides appended (``-o`` to both commands, ``--train-override`` and
``--eval-override`` to one); the wall time of each is measured. The table (model, device, times,
every headline metric with its interval and n, next to the shipped card's) is printed and
written to ``--table`` (``docs/retrain.md``) after every checkpoint; an interrupted run,
started again, keeps the checkpoints it had finished. A driver of the Hydra recipes, not one itself:
its options are lists of their overrides.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO_ROOT

from zoo.core.card import headline_metrics
from zoo.core.checkpoint import CONFIG_NAME
from zoo.core.evaluation import format_metric

SHIPPED = REPO_ROOT / "checkpoints"


@dataclass
class Retrained:
    """One retrained checkpoint: where, how long, and its card's metrics before and after."""

    name: str
    export_dir: Path
    train_s: float
    eval_s: float
    shipped: dict[str, Any]
    metrics: dict[str, Any]


def shipped_names() -> list[str]:
    """Every checkpoint directory under ``checkpoints/``."""
    return sorted(p.parent.name for p in SHIPPED.glob(f"*/{CONFIG_NAME}"))


def commands(name: str, export_dir: Path) -> tuple[list[str], list[str] | None]:
    """The recorded training and evaluation argument lists of checkpoint ``name``, retargeted
    at ``export_dir`` (the evaluation is ``None`` when the card was measured while training).

    Raises:
        ValueError: for an unknown name (listing the shipped ones) or a config.json that does
            not record a ``recipes/train.py`` command.
    """
    path = SHIPPED / name / CONFIG_NAME
    if not path.is_file():
        raise ValueError(f"no shipped checkpoint {name!r}; shipped: {shipped_names()}")
    config = json.loads(path.read_text())
    train = shlex.split(config.get("command") or "")
    if train[:2] != ["python", "recipes/train.py"]:
        raise ValueError(f"{path} records no recipes/train.py command: {config.get('command')!r}")
    target = _shown(export_dir)
    train = _retarget(train[2:], "export_dir", target)
    evaluation = (config.get("evaluation") or {}).get("command")
    if not evaluation:
        return train, None
    return train, _retarget(shlex.split(evaluation)[2:], "checkpoint", target)


def _shown(path: Path) -> str:
    """``path`` relative to the repository root when inside it (the recipes run from there,
    and a card records its commands as given), else absolute."""
    path = path.resolve()
    return str(path.relative_to(REPO_ROOT)) if path.is_relative_to(REPO_ROOT) else str(path)


def _retarget(args: list[str], key: str, value: str) -> list[str]:
    """``args`` with ``key=...`` set to ``value`` where it stood (appended if absent), so that
    retraining into ``checkpoints/`` records the same command as the shipped card."""
    out = [f"{key}={value}" if a.startswith(f"{key}=") else a for a in args]
    return out if any(a.startswith(f"{key}=") for a in args) else [*out, f"{key}={value}"]


def _run(script: str, args: list[str]) -> float:
    """Run ``python recipes/<script> <args>`` from the repository root; its wall time in s."""
    cmd = [sys.executable, str(REPO_ROOT / "recipes" / script), *args]
    print("$", shlex.join(["python", f"recipes/{script}", *args]), flush=True)
    start = time.perf_counter()
    res = subprocess.run(cmd, cwd=REPO_ROOT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    if res.returncode != 0:
        raise SystemExit(f"recipes/{script} failed (exit {res.returncode}): {shlex.join(args)}")
    return time.perf_counter() - start


def retrain(name: str, export_root: Path, train_over: list[str], eval_over: list[str]) -> Retrained:
    """Retrain checkpoint ``name`` into ``export_root/name`` and re-measure its card.

    The times of finished checkpoints are kept in ``export_root/retrain.json``: a rerun of an
    interrupted retraining with the same overrides skips them.
    """
    export_dir = (export_root / name).resolve()
    shipped = json.loads((SHIPPED / name / CONFIG_NAME).read_text()).get("metrics", {})
    log = export_root / "retrain.json"
    done = json.loads(log.read_text()) if log.is_file() else {}
    key = shlex.join([name, *train_over, "--", *eval_over])
    if key in done and (export_dir / CONFIG_NAME).is_file():
        print(f"{name}: retrained already ({log}), kept", flush=True)
        train_s, eval_s = done[key]
    else:
        train, evaluation = commands(name, export_dir)
        train_s = _run("train.py", [*train, *train_over])
        eval_s = _run("eval.py", [*evaluation, *eval_over]) if evaluation else 0.0
        done[key] = [train_s, eval_s]
        _write(log, json.dumps(done, indent=1))
    metrics = json.loads((export_dir / CONFIG_NAME).read_text())["metrics"]
    return Retrained(name, export_dir, train_s, eval_s, shipped, metrics)


def device(overrides: list[str]) -> str:
    """The machine the jobs ran on, in words: the GPU when a trainer override asks for one."""
    import torch

    gpu = any(o.split("=", 1)[-1] in ("gpu", "ddp", "cuda") for o in overrides)
    if gpu and torch.cuda.is_available():
        return f"{torch.cuda.device_count()}× {torch.cuda.get_device_name(0)}"
    threads = os.environ.get("OMP_NUM_THREADS") or str(torch.get_num_threads())
    return f"CPU ({platform.processor() or platform.machine()}, {threads} threads)"


def table(rows: list[Retrained], where: str, command: str) -> str:
    """The markdown table of ``rows``."""
    lines = [
        "# Retraining the zoo",
        "",
        "Every shipped checkpoint retrained by the training command its `config.json` records,",
        "and its card re-measured by the recorded evaluation (held-out test split of the",
        "checkpoint's data seed; 95 % bootstrap intervals, n examples). Measured with",
        "",
        f"    {command}",
        "",
        f"on {where}. Times are wall-clock seconds of the whole command (start-up, data",
        "generation, training, testing, export; evaluation separately).",
        "",
        "| model | train s | eval s | metric | retrained [95 % interval], n | shipped card |",
        "|---|---:|---:|---|---|---|",
    ]
    for r in rows:
        keys = sorted(headline_metrics(r.metrics))
        for i, k in enumerate(keys):
            head = f"`{r.name}` | {r.train_s:.0f} | {r.eval_s:.0f}" if i == 0 else " | | "
            old = format_metric(r.shipped, k) if k in r.shipped else "—"
            lines.append(f"| {head} | `{k}` | {format_metric(r.metrics, k)} | {old} |")
    total = sum(r.train_s + r.eval_s for r in rows)
    lines += ["", f"Total: {total / 60:.1f} min for {len(rows)} checkpoints.", ""]
    return "\n".join(lines)


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def parse(argv: list[str]) -> argparse.Namespace:
    """The command line: names, where to export, overrides, the table."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("names", nargs="*", help="checkpoints to retrain (default: all shipped)")
    p.add_argument("--export-root", type=Path, default=Path("retrained"))
    p.add_argument("-o", "--override", action="append", default=[], help="to both commands")
    p.add_argument("--train-override", action="append", default=[])
    p.add_argument("--eval-override", action="append", default=[])
    p.add_argument("--table", default="docs/retrain.md", help="'' prints the table only")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """Retrain ``names`` (all shipped by default), print and write the table."""
    argv = sys.argv[1:] if argv is None else argv
    args = parse(argv)
    names = args.names or shipped_names()
    try:
        for n in names:  # every name checked before the first (long) job starts
            commands(n, args.export_root / n)
    except ValueError as e:
        raise SystemExit(f"error: {e}") from None
    train_over = [*args.override, *args.train_override]
    eval_over = [*args.override, *args.eval_override]
    args.export_root.mkdir(parents=True, exist_ok=True)
    command = shlex.join(["python", "recipes/retrain.py", *argv])
    rows: list[Retrained] = []
    for n in names:  # the table is rewritten after every checkpoint: a long run shows progress
        rows.append(retrain(n, args.export_root, train_over, eval_over))
        text = table(rows, device(train_over), command)
        if args.table:
            _write(Path(args.table), text)
    print(text)


if __name__ == "__main__":
    main()
