"""Every family's update, and AIS per inverse temperature, as a fraction of the matmul peak.

Issue 18 asks that the deep families be measured the way the RBM is (``rbm_speed.py``):
the time of one update set against what the machine's float32 matrix products could do
in the same round. Here that is general: ``torch.utils.flop_counter.FlopCounterMode``
counts the floating-point operations of the products and convolutions in one update
(forward, backward, sampling and mean field alike), and

    fraction of peak = (update FLOPs / peak FLOP/s) / update seconds

with the peak measured, in every round, on a float32 (100 x 784) @ (784 x 500) product.
The rest of an update (element-wise work, random numbers, the optimizer, Python) is what
keeps the fraction below 1. A convolutional model is also set against a convolutional
peak, the FLOP rate of the DCGAN's largest convolution run alone (forward, the
discriminator's 64 -> 128 channels, 4x4, stride 2, on 14x14 maps of a batch of 128: real
and generated examples together), timed in the same rounds: oneDNN runs convolutions
faster than the small reference GEMM, so against that the DCGAN looks better than the
machine allows.

Rows: each family's MNIST preset as users run it (one update on a batch of the preset's
size, one thread): the RBM (centered PCD-5, and CD-1 with the closed-form gradient, the
``rbm_speed.py`` setting, and both with bfloat16 products, ``train.product_dtype``, set
against the same round's bfloat16 product; CD-1 with its float32 products in oneDNN,
``train.product_kernel``, set against the same round's product in oneDNN), the DBM's joint
update (mean field, chains, gradient: autograd, the closed form ``train.gradient``, and the
closed form in oneDNN), the first layer of the stacked denoising autoencoder, the VAE
(IWAE, k = 5) and the sigmoid MLP that ``mnist_dbn.py`` fine-tunes (each also with its
``nn.Linear`` layers in oneDNN, ``train.product_kernel``), and the DCGAN (one
discriminator and one generator step); then AIS, one inverse temperature of 100 runs, for
the 784-500 RBM and the 784-500-1000 DBM, with their products in torch's matmul and in
oneDNN (``eval.product_kernel``; FLOPs counted in torch's). Round robin over ``--rounds``
rounds; minimum and median milliseconds are reported, the fraction from the median.

    python benchmarks/family_speed.py --mnist ../shared/data/mnist.npz
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402
from _machine import PEAK_SHAPE, cpu_name, matmul_seconds, median_seconds, mnist_file  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from boltzkit.config import load_config  # noqa: E402
from boltzkit.estimate.ais import ais_log_partition  # noqa: E402
from boltzkit.estimate.dbm import dbm_ais_log_partition  # noqa: E402
from boltzkit.train import Fit  # noqa: E402

RESULTS = Path(__file__).parent / "results"
ONEDNN = "train.product_kernel=onednn"
"""Rows with this override are set against the same round's float32 product in oneDNN."""
TORCH = "train.product_kernel=torch"
"""The rows without a named kernel multiply in torch's BLAS (the default, auto, would pick
oneDNN on AMD CPUs for a closed form and for nn.Linear layers)."""
DBN_MLP = ["model.hidden_layers=[500, 500, 2000]", "model.activation=sigmoid", "train.batch_size=32",
           "train.optimizer={name: sgd, lr: 0.05, momentum: 0.9}"]
"""The classifier that mnist_dbn.py fine-tunes (dropout as mlp-digits: 0.2)."""
UPDATES = {
    "RBM 784-500, centered PCD-5 (rbm-mnist)": ("rbm-mnist", []),
    "RBM 784-500, CD-1, closed form": ("rbm-mnist", ["model.centered=false", "train.method=cd", "train.k=1",
                                                      "train.gradient=closed_form", TORCH]),
    "RBM 784-500, CD-1, closed form, bf16": ("rbm-mnist", [
        "model.centered=false", "train.method=cd", "train.k=1", "train.gradient=closed_form",
        "train.product_dtype=bfloat16"]),
    "RBM 784-500, centered PCD-5, closed form, bf16": ("rbm-mnist", [
        "train.gradient=closed_form", "train.product_dtype=bfloat16"]),
    "RBM 784-500, CD-1, closed form, oneDNN": ("rbm-mnist", [
        "model.centered=false", "train.method=cd", "train.k=1", "train.gradient=closed_form",
        ONEDNN]),
    "DBM 784-500-1000, joint update, autograd": ("dbm-mnist", ["train.gradient=autograd"]),
    "DBM 784-500-1000, joint update, closed form": ("dbm-mnist", [TORCH]),
    "DBM 784-500-1000, joint update, closed form, oneDNN": ("dbm-mnist", [ONEDNN]),
    "denoising AE 784-1000, layer 1 (sda-mnist)": ("sda-mnist", [TORCH]),
    "denoising AE 784-1000, layer 1, oneDNN": ("sda-mnist", [ONEDNN]),
    "VAE 784-200-200-50, IWAE k=5 (vae-mnist)": ("vae-mnist", [TORCH]),
    "VAE 784-200-200-50, IWAE k=5, oneDNN": ("vae-mnist", [ONEDNN]),
    "MLP 784-500-500-2000-10, sigmoid (DBN fine-tuning)": ("mlp-digits", [*DBN_MLP, TORCH]),
    "MLP 784-500-500-2000-10, sigmoid, oneDNN": ("mlp-digits", [*DBN_MLP, ONEDNN]),
    "DCGAN, D and G steps (gan-mnist)": ("gan-mnist", [TORCH]),
}
CONVOLUTIONAL = ("gan-mnist",)
"""Presets whose rows are also set against the convolutional peak."""
AIS_RUNS, AIS_BETAS = 100, 200
CONV_PEAK = {"batch": 128, "channels": (64, 128), "size": 14, "kernel": 4, "stride": 2, "padding": 1}
"""The convolution whose FLOP rate is the convolutional peak (the DCGAN discriminator's
second layer on the preset's batch of 64 real and 64 generated examples)."""


def conv_peak() -> tuple[Callable[[], object], int]:
    """The convolutional peak's call (:data:`CONV_PEAK`, forward, no gradient) and its FLOPs."""
    c = CONV_PEAK
    conv = torch.nn.Conv2d(*c["channels"], c["kernel"], stride=c["stride"], padding=c["padding"])
    x = torch.randn(c["batch"], c["channels"][0], c["size"], c["size"])

    def call() -> object:
        with torch.no_grad():
            return conv(x)

    return call, flops(call)


def flops(fn: Callable[[], object]) -> int:
    """Floating-point operations of the products and convolutions ``fn`` runs."""
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def update_of(preset: str, overrides: list[str], mnist: Path) -> tuple[Callable[[], float], int, object]:
    """One training update of ``preset`` on a fixed batch (after two warm-up updates, which
    also start persistent chains), its batch size, and the model."""
    config = load_config(preset, ["data.name=npz", f"data.path={mnist}", "data.limit=2000", "threads=1",
                                  "train.checkpoint_every=0", *overrides])
    session = Fit(config)
    model, step = session.model, session.train_step()
    size = config.train.batch_size
    batch = session.task.batch(torch.arange(size), torch.Generator().manual_seed(0))
    for _ in range(2):
        step(model, batch)
    return (lambda: step(model, batch)), size, model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mnist", default=os.environ.get("BOLTZKIT_MNIST", "../shared/data/mnist.npz"))
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=20, help="timed calls per row per round")
    parser.add_argument("--out", default=str(RESULTS / "family_speed.json"))
    args = parser.parse_args()
    mnist = mnist_file(args.mnist)
    torch.set_num_threads(1)
    torch.manual_seed(0)

    rows: dict[str, dict] = {}
    models = {}
    for name, (preset, overrides) in UPDATES.items():
        update, size, model = update_of(preset, overrides, mnist)
        in_onednn = ONEDNN in overrides
        # the FLOP counter does not see oneDNN's linear operator: count the same update's
        # products in torch's kernel
        counted = update_of(preset, [TORCH if o == ONEDNN else o for o in overrides], mnist)[0] if in_onednn \
            else update
        rows[name] = {"call": update, "batch": size, "flops": flops(counted), "unit": "update",
                      "peak": ("bf16_peak_seconds" if "train.product_dtype=bfloat16" in overrides
                               else "onednn_peak_seconds" if in_onednn else "peak_seconds"),
                      "conv_peak": preset in CONVOLUTIONAL}
        models.setdefault(preset, model)  # AIS runs on each preset's first model
    rbm, dbm = models["rbm-mnist"], models["dbm-mnist"]
    generator = torch.Generator().manual_seed(0)
    for kernel in ("torch", "onednn"):
        suffix = ", oneDNN" if kernel == "onednn" else ""
        for name, run in {
            f"AIS on the RBM, one beta x 100 runs{suffix}": lambda kernel=kernel: ais_log_partition(
                rbm, betas=AIS_BETAS, runs=AIS_RUNS, generator=generator, product_kernel=kernel),
            f"AIS on the DBM, one beta x 100 runs{suffix}": lambda kernel=kernel: dbm_ais_log_partition(
                dbm, betas=AIS_BETAS, runs=AIS_RUNS, generator=generator, product_kernel=kernel),
        }.items():
            # a whole AIS of AIS_BETAS steps per call, reported per inverse temperature; the
            # oneDNN rows' FLOPs are the torch rows' (the counter does not see oneDNN)
            counted = rows[name.removesuffix(suffix)]["flops"] if suffix else flops(run) / (AIS_BETAS - 1)
            rows[name] = {"call": run, "batch": AIS_RUNS, "flops": counted, "unit": "beta",
                          "per_call": AIS_BETAS - 1,
                          "peak": "onednn_peak_seconds" if suffix else "peak_seconds"}

    conv_call, conv_flops = conv_peak()
    rounds = []
    for index in range(args.rounds):
        record = {"peak_seconds": matmul_seconds(500),
                  "bf16_peak_seconds": matmul_seconds(500, dtype="bfloat16"),
                  "onednn_peak_seconds": matmul_seconds(500, library="onednn"),
                  "conv_peak_seconds": median_seconds(conv_call, 50, warmup=5)}
        for name, row in rows.items():
            repeats = 2 if row["unit"] == "beta" else args.repeats
            record[name] = median_seconds(row["call"], repeats) / row.get("per_call", 1)
        rounds.append(record)
        print(f"round {index + 1}: peak {record['peak_seconds'] * 1e3:.3f} ms", flush=True)

    m, k, n = PEAK_SHAPE
    peak_flops = 2 * m * k * n
    conv_rate = statistics.median(conv_flops / r["conv_peak_seconds"] for r in rounds)
    print(f"\n{cpu_name()}, torch {torch.__version__} ({torch.backends.cpu.get_cpu_capability()}), 1 thread; "
          f"peak: float32 {m}x{k} @ {k}x{n}, median "
          f"{statistics.median(r['peak_seconds'] for r in rounds) * 1e3:.3f} ms (bfloat16: "
          f"{statistics.median(r['bf16_peak_seconds'] for r in rounds) * 1e3:.3f} ms, float32 in oneDNN: "
          f"{statistics.median(r['onednn_peak_seconds'] for r in rounds) * 1e3:.3f} ms), "
          f"{peak_flops / statistics.median(r['peak_seconds'] for r in rounds) / 1e9:.1f} GFLOP/s; "
          f"convolutional peak {conv_rate / 1e9:.1f} GFLOP/s")
    print(f"{'row':46s} {'batch':>5s} {'min ms':>8s} {'median ms':>10s} {'GFLOP':>7s} {'% of peak':>10s} "
          f"{'% of conv peak':>15s}")
    table = []
    for name, row in rows.items():
        seconds = [r[name] for r in rounds]
        peak = row.get("peak", "peak_seconds")  # bf16 and oneDNN rows against their own product
        fraction = statistics.median(row["flops"] / peak_flops * r[peak] / r[name] for r in rounds)
        conv_fraction = (statistics.median(row["flops"] / conv_flops * r["conv_peak_seconds"] / r[name]
                                           for r in rounds) if row.get("conv_peak") else None)
        entry = {"row": name, "unit": row["unit"], "batch": row["batch"], "flops": row["flops"],
                 "min_ms": 1e3 * min(seconds), "median_ms": 1e3 * statistics.median(seconds),
                 "fraction_of_peak": fraction, "fraction_of_conv_peak": conv_fraction,
                 "all_ms": [1e3 * s for s in seconds]}
        table.append(entry)
        print(f"{name:46s} {row['batch']:5d} {entry['min_ms']:8.3f} {entry['median_ms']:10.3f} "
              f"{row['flops'] / 1e9:7.3f} {100 * fraction:9.1f}% "
              + (f"{100 * conv_fraction:14.1f}%" if conv_fraction is not None else ""))

    RESULTS.mkdir(exist_ok=True)
    Path(args.out).write_text(json.dumps({
        "command": "python benchmarks/family_speed.py --mnist ../shared/data/mnist.npz"
                   + (f" --rounds {args.rounds}" if args.rounds != 5 else "")
                   + (f" --out {args.out}" if args.out != parser.get_default("out") else ""),
        "cpu": cpu_name(), "torch": torch.__version__, "threads": 1, "peak_shape": PEAK_SHAPE,
        "peak_seconds": [r["peak_seconds"] for r in rounds],
        "bf16_peak_seconds": [r["bf16_peak_seconds"] for r in rounds],
        "onednn_peak_seconds": [r["onednn_peak_seconds"] for r in rounds],
        "conv_peak": {**CONV_PEAK, "flops": conv_flops,
                      "seconds": [r["conv_peak_seconds"] for r in rounds]},
        "rows": table}, indent=2))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
