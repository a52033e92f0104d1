"""Claim: SBM sampling in O(N + E) — ≥ 100× torch_geometric at N = 20 000, N = 10⁶ in ≤ 2.5 s.

Same process, same graphs: C = 2 balanced blocks, average degree 10 (a = 18, b = 2, i.e.
p = 18/N, q = 2/N), undirected. Prints ``name: value`` lines:

- ``sbm_speedup_vs_pyg_n20000``: time of ``torch_geometric.utils.stochastic_blockmodel_graph``
  (O(N²): it draws a Bernoulli for every node pair) over ``zoo.graphs.data.sample_sbm``;
- ``sbm_n1000000_seconds`` and ``sbm_n1000000_vs_2.5s_budget`` (budget / time, ≥ 1 passes);
- on a CUDA device: ``sbm_n10000000_cuda_ms`` and ``sbm_n10000000_cuda_vs_50ms_budget``.

Times are medians of ``--repeats`` runs after a warm-up (PyG: one run, it takes tens of
seconds and several GB at N = 20 000).

    OMP_NUM_THREADS=1 python benchmarks/sbm_sampling.py [--pyg-n 20000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

from zoo.graphs.data import sample_sbm


def probs(n: int, a: float = 18.0, b: float = 2.0) -> list[list[float]]:
    """(2, 2) edge probabilities p = a/n inside, q = b/n across (mean degree (a + b)/2)."""
    return [[a / n, b / n], [b / n, a / n]]


def timed(fn: Callable[[], object], repeats: int, sync: Callable[[], None] = lambda: None) -> float:
    """Median wall time of ``fn`` (seconds) after one warm-up call."""
    fn()
    sync()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pyg-n", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    from torch_geometric.utils import stochastic_blockmodel_graph

    print(f"threads: {torch.get_num_threads()}")
    n = args.pyg_n
    sizes, p = [n // 2, n - n // 2], probs(n)
    g = torch.Generator().manual_seed(0)
    ours = timed(lambda: sample_sbm(sizes, p, generator=g), args.repeats)
    torch.manual_seed(0)
    t = time.perf_counter()
    ref = stochastic_blockmodel_graph(sizes, p)
    pyg = time.perf_counter() - t
    e_ours = sample_sbm(sizes, p, generator=g).shape[1]
    print(f"edges_pyg_vs_ours_n{n}: {ref.shape[1] / e_ours:.3f}")
    print(f"sbm_speedup_vs_pyg_n{n}: {pyg / ours:.1f}")

    n = 1_000_000
    sizes, p = [n // 2, n // 2], probs(n)
    t_big = timed(lambda: sample_sbm(sizes, p, generator=g), args.repeats)
    print(f"sbm_n{n}_seconds: {t_big:.3f}")
    print(f"sbm_n{n}_vs_2.5s_budget: {2.5 / t_big:.2f}")

    if torch.cuda.is_available():
        n = 10_000_000
        sizes, p = [n // 2, n // 2], probs(n)
        gc = torch.Generator(device="cuda").manual_seed(0)
        t_gpu = timed(
            lambda: sample_sbm(sizes, p, generator=gc, device="cuda"),
            args.repeats,
            torch.cuda.synchronize,
        )
        print(f"sbm_n{n}_cuda_ms: {1e3 * t_gpu:.1f}")
        print(f"sbm_n{n}_cuda_vs_50ms_budget: {0.05 / t_gpu:.2f}")


if __name__ == "__main__":
    main()
