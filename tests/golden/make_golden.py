"""Regenerate the golden outputs of every shipped checkpoint (timm-style numerics guard).

    python tests/golden/make_golden.py            # all shipped checkpoints
    python tests/golden/make_golden.py gnn_nc     # one

Run it only when a checkpoint is retrained on purpose; a refactor that changes a model's
numerics must fail ``tests/core/test_golden.py`` instead.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

import zoo
from zoo.core.checkpoint import WEIGHTS_NAME, checkpoints_root

GOLDEN = Path(__file__).resolve().parent
SEED = 12345  # data seed of the golden batch: never a training or test seed


def golden_outputs(name: str) -> list[torch.Tensor]:
    """Outputs of the shipped ``name`` on the first test batch of seed ``SEED`` (4 samples)."""
    model = zoo.load(name)
    dm = zoo.create_datamodule(model, seed=SEED, n_test=4, batch_size=4, device="cpu")
    dm.setup("test")
    batch = next(iter(dm.test_dataloader()))
    # One thread: deep nets (gnn_nc has 32 layers) amplify the float reordering that
    # multi-threaded reductions bring, and the golden values must not depend on the machine.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.no_grad():
            out = model.predict_step(batch, 0)
    finally:
        torch.set_num_threads(threads)
    return [t for t in torch.utils._pytree.tree_leaves(out) if isinstance(t, torch.Tensor)]


def shipped() -> list[str]:
    return sorted(p.name for p in checkpoints_root().iterdir() if (p / WEIGHTS_NAME).is_file())


def main(names: list[str]) -> None:
    for name in names or shipped():
        outs = golden_outputs(name)
        save_file(
            {f"out_{i}": t.contiguous() for i, t in enumerate(outs)}, GOLDEN / f"{name}.safetensors"
        )
        print(f"{name}: {len(outs)} tensors")


if __name__ == "__main__":
    main(sys.argv[1:])
