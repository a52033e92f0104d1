"""``python -m zoo``: the registered models, their data and shipped checkpoints' metrics.

python -m zoo                 # table of every registered model
python -m zoo list --markdown # the same as the Markdown table of README.md
python -m zoo show unet_bp    # its full model + data config (registry defaults)
"""

from __future__ import annotations

import argparse
import json

from rich.console import Console
from rich.table import Table

import zoo
from zoo.core.card import headline_metrics
from zoo.core.checkpoint import CONFIG_NAME, checkpoints_root
from zoo.core.evaluation import format_metric


def list_table() -> Table:
    """A table of every registered model (name, family, data, description, metrics)."""
    table = Table(title=f"zoo {zoo.__version__}: registered models")
    for col in (
        "model",
        "family",
        "data",
        "description",
        "pretrained test metrics [95% interval], n",
    ):
        table.add_column(col)
    for name in zoo.list_models():
        spec = zoo.get_spec(name)
        metrics = _metrics(name)
        keys = sorted(headline_metrics(metrics))[:4]
        shown = "\n".join(
            f"{k.removeprefix('test/')} = {format_metric(metrics, k, 3)}" for k in keys
        )
        table.add_row(name, spec.family, spec.data, spec.description, shown or "—")
    return table


def _metrics(name: str) -> dict:
    path = checkpoints_root() / name / CONFIG_NAME
    return json.loads(path.read_text()).get("metrics", {}) if path.is_file() else {}


def markdown_table() -> str:
    """README's model table: each model with its shipped checkpoint's headline test metrics,
    value [95 % interval], n."""
    lines = [
        "| model | family | data | what it is "
        "| shipped checkpoint: test metric [95% interval], n |",
        "|---|---|---|---|---|",
    ]
    for name in zoo.list_models():
        spec = zoo.get_spec(name)
        metrics = _metrics(name)
        shown = "<br>".join(
            f"{k.removeprefix('test/')} {format_metric(metrics, k)}"
            for k in sorted(headline_metrics(metrics))
        )
        lines.append(
            f"| `{name}` | {spec.family} | `{spec.data}` | {spec.description} | {shown or '—'} |"
        )
    return "\n".join(lines) + "\n"


def show(name: str) -> str:
    """The full model and data config of ``name`` as JSON, with the keys they share."""
    spec = zoo.get_spec(name)
    model, data = spec.configs()
    out = {"model": {"name": name, **model}, "data": data, "shared": spec.shared}
    return json.dumps(out, indent=2)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m zoo", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command")
    p_list = sub.add_parser("list", help="table of the registered models (the default)")
    p_list.add_argument("--markdown", action="store_true", help="as README's Markdown table")
    p_show = sub.add_parser("show", help="a model's full model + data config")
    p_show.add_argument("name")
    args = parser.parse_args(argv)
    console = Console()
    if args.command == "show":
        try:
            console.print_json(show(args.name))
        except ValueError as e:
            parser.exit(2, f"error: {e}\n")
    elif getattr(args, "markdown", False):
        print(markdown_table(), end="")
    else:
        console.print(list_table())


if __name__ == "__main__":
    main()
