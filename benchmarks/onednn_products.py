"""Would the RBM's float32 products run faster through oneDNN than through torch's BLAS?

On AMD CPUs torch's float32 ``matmul`` goes to MKL, which takes its AVX2 code path there
(``MKL_VERBOSE`` names "Intel(R) Architecture processors"; ``rbm_speed.py --isa avx2``
leaves the float32 product's time unchanged), while oneDNN, which PyTorch also ships and
uses for its bfloat16 products and convolutions, runs AVX-512. This script measures, one
thread, round robin over ``--rounds`` rounds:

1. the (100 x 784) @ (784 x 500) product of an MNIST RBM in torch's ``matmul`` and in
   oneDNN's linear kernel (``torch.ops.mkldnn._linear_pointwise``, dense tensors), in
   GFLOP/s;
2. a whole CD-1 epoch of boltzkit's closed-form update (the ``rbm_speed.py`` setting) as
   it is, and with a **prototype** that routes its float32 products to that kernel: the
   sampling products ``v W`` (through a transposed copy of ``W`` made once per update)
   and ``h W^T``, and the fused weight gradient. The prototype is patched in here, not
   part of the library; before timing, its weight gradient is checked against the
   library's on a real batch (float32 rounding apart).

    python benchmarks/onednn_products.py --mnist ../shared/data/mnist.npz
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
from pathlib import Path

import torch
from _machine import PEAK_SHAPE, cpu_name, median_seconds, mnist_file
from rbm_speed import boltzkit_epoch_seconds

from boltzkit.models.rbm import RBM
from boltzkit.objectives.free_energy_gap import FreeEnergyGap

RESULTS = Path(__file__).parent / "results"
CLOSED_FORM = ["train.gradient=closed_form"]


def onednn_linear(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``x @ weight.T`` (``weight`` is ``(out, in)``, as ``nn.Linear``'s) in oneDNN."""
    return torch.ops.mkldnn._linear_pointwise(x.contiguous(), weight, None, "none", [], "")


def prototype_times(self: RBM, x: torch.Tensor, transposed: bool) -> torch.Tensor:
    """``RBM._times`` with float32 products in oneDNN outside autograd."""
    weight = self.weight.detach()
    if torch.is_grad_enabled() or self._product_weight is not None or weight.dtype != torch.float32:
        return LIBRARY_TIMES(self, x, transposed)
    if transposed:  # x W^T: W (D, H) is already (out, in)
        return onednn_linear(x, weight)
    if getattr(self, "_onednn_version", None) != (id(weight), weight._version):
        self._onednn_weight_t = weight.T.contiguous()  # once per update: W changes every step
        self._onednn_version = (id(weight), weight._version)
    return onednn_linear(x, self._onednn_weight_t)


def prototype_weight_gradient(self: FreeEnergyGap, x_data, y_data, x_model, y_model) -> torch.Tensor:
    """The fused ``[x_d; x_m]^T [-y_d / n_d; y_m / n_m]`` as one oneDNN product."""
    if self.product_dtype is not None and self.product_dtype != x_data.dtype:
        return LIBRARY_GRADIENT(self, x_data, y_data, x_model, y_model)
    x = torch.cat([x_data, x_model]).T.contiguous()
    y = torch.cat([y_data * (-1 / len(x_data)), y_model * (1 / len(x_model))]).T.contiguous()
    return onednn_linear(x, y)


LIBRARY_TIMES, LIBRARY_GRADIENT = RBM._times, FreeEnergyGap._weight_gradient


def use_prototype(on: bool) -> None:
    RBM._times = prototype_times if on else LIBRARY_TIMES
    FreeEnergyGap._weight_gradient = prototype_weight_gradient if on else LIBRARY_GRADIENT


def check_gradient() -> float:
    """Largest difference between the library's and the prototype's weight gradient on a
    batch of 100 binary vectors of an RBM with N(0, 0.1) weights, relative to its scale."""
    generator = torch.Generator().manual_seed(0)
    x = (torch.rand(200, 784, generator=generator) < 0.2).float()
    y = torch.rand(200, 500, generator=generator)
    objective = FreeEnergyGap.__new__(FreeEnergyGap)
    objective.product_dtype = None
    library = LIBRARY_GRADIENT(objective, x[:100], y[:100], x[100:], y[100:])
    prototype = prototype_weight_gradient(objective, x[:100], y[:100], x[100:], y[100:])
    return ((library - prototype).abs().max() / library.abs().max()).item()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mnist", default=os.environ.get("BOLTZKIT_MNIST", "../shared/data/mnist.npz"))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", default=str(RESULTS / "onednn_products.json"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    mnist = mnist_file(args.mnist)
    if not (torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")):
        raise SystemExit("this PyTorch has no oneDNN linear kernel (torch.ops.mkldnn._linear_pointwise)")
    mismatch = check_gradient()
    print(f"{cpu_name()}, torch {torch.__version__}, 1 thread; weight gradient, prototype against "
          f"library: largest difference {mismatch:.1e} of its scale")
    if mismatch > 1e-5:
        raise SystemExit("the prototype's gradient differs from the library's: not timing it")

    m, k, n = PEAK_SHAPE
    x, weight = torch.rand(m, k), torch.randn(k, n)
    weight_t = weight.T.contiguous()
    flops = 2 * m * k * n
    boltzkit_epoch_seconds(mnist, ["data.limit=2000"])  # warm-up
    rounds = []
    for index in range(args.rounds):
        row = {"matmul_gflops": flops / median_seconds(lambda: x @ weight, 500, warmup=50) / 1e9,
               "onednn_gflops": flops / median_seconds(lambda: onednn_linear(x, weight_t), 500,
                                                       warmup=50) / 1e9}
        for name, on in (("library", False), ("prototype", True)):
            use_prototype(on)
            row[f"{name}_cd1_seconds"] = boltzkit_epoch_seconds(mnist, CLOSED_FORM)
        use_prototype(False)
        rounds.append(row)
        print(f"round {index + 1}: " + ", ".join(f"{key} {value:.3f}" for key, value in row.items()),
              flush=True)

    summary = {key: statistics.median(r[key] for r in rounds) for key in rounds[0]}
    speedup = statistics.median(r["library_cd1_seconds"] / r["prototype_cd1_seconds"] for r in rounds)
    ratio = summary["onednn_gflops"] / summary["matmul_gflops"]
    print(f"\nfloat32 product: torch matmul {summary['matmul_gflops']:.0f} GFLOP/s, oneDNN "
          f"{summary['onednn_gflops']:.0f} GFLOP/s ({ratio:.2f}x)")
    print(f"CD-1 epoch, closed form: library {summary['library_cd1_seconds']:.3f} s, oneDNN prototype "
          f"{summary['prototype_cd1_seconds']:.3f} s ({speedup:.2f}x faster)")
    RESULTS.mkdir(exist_ok=True)
    Path(args.out).write_text(json.dumps({
        "command": "python benchmarks/onednn_products.py --mnist ../shared/data/mnist.npz"
                   + (f" --rounds {args.rounds}" if args.rounds != 3 else ""),
        "cpu": cpu_name(), "torch": torch.__version__, "threads": 1, "gradient_mismatch": mismatch,
        "rounds": rounds, "median": summary, "cd1_speedup": speedup}, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
