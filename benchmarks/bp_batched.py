"""Batched exact BP vs a per-example CPU loop (issue 4: the BP validation oracle).

    OMP_NUM_THREADS=1 python benchmarks/bp_batched.py [--batch 4096] [--loop 256]

Times, in one process, the Bayes denoiser ``E[E x | y]`` (upward + downward pass) and the Bayes
classifier ``p(root | leaves)`` on an RHM grammar, (a) batched over ``--batch`` examples and
(b) one example at a time on the CPU (``--loop`` examples, per-example time extrapolated).
Prints ``name: ratio`` lines (per-example loop time / per-example batched time); on a
machine without CUDA only the CPU batched ratio is printed, and it says so.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch

from zoo.hierarchical import bp
from zoo.hierarchical.data import rhm_grammar


def _per_example_seconds(
    fn: Callable[[], object], n: int, device: torch.device, reps: int
) -> float:
    fn()  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize()
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return best / n


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=4096)
    p.add_argument("--loop", type=int, default=256)
    p.add_argument("--symbols", type=int, default=16)
    p.add_argument("--depth", type=int, default=6)
    p.add_argument("--sigma", type=float, default=1.0)
    args = p.parse_args()

    g = torch.Generator().manual_seed(0)
    grammar = rhm_grammar(args.symbols, 2, args.depth, n_rules=4, generator=g)
    leaves, _ = grammar.sample(args.batch, g)
    y = torch.nn.functional.one_hot(leaves, args.symbols).float()
    y = y + args.sigma * torch.randn(y.shape, generator=g)
    print(f"# grammar: {grammar.describe()}; batch {args.batch}, loop over {args.loop}")

    cpu = torch.device("cpu")
    n = args.loop
    loop_den = _per_example_seconds(
        lambda: [bp.bayes_denoiser(grammar, y[i : i + 1], args.sigma) for i in range(n)], n, cpu, 2
    )
    loop_clf = _per_example_seconds(
        lambda: [bp.root_posterior(grammar, leaves[i : i + 1]) for i in range(n)], n, cpu, 2
    )
    devices = [cpu] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    for dev in devices:
        gd, yd, ld = grammar.to(dev), y.to(dev), leaves.to(dev)
        n_b = len(yd)
        den = _per_example_seconds(
            lambda gd=gd, yd=yd: bp.bayes_denoiser(gd, yd, args.sigma), n_b, dev, 3
        )
        clf = _per_example_seconds(lambda gd=gd, ld=ld: bp.root_posterior(gd, ld), n_b, dev, 3)
        print(f"bp_denoiser_batched_{dev.type}_vs_cpu_loop: {loop_den / den:.1f}")
        print(f"bp_root_posterior_batched_{dev.type}_vs_cpu_loop: {loop_clf / clf:.1f}")
        print(
            f"# {dev.type} batched: {den * 1e6:.1f} / {clf * 1e6:.1f} us per example (den / root)"
        )
    print(f"# cpu loop: {loop_den * 1e6:.1f} / {loop_clf * 1e6:.1f} us per example (den / root)")
    if not torch.cuda.is_available():
        print("# no CUDA device here: only the CPU batched ratio was measured")


if __name__ == "__main__":
    main()
