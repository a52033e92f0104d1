"""Exact BP: sparse (gather over rules) vs dense ψ vs a per-example loop, in one process.

    OMP_NUM_THREADS=1 python benchmarks/bp_batched.py [--batch 4096] [--loop 256]

On an RHM grammar (S = 8 symbols, 2 rules, branching 2, depth 4 by default) times the Bayes
classifier ``p(root | leaves)`` and the leaf posteriors ``p(x_i | y)`` (upward + downward
pass, Gaussian evidence) of ``--batch`` examples (a) on the sparse path (rules gathered; the
root posterior of hard leaves is the table look-up :func:`zoo.hierarchical.bp.parse`),
(b) on the dense path (the (B, n, S^m) outer product times ψᵀ) and (c) one example at a time
(sparse path, ``--loop`` examples, per-example time extrapolated). Then it times the sparse
path on a grammar whose dense ψ is out of reach (S = 32, 8 rules, branching 3), where the
dense outer product alone would need the printed memory. Prints ``name: ratio`` lines; CUDA
lines are added when a GPU is present.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch

from zoo.hierarchical import bp
from zoo.hierarchical.data import Grammar, rhm_grammar


def _seconds(fn: Callable[[], object], device: torch.device, reps: int) -> float:
    """Best wall time of ``reps`` calls after a warm-up."""
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return best


def _data(grammar: Grammar, batch: int, sigma: float) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    leaves, _ = grammar.sample(batch, g)
    y = torch.nn.functional.one_hot(leaves, grammar.n_symbols).float()
    y = y + sigma * torch.randn(y.shape, generator=g)
    return leaves, bp.gaussian_log_evidence(y.double(), sigma)


def _batched(
    grammar: Grammar, leaves: torch.Tensor, log_ev: torch.Tensor, dev: torch.device, reps: int
) -> dict[tuple[str, str], float]:
    """Seconds per example of root and leaf posteriors on each path, batched."""
    out = {}
    for m in ("sparse", "dense"):
        out["root", m] = _seconds(lambda m=m: bp.root_posterior(grammar, leaves, m), dev, reps)
        out["leaf", m] = _seconds(lambda m=m: bp.leaf_posterior(grammar, log_ev, m), dev, reps)
    return {k: v / len(leaves) for k, v in out.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=4096)
    p.add_argument("--loop", type=int, default=256)
    p.add_argument("--symbols", type=int, default=8)
    p.add_argument("--rules", type=int, default=2)
    p.add_argument("--depth", type=int, default=4)
    p.add_argument("--sigma", type=float, default=1.0)
    p.add_argument("--reps", type=int, default=5)
    args = p.parse_args()

    grammar = rhm_grammar(
        args.symbols, 2, args.depth, n_rules=args.rules, generator=torch.Generator().manual_seed(0)
    )
    leaves, log_ev = _data(grammar, args.batch, args.sigma)
    print(f"# grammar: {grammar.describe()}; batch {args.batch}, loop over {args.loop}")
    cpu = torch.device("cpu")
    n = args.loop
    loop = {
        "root": _seconds(
            lambda: [bp.root_posterior(grammar, leaves[i : i + 1]) for i in range(n)], cpu, 2
        )
        / n,
        "leaf": _seconds(
            lambda: [bp.leaf_posterior(grammar, log_ev[i : i + 1]) for i in range(n)], cpu, 2
        )
        / n,
    }
    devices = [cpu] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    for dev in devices:
        times = _batched(grammar.to(dev), leaves.to(dev), log_ev.to(dev), dev, args.reps)
        for task, name in (("root", "root_posterior"), ("leaf", "leaf_posterior")):
            ratio = times[task, "dense"] / times[task, "sparse"]
            print(f"bp_{name}_sparse_vs_dense_{dev.type}: {ratio:.1f}")
        for task, name in (("root", "root_posterior"), ("leaf", "leaf_posterior")):
            ratio = loop[task] / times[task, "sparse"]
            print(f"bp_{name}_batched_{dev.type}_vs_cpu_loop: {ratio:.1f}")
        print(
            f"# {dev.type} us per example, root / leaf: sparse {times['root', 'sparse'] * 1e6:.2f}"
            f" / {times['leaf', 'sparse'] * 1e6:.2f}, dense {times['root', 'dense'] * 1e6:.2f} / "
            f"{times['leaf', 'dense'] * 1e6:.2f}; cpu loop {loop['root'] * 1e6:.1f} / "
            f"{loop['leaf'] * 1e6:.1f}"
        )

    big = rhm_grammar(32, 3, 3, n_rules=8, generator=torch.Generator().manual_seed(0))
    b_leaves, b_ev = _data(big, args.batch, args.sigma)
    dense_gb = args.batch * 9 * 32**3 * 8 / 1e9  # (B, 9 nodes, S^m) float64 at the lowest level
    t_root = _seconds(lambda: bp.root_posterior(big, b_leaves), torch.device("cpu"), 2)
    t_leaf = _seconds(lambda: bp.leaf_posterior(big, b_ev), torch.device("cpu"), 2)
    print(f"# {big.describe()}")
    print(
        f"# sparse path, batch {args.batch}: root_posterior {t_root:.3f} s, leaf_posterior "
        f"{t_leaf:.3f} s; the dense outer product would hold {dense_gb:.0f} GB"
    )
    if not torch.cuda.is_available():
        print("# no CUDA device here: CPU lines only")


if __name__ == "__main__":
    main()
