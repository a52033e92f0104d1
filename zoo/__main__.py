"""``python -m zoo``: the registered models, their data and shipped checkpoints' metrics."""

from __future__ import annotations

import json

from rich.console import Console
from rich.table import Table

import zoo
from zoo.core.checkpoint import CONFIG_NAME, checkpoints_root, headline_metrics


def main() -> None:
    """Print a table of every registered model (name, family, data, description, metrics)."""
    table = Table(title=f"zoo {zoo.__version__}: registered models")
    for col in ("model", "family", "data", "description", "pretrained test metrics"):
        table.add_column(col)
    for name in zoo.list_models():
        spec = zoo.get_spec(name)
        cfg_path = checkpoints_root() / name / CONFIG_NAME
        metrics = json.loads(cfg_path.read_text()).get("metrics", {}) if cfg_path.is_file() else {}
        items = sorted(headline_metrics(metrics).items())[:4]
        shown = ", ".join(f"{k.removeprefix('test/')}={v:.3g}" for k, v in items)
        table.add_row(
            name, spec.cls.__module__.split(".")[1], spec.data, spec.description, shown or "—"
        )
    Console().print(table)


if __name__ == "__main__":
    main()
