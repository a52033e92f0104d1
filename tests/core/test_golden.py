"""Golden outputs: each shipped checkpoint on a fixed batch gives its stored outputs."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from tests.golden.make_golden import GOLDEN, golden_outputs, shipped


@pytest.mark.parametrize("name", shipped())
def test_shipped_checkpoint_matches_golden_outputs(name: str) -> None:
    path = GOLDEN / f"{name}.safetensors"
    assert path.is_file(), f"no golden file: run python tests/golden/make_golden.py {name}"
    want = load_file(path)
    got = golden_outputs(name)
    assert len(got) == len(want)
    for i, t in enumerate(got):
        torch.testing.assert_close(t, want[f"out_{i}"], rtol=1e-4, atol=1e-5)
