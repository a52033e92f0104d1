"""Log-domain multi-determinant evaluation: 4096 sets, N = 32 particles, K = 16 determinants.

    OMP_NUM_THREADS=1 python benchmarks/slater_logdomain.py [--device cpu|cuda] [--repeats 3]

Compares, in one process on the same inputs and orbital matrices:
- ``logdomain``/``logdomain64``: ``zoo.create("slater")`` (slogdet + max-shifted signed
  log-sum-exp) in float32 / float64;
- ``naive32``/``naive64``: det then sum of the same model's orbital matrices, float32 / float64.
It prints sets/s of each, the throughput ratio, and how many outputs are non-finite or
flushed to zero — the log-domain path must have none. Also a Jastrow ``jastrow`` timing.

``--precision`` instead measures float32 against float64 for the log-domain ``slater``
(K = 1, M = N + 8 Hermite orbitals, random coefficients) and ``backflow`` (random
initialisation) at N = 4 … 32: the fraction of sets whose sign agrees (95 % bootstrap /
Clopper–Pearson interval, n sets) and the median and 99th percentile of |Δ log|f||.
"""

from __future__ import annotations

import argparse
import math
import time

import torch

import zoo
from zoo.core.evaluation import bootstrap, proportion
from zoo.sets import sample_sets


def _time(fn, repeats: int, sync) -> float:
    fn()  # warm-up
    sync()
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync()
        best = min(best, time.perf_counter() - t0)
    return best


def precision(batch: int, ns: list[int]) -> None:
    """float32 vs float64 sign agreement and log error of the determinant ansätze."""
    print(f"threads: {torch.get_num_threads()} batch={batch} positions x_i ~ N(0, N/2)")
    for n in ns:
        g = torch.Generator().manual_seed(n)
        x = sample_sets("line", batch, n, 1, g, std=math.sqrt(n / 2))
        torch.manual_seed(n)
        models = {
            "slater": zoo.create("slater", n_set=n, n_basis=n + 8),
            "backflow": zoo.create("backflow", n_set=n, hidden=max(20, n + 4)),
        }
        for name, model in models.items():
            with torch.no_grad():
                s32, l32 = model.eval().signed_log(x)
                s64, l64 = model.double().signed_log(x.double())
            agree = {"agree": (s32.double() == s64).double()}
            est = bootstrap(agree, {"agree": proportion("agree")})["agree"]
            err = (l32.double() - l64).abs()
            q = torch.quantile(err, torch.tensor([0.5, 0.99], dtype=err.dtype)).tolist()
            print(
                f"{name}_N{n}_sign_agreement: {est.value:.4f} [{est.lo:.4f}, {est.hi:.4f}] "
                f"n={est.n}  abs_log_err median/p99: {q[0]:.1e} / {q[1]:.1e}"
            )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=4096)
    p.add_argument("--n", type=int, default=32)
    p.add_argument("--k", type=int, default=16)
    p.add_argument("--orbitals", choices=["hermite", "mlp"], default="hermite")
    p.add_argument("--device", default="cpu")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--precision", action="store_true", help="float32 vs float64 sweep over N")
    args = p.parse_args()
    if args.precision:
        precision(args.batch, [4, 8, 12, 16, 24, 32])
        return
    dev = torch.device(args.device)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)

    torch.manual_seed(0)
    kw = dict(n_set=args.n, n_dets=args.k, orbitals=args.orbitals, n_basis=args.n + 8)
    model = zoo.create("slater", hidden=2 * args.n, **kw).to(dev).eval()
    jas = zoo.create("jastrow", hidden=2 * args.n, **kw).to(dev).eval()
    with torch.no_grad():
        jas.jastrow.cusp.fill_(1.5)
    g = torch.Generator(device=dev).manual_seed(0)
    x = sample_sets("line", args.batch, args.n, 1, g, dev, std=math.sqrt(args.n / 2))

    with torch.no_grad():
        sign, logabs = model.signed_log(x)
        phi = model.slater.orbital_matrix(x)
        naive32 = torch.linalg.det(phi).sum(-1)
        jl = jas.signed_log(x)[1]
        s64, l64 = model.double().signed_log(x.double())
        naive64 = torch.linalg.det(model.slater.orbital_matrix(x.double())).sum(-1)
        model.float()

        t_log = _time(lambda: model.signed_log(x), args.repeats, sync)
        t_n32 = _time(
            lambda: torch.linalg.det(model.slater.orbital_matrix(x)).sum(-1), args.repeats, sync
        )
        t_jas = _time(lambda: jas.signed_log(x), args.repeats, sync)
        m64, x64 = model.double(), x.double()
        t_log64 = _time(lambda: m64.signed_log(x64), args.repeats, sync)
        t_n64 = _time(
            lambda: torch.linalg.det(m64.slater.orbital_matrix(x64)).sum(-1), args.repeats, sync
        )
        model.float()

    b = args.batch
    bad = lambda v: int((~torch.isfinite(v)).sum() + (v == 0).sum())  # noqa: E731
    print(f"device: {dev} threads: {torch.get_num_threads()} batch={b} N={args.n} K={args.k}")
    print(f"logdomain_nonfinite: {int((~torch.isfinite(logabs)).sum())}")
    print(f"jastrow_nonfinite: {int((~torch.isfinite(jl)).sum())}")
    print(f"naive32_nonfinite_or_zero: {bad(naive32)}")
    print(f"naive64_nonfinite_or_zero: {bad(naive64)}")
    print(f"logdomain64_nonfinite: {int((~torch.isfinite(l64)).sum())}")
    err32 = (logabs.double() - l64).abs().median().item()
    agree32 = (sign.double() == s64).double().mean().item()
    print(f"logdomain32_vs_64_median_abs_log_err: {err32:.2e}  sign_agreement: {agree32:.4f}")
    print(f"log|f| range: [{logabs.min().item():.1f}, {logabs.max().item():.1f}]")
    ok64 = torch.isfinite(naive64) & (naive64 != 0)
    rel = (torch.log(naive64[ok64].abs()) - l64[ok64]).abs()
    q = torch.quantile(rel, torch.tensor([0.5, 0.99], dtype=rel.dtype)).tolist()
    print(f"logdomain64_vs_naive64_abs_log_err median/p99: {q[0]:.1e} / {q[1]:.1e}")
    c = torch.linalg.cond(model.double().slater.scaled_orbitals(x[:256].double())[0]).log10()
    model.float()
    cq = torch.quantile(c.flatten(), torch.tensor([0.5, 0.9], dtype=c.dtype)).tolist()
    print(f"log10 cond(orbital matrix) median/p90: {cq[0]:.1f} / {cq[1]:.1f}")
    print(f"logdomain_sets_per_s: {b / t_log:.0f}")
    print(f"logdomain64_sets_per_s: {b / t_log64:.0f}")
    print(f"jastrow_sets_per_s: {b / t_jas:.0f}")
    print(f"naive32_sets_per_s: {b / t_n32:.0f}")
    print(f"naive64_sets_per_s: {b / t_n64:.0f}")
    print(f"logdomain_vs_naive32: {t_n32 / t_log:.2f}")
    print(f"logdomain_vs_naive64: {t_n64 / t_log:.2f}")


if __name__ == "__main__":
    main()
