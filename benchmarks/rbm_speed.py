"""Seconds per epoch of CD-1 and PCD-1 on MNIST (784 x 500, batch 100) against scikit-learn.

Robust on a shared, noisy machine: ``--rounds`` rounds, each measuring the machine's
float32 matmul peak (a 100x784 @ 784x500 product, median of many) and then one epoch of
every variant in turn (round robin), so that a neighbour's burst hits all of them alike:

- boltzkit's trainer (the real training loop, its per-epoch ``seconds``), CD-1 and PCD-1
  with plain SGD as scikit-learn uses, each with the autograd surrogate and with the
  closed-form gradient (``train.gradient``), the latter also with its float32 products in
  oneDNN (``train.product_kernel``) and with its products in bfloat16
  (``train.product_dtype``; the likelihood it costs: ``bf16_rbm.py``);
- scikit-learn's ``BernoulliRBM`` (PCD-1, float32 input), one epoch per ``fit``;

then the cost of one epoch's Bernoulli draws with three samplers. Reported: minimum and
median seconds per epoch; efficiency = 5 matmuls x batches x the same round's peak /
epoch time (an update is about five such products: two to sample, one for the negative
statistics, two for the gradient; the bfloat16 rows against the same round's bfloat16
product, the oneDNN rows (``train.product_kernel``) against the same round's float32
product in oneDNN), median over rounds; the same ratio inverted as a
machine-independent figure, "products per update" (5 at the peak); the ratio to the same
round's scikit-learn epoch. The CPU, PyTorch's CPU capability and its BLAS are printed,
and numpy's BLAS (the one scikit-learn runs on: library, kernel architecture) with the
same product timed in the same rounds: where numpy's BLAS is the faster of the two, the
ratio to scikit-learn says so rather than our update. Every library runs on one thread
(scikit-learn's BLAS too, through threadpoolctl).

    python benchmarks/rbm_speed.py --mnist ../shared/data/mnist.npz
    python benchmarks/rbm_speed.py --mnist ../shared/data/mnist.npz --isa avx2   # as on an AVX2-only CPU

``--isa avx2`` restarts the script with PyTorch's kernels, MKL and oneDNN limited to AVX2
(``ATEN_CPU_CAPABILITY``, ``MKL_ENABLE_INSTRUCTIONS``, ``ONEDNN_MAX_CPU_ISA``; numpy's
OpenBLAS is held to its Haswell kernels with ``OPENBLAS_CORETYPE``): the instruction set of
an AVX2 machine on this one, not its caches or clocks. Without bfloat16 instructions the
bfloat16 product falls back to a slow path, so the bfloat16 rows are left out and only
that product is timed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from _machine import cpu_name, matmul_seconds, mnist_file  # noqa: E402
from threadpoolctl import threadpool_info, threadpool_limits

from boltzkit.config import load_config
from boltzkit.train import fit
from boltzkit.units import bernoulli

RESULTS = Path(__file__).parent / "results"
N_VISIBLE, N_HIDDEN, BATCH = 784, 500, 100


def boltzkit_epoch_seconds(mnist: Path, overrides: list[str]) -> float:
    """One epoch's training seconds reported by boltzkit's trainer on all 60,000 images."""
    config = load_config("rbm-mnist", [
        "data.name=npz", f"data.path={mnist}", "data.binarize=stochastic", "data.validation=0",
        "model.centered=false", "train.method=cd", "train.k=1", "train.epochs=1",
        f"train.batch_size={BATCH}", "threads=1",
        "train.optimizer={name: sgd, lr: 0.1}", "train.schedule={name: constant}",
        "train.checkpoint_every=0", "train.metrics_examples=0", "eval.every=0", *overrides,
    ])
    return fit(config).history[-1]["seconds"]


def sklearn_epoch(x: np.ndarray, seed: int) -> float:
    from sklearn.neural_network import BernoulliRBM

    rbm = BernoulliRBM(n_components=N_HIDDEN, learning_rate=0.1, batch_size=BATCH, n_iter=1,
                       random_state=seed)
    start = time.perf_counter()
    rbm.fit(x)
    return time.perf_counter() - start


def sampling_seconds(batches: int) -> dict[str, float]:
    """One epoch's Bernoulli draws (a hidden and a visible batch per update)."""
    generator = torch.Generator().manual_seed(0)
    p_h, p_v = torch.rand(BATCH, N_HIDDEN), torch.rand(BATCH, N_VISIBLE)
    samplers = {
        "boltzkit.units.bernoulli (24-bit integers)": lambda p: bernoulli(p, generator),
        "torch.rand(...) < p": lambda p: (torch.rand(p.shape, generator=generator) < p).float(),
        "torch.bernoulli(p)": lambda p: torch.bernoulli(p, generator=generator),
    }
    result = {}
    for name, draw in samplers.items():
        draw(p_h), draw(p_v)
        start = time.perf_counter()
        for _ in range(batches):
            draw(p_h)
            draw(p_v)
        result[name] = time.perf_counter() - start
    return result


ISA_LIMITS = {"avx2": {"ATEN_CPU_CAPABILITY": "avx2", "MKL_ENABLE_INSTRUCTIONS": "AVX2",
                       "ONEDNN_MAX_CPU_ISA": "AVX2", "OPENBLAS_CORETYPE": "Haswell"}}
"""Environment variables that hold each library to an instruction set (read when the
libraries load, hence the restart)."""


def limit_isa(isa: str | None) -> None:
    """Restart this script with :data:`ISA_LIMITS` ``[isa]`` set, unless they already are."""
    if isa is None or all(os.environ.get(k) == v for k, v in ISA_LIMITS[isa].items()):
        return
    os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, **ISA_LIMITS[isa]})


def machine() -> dict[str, str]:
    cpu = cpu_name()
    settings = torch.__config__.show()
    blas = re.search(r"BLAS_INFO=(\w+)", settings)
    numpy_blas = next((f"{i['internal_api']} {i.get('version') or ''}, "
                       f"{i.get('architecture') or 'kernel not reported'}"
                       for i in threadpool_info() if i["user_api"] == "blas"), "not found")
    return {"cpu": cpu, "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "blas": blas.group(1) if blas else "not reported", "numpy_blas": numpy_blas,
            "torch": torch.__version__, "threads": "1",
            "isa_limits": {k: os.environ[k] for k in ISA_LIMITS["avx2"] if k in os.environ}}


TORCH = "train.product_kernel=torch"
"""The closed-form rows without a named kernel multiply in torch's BLAS (the default, auto,
would pick oneDNN on AMD CPUs)."""
VARIANTS = {
    "boltzkit CD-1, autograd": [],
    "boltzkit CD-1, closed form": ["train.gradient=closed_form", TORCH],
    "boltzkit PCD-1, autograd": ["train.method=pcd"],
    "boltzkit PCD-1, closed form": ["train.method=pcd", "train.gradient=closed_form", TORCH],
    "boltzkit CD-1, closed form, oneDNN": ["train.gradient=closed_form", "train.product_kernel=onednn"],
    "boltzkit PCD-1, closed form, oneDNN": ["train.method=pcd", "train.gradient=closed_form",
                                            "train.product_kernel=onednn"],
    "boltzkit CD-1, closed form, bf16": ["train.gradient=closed_form", "train.product_dtype=bfloat16"],
    "boltzkit PCD-1, closed form, bf16": ["train.method=pcd", "train.gradient=closed_form",
                                          "train.product_dtype=bfloat16"],
}
SKLEARN = "scikit-learn BernoulliRBM (PCD-1)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mnist", default=os.environ.get("BOLTZKIT_MNIST", "../shared/data/mnist.npz"))
    parser.add_argument("--rounds", type=int, default=5, help="round-robin rounds, one epoch per variant")
    parser.add_argument("--out", default=str(RESULTS / "rbm_speed.json"))
    parser.add_argument("--isa", choices=sorted(ISA_LIMITS),
                        help="limit every library to this instruction set")
    args = parser.parse_args()
    limit_isa(args.isa)
    variants = {name: extra for name, extra in VARIANTS.items()
                if not (args.isa and "train.product_dtype=bfloat16" in extra)}
    torch.set_num_threads(1)
    threadpool_limits(1)  # numpy's BLAS, which scikit-learn uses: one thread, as torch
    mnist = mnist_file(args.mnist)
    with np.load(mnist) as archive:
        grey = archive["x_train"].reshape(60000, -1).astype(np.float32) / 255.0
    x = (np.random.default_rng(0).random(grey.shape, dtype=np.float32) < grey).astype(np.float32)
    batches = len(x) // BATCH
    about = machine()
    print(f"{about['cpu']} ({about['cpu_capability']}), torch {about['torch']} with BLAS {about['blas']}; "
          f"numpy (scikit-learn) BLAS {about['numpy_blas']}; 1 thread each")

    boltzkit_epoch_seconds(mnist, ["data.limit=2000"])  # warm-up: imports, first calls
    rounds = []
    for index in range(args.rounds):
        row = {"peak_matmul_seconds": matmul_seconds(500),
               "numpy_matmul_seconds": matmul_seconds(500, "numpy"),
               # the fallback without bfloat16 instructions is ~100x slower: fewer repeats
               "bf16_matmul_seconds": matmul_seconds(20 if args.isa else 500, dtype="bfloat16"),
               "onednn_matmul_seconds": matmul_seconds(500, "onednn")}
        for name, extra in variants.items():
            row[name] = boltzkit_epoch_seconds(mnist, extra)
        row[SKLEARN] = sklearn_epoch(x, index)
        rounds.append(row)
        print(f"round {index + 1}: peak {row['peak_matmul_seconds'] * 1e3:.3f} ms (numpy "
              f"{row['numpy_matmul_seconds'] * 1e3:.3f} ms, bf16 {row['bf16_matmul_seconds'] * 1e3:.3f} ms, "
              f"oneDNN {row['onednn_matmul_seconds'] * 1e3:.3f} ms); "
              + ", ".join(f"{k} {v:.3f} s" for k, v in row.items() if not k.endswith("matmul_seconds")),
              flush=True)

    print(f"\n{'variant':34s} {'min s':>7s} {'median s':>9s} {'% of peak':>10s} {'products/update':>16s} "
          f"{'vs sklearn':>11s}")
    table = []
    for name in [*variants, SKLEARN]:
        seconds = [r[name] for r in rounds]
        extra = VARIANTS.get(name, [])
        peak = ("bf16_matmul_seconds" if "train.product_dtype=bfloat16" in extra
                else "onednn_matmul_seconds" if "train.product_kernel=onednn" in extra
                else "peak_matmul_seconds")
        efficiency = [5 * r[peak] * batches / r[name] for r in rounds]
        versus = [r[SKLEARN] / r[name] for r in rounds]
        entry = {"variant": name, "min_seconds": min(seconds), "median_seconds": statistics.median(seconds),
                 "all_seconds": seconds, "fraction_of_peak": statistics.median(efficiency),
                 "products_per_update": 5 / statistics.median(efficiency),
                 "speedup_vs_sklearn": statistics.median(versus)}
        table.append(entry)
        print(f"{name:34s} {entry['min_seconds']:7.3f} {entry['median_seconds']:9.3f} "
              f"{100 * entry['fraction_of_peak']:9.1f}% {entry['products_per_update']:16.2f} "
              f"{entry['speedup_vs_sklearn']:10.2f}x")
    blas_ratio = statistics.median(r["peak_matmul_seconds"] / r["numpy_matmul_seconds"] for r in rounds)
    print(f"\nthe same product in numpy's BLAS takes {1 / blas_ratio:.2f}x torch's time (median of rounds): "
          f"{'scikit-learn runs on the faster BLAS' if blas_ratio > 1 else 'torch has the faster BLAS'}")
    bf16_ratio = statistics.median(r["bf16_matmul_seconds"] / r["peak_matmul_seconds"] for r in rounds)
    if args.isa:
        print(f"limited to {args.isa}: the bfloat16 product takes {bf16_ratio:.1f}x the float32 one, so the "
              "bfloat16 rows were left out (train.product_dtype warns on such a CPU)")
    cd1 = table[0]["median_seconds"]
    rng = sampling_seconds(batches)
    print("\nBernoulli sampling, one epoch of draws (100x500 + 100x784 per batch):")
    for name, seconds in rng.items():
        print(f"  {name:44s} {seconds:6.3f} s  ({100 * seconds / cd1:4.1f}% of the CD-1 epoch)")

    RESULTS.mkdir(exist_ok=True)
    record = {
        "command": "python benchmarks/rbm_speed.py --mnist ../shared/data/mnist.npz"
                   + (f" --out {args.out}" if args.out != parser.get_default("out") else "")
                   + (f" --isa {args.isa}" if args.isa else ""),
        "machine": about, "rounds": rounds, "batches_per_epoch": batches, "variants": table,
        "sampling_seconds_per_epoch": rng, "torch_over_numpy_matmul_time": blas_ratio,
        "bf16_over_float32_matmul_time": bf16_ratio,
        "targets": {"fraction_of_peak": 0.65, "speedup_vs_sklearn": 1.8},
    }
    Path(args.out).write_text(json.dumps(record, indent=2))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
