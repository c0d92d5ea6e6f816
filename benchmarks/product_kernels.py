"""Where oneDNN's float32 product beats torch's matmul, by product size: the measurement
behind ``boltzkit.onednn.AUTO_MIN_MULTIPLY_ADDS``, the size from which
``product_kernel: auto`` multiplies in oneDNN.

For each shape ``(rows, K, N)`` (a batch of ``rows`` times a ``K x N`` weight, as an RBM's
``v W`` or a dense layer) the two kernels are timed in turn, ``--rounds`` rounds, each
the median of many calls; reported: the minimum over rounds of each, and torch's time
over oneDNN's (above 1: oneDNN faster). One thread, the CPU named.

    python benchmarks/product_kernels.py
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from _machine import cpu_name, median_seconds

from boltzkit import onednn

RESULTS = Path(__file__).parent / "results"
SHAPES = [(10, 64, 100), (32, 64, 100), (100, 64, 100), (100, 64, 256), (10, 784, 256), (32, 784, 128),
          (100, 196, 256), (100, 784, 64), (100, 784, 128), (20, 784, 500), (32, 784, 256),
          (100, 784, 256), (32, 784, 1000), (100, 784, 500), (100, 500, 1000)]
"""The 8x8 digits presets' products (64 visible), MNIST's (784), and sizes in between."""


def kernel_seconds(rows: int, k: int, n: int) -> dict[str, float]:
    """Median seconds of ``(rows, k) @ (k, n)`` in torch and in oneDNN, about 0.2 s of each."""
    x, weight = torch.rand(rows, k), torch.randn(k, n)
    repeats = max(50, int(2e8 / (rows * k * n)))
    return {"torch": median_seconds(lambda: x @ weight, repeats, warmup=20),
            "onednn": median_seconds(lambda: onednn.times(x, weight), repeats, warmup=20)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", default=str(RESULTS / "product_kernels.json"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    if not onednn.available():
        raise SystemExit("this PyTorch has no oneDNN linear kernel: nothing to compare")
    best: dict[tuple[int, int, int], dict[str, float]] = {}
    for _ in range(args.rounds):
        for shape in SHAPES:  # each shape in turn, every round: a neighbour's burst hits all alike
            times, before = kernel_seconds(*shape), best.get(shape, {})
            best[shape] = {name: min(seconds, before.get(name, seconds)) for name, seconds in times.items()}
    cpu = cpu_name()
    print(f"{cpu}, 1 thread, {args.rounds} rounds; auto picks oneDNN from "
          f"{onednn.AUTO_MIN_MULTIPLY_ADDS / 1e6:g} M multiply-adds\n")
    print("| rows x K x N | multiply-adds (M) | torch (us) | oneDNN (us) | torch / oneDNN | auto |")
    print("| --- | ---: | ---: | ---: | ---: | --- |")
    rows_out = []
    for (rows, k, n), times in best.items():
        macs = rows * k * n
        auto = onednn.kernel_for("auto", torch.empty(k, n), rows=rows)
        ratio = times["torch"] / times["onednn"]
        print(f"| {rows} x {k} x {n} | {macs / 1e6:.2f} | {1e6 * times['torch']:.1f} | "
              f"{1e6 * times['onednn']:.1f} | {ratio:.2f} | {auto} |")
        rows_out.append({"rows": rows, "k": k, "n": n, "multiply_adds": macs, "torch_s": times["torch"],
                         "onednn_s": times["onednn"], "torch_over_onednn": ratio, "auto": auto})
    record = {"command": "python benchmarks/product_kernels.py"
                         + (f" --rounds {args.rounds}" if args.rounds != 3 else "")
                         + (f" --out {args.out}" if args.out != parser.get_default("out") else ""),
              "cpu": cpu, "threads": 1, "auto_min_multiply_adds": onednn.AUTO_MIN_MULTIPLY_ADDS,
              "shapes": rows_out}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(record, indent=2))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
