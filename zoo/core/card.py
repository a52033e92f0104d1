"""The model card (``README.md``) of a checkpoint, built with huggingface_hub's ``ModelCard``.

The YAML metadata is a :class:`huggingface_hub.ModelCardData`: ``library_name: zoo``, tags,
license, and one ``model-index`` entry per headline metric (:class:`huggingface_hub.EvalResult`
with the test data as its dataset, the value, and the 95 % interval and n as metric args), so
the Hub's evaluation widget shows what the card's table shows. :func:`card_metadata` is what a
test compares with ``config.json``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from zoo.core.evaluation import LEVEL, RESAMPLES, Estimate, estimates, format_metric
from zoo.core.registry import get_spec
from zoo.core.version import __version__

if TYPE_CHECKING:
    from huggingface_hub import ModelCardData

__all__ = [
    "LICENSE",
    "TASKS",
    "card_metadata",
    "headline_estimates",
    "headline_metrics",
    "model_card",
]

LICENSE = "mit"
#: Hub task type of each family's model-index results
TASKS = {
    "ansatz": "tabular-regression",
    "attention": "tabular-regression",
    "graphs": "graph-ml",
    "hierarchical": "other",
}


def headline_metrics(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """The headline metric values (``test/acc``): no nested ones (``test/nc_h/layer_07/nc1_median``)
    and no interval companions (``test/acc_ci``, ``test/acc_n``)."""
    companions = {f"{k}_ci" for k in metrics} | {f"{k}_n" for k in metrics}
    return {k: v for k, v in metrics.items() if k.count("/") <= 1 and k not in companions}


def headline_estimates(metrics: Mapping[str, Any]) -> dict[str, Estimate]:
    """The headline metrics that carry an interval, as :class:`Estimate` s."""
    head = headline_metrics(metrics)
    return {k: e for k, e in estimates(metrics).items() if k in head}


def _fmt(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else f"`{v}`"


def _dataset(config: Mapping[str, Any]) -> str:
    data = dict(config.get("data") or {})
    name = data.pop("name", "?")
    seed, n_test = data.get("seed"), data.get("n_test")
    return f"synthetic `{name}` data, seed {seed}, test split of {n_test}"


def card_metadata(config: Mapping[str, Any]) -> ModelCardData:
    """The card's YAML metadata for ``config`` (a checkpoint's ``config.json``)."""
    from huggingface_hub import EvalResult, ModelCardData  # imported on use: hf_api is slow

    name = config["model"]["name"]
    spec = get_spec(name)
    data = dict(config.get("data") or {})
    task = TASKS.get(spec.family, "other")
    results = []
    for key, est in sorted(headline_estimates(config.get("metrics") or {}).items()):
        results.append(
            EvalResult(
                task_type=task,
                task_name=spec.family,
                dataset_type=f"zoo/{data.get('name', '?')}",
                dataset_name=_dataset(config),
                dataset_split="test",
                dataset_config=f"seed={data.get('seed')}",
                dataset_args={k: v for k, v in data.items() if k != "name"},
                metric_type=key.split("/", 1)[-1],
                metric_name=key,
                metric_value=est.value,
                metric_args={"ci95": [est.lo, est.hi], "n": est.n},
            )
        )
    return ModelCardData(
        library_name="zoo",
        license=LICENSE,
        tags=["zoo", "pytorch-lightning", spec.family, name],
        model_name=name,
        eval_results=results or None,
        zoo_version=config.get("zoo_version", __version__),
    )


def model_card(config: Mapping[str, Any], extra: str = "") -> str:
    """Render the model card (``README.md``) of a checkpoint from its config."""
    model, data = dict(config["model"]), dict(config["data"])
    name = model.pop("name")
    spec = get_spec(name)
    metrics = dict(config.get("metrics") or {})
    evaluation = dict(config.get("evaluation") or {})
    lines = [f"# `{name}`", "", spec.description, ""]
    if spec.paper:
        lines += [f"Reproduces: {spec.paper}", ""]
    lines += ["## Usage", "", "```python", "import zoo", "", f'model = zoo.load("{name}")']
    lines += ["datamodule = zoo.create_datamodule(model, seed=1)  # fresh data, same distribution"]
    lines += ["```", "", "## Metrics (measured on the held-out test split)", ""]
    head = headline_metrics(metrics)
    if head:
        # Nested metrics stay in config.json and in the model's own section below.
        lines += [f"| metric | value [{LEVEL:.0%} interval], n |", "|---|---|"]
        lines += [f"| {k} | {format_metric(metrics, k)} |" for k, v in sorted(head.items())]
        nested = [k for k in metrics if k.count("/") > 1 and not k.endswith(("_ci", "_n"))]
        if nested:
            lines += ["", f"{len(nested)} more metrics in `config.json`."]
        lines += [
            "",
            f"Intervals: {LEVEL:.0%} percentile bootstrap over the n test examples "
            f"({RESAMPLES} resamples), from {_dataset(config)}"
            + (f", pooled over data seeds {evaluation['seeds']}" if evaluation.get("seeds") else "")
            + ". The training data never contains a test example (independent streams).",
        ]
    else:
        lines += ["No metrics recorded."]
    lines += ["", "Re-measure on fresh data with:", "", "```"]
    lines += [f"python recipes/eval.py checkpoint={name} data.seed=1", "```", ""]
    if evaluation.get("command"):
        lines += ["The metrics above were measured with:", "", "```", evaluation["command"]]
        lines += ["```", ""]
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
    body = "\n".join(lines)
    from huggingface_hub import ModelCard

    card = ModelCard(f"---\n{card_metadata(config).to_yaml()}\n---\n\n{body}")
    return str(card)
