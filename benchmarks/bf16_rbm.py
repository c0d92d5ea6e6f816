"""What do bfloat16 products cost an RBM's likelihood? ``train.product_dtype`` measured.

Issue 18 allows bfloat16 "where the CPU supports it in hardware, with its accuracy effect
measured on the likelihood". This trains the ``rbm-mnist`` preset (784 x 500, centered
PCD-5, SGD with momentum and a cosine schedule to 0, batch 100; our best RBM recipe) with
the closed-form gradient for ``--epochs`` epochs, on one thread, four times: seeds 0 and 1
with float32 products and with bfloat16 products (``train.product_dtype: bfloat16``: the
sampling products and the fused weight-gradient product in bfloat16 with float32
accumulation; weights, biases, sampling and the optimizer in float32). Each model's test
log-likelihood comes from AIS (the preset's 100 runs and 14,501 inverse temperatures,
always in float32), with its interval and the tool's verdict.

The question is whether ``bf16 - float32`` (same seed, same data order) stands out from
the seed-to-seed spread of float32 runs: the verdict line says which.

    python benchmarks/bf16_rbm.py --mnist ../shared/data/mnist.npz --epochs 20
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402
from _machine import cpu_name, mnist_file  # noqa: E402

from boltzkit.config import load_config  # noqa: E402
from boltzkit.train import Fit  # noqa: E402

RESULTS = Path(__file__).parent / "results"
SEEDS = (0, 1)


def run(mnist: Path, epochs: int, seed: int, dtype: str) -> dict:
    config = load_config("rbm-mnist", [
        "data.name=npz", f"data.path={mnist}", f"train.epochs={epochs}", "threads=1",
        "train.gradient=closed_form", f"train.product_dtype={dtype}", "train.checkpoint_every=0",
        "train.metrics_examples=0", "eval.every=0", f"seed={seed}"])
    session = Fit(config)
    session.run()
    results, _ = session.task.evaluate(session.model, "test", seed=0)
    seconds = [row["seconds"] for row in session.history]
    row = {"seed": seed, "products": dtype, "epoch_seconds": seconds,
           "median_epoch_seconds": statistics.median(seconds),
           "log_likelihood_ais": results["log_likelihood_ais"],
           "interval": [results.get("log_likelihood_ais_low"), results.get("log_likelihood_ais_high")],
           "ais_reliable": results.get("ais_reliable"), "verdict": results.get("ais_verdict")}
    low, high = row["interval"]
    interval = f" [{low:.2f}, {high:.2f}]" if low is not None else ""
    print(f"{dtype:9s} seed {seed}: {row['median_epoch_seconds']:.2f} s / epoch, test log-likelihood "
          f"{row['log_likelihood_ais']:.2f}{interval} ({row['verdict']})", flush=True)
    return row


def verdict(rows: list[dict]) -> dict:
    """``bf16 - float32`` per seed against the float32 seeds' own difference and the AIS
    intervals' half-widths: a cost is reported only where it exceeds both."""
    by = {(r["products"], r["seed"]): r for r in rows}
    differences = [by["bfloat16", s]["log_likelihood_ais"] - by["float32", s]["log_likelihood_ais"]
                   for s in SEEDS]
    seed_spread = abs(by["float32", 0]["log_likelihood_ais"] - by["float32", 1]["log_likelihood_ais"])
    half_widths = [(r["interval"][1] - r["interval"][0]) / 2 for r in rows if r["interval"][0] is not None]
    noise = max([seed_spread, *half_widths])
    mean = statistics.mean(differences)
    speedup = statistics.mean(by["float32", s]["median_epoch_seconds"]
                              / by["bfloat16", s]["median_epoch_seconds"] for s in SEEDS)
    reliable = all(r["ais_reliable"] for r in rows)
    if not reliable:
        text = "no verdict: an AIS estimate is marked unreliable"
    elif mean < -noise:
        text = f"bfloat16 costs {-mean:.2f} nats, more than the noise ({noise:.2f})"
    else:
        text = (f"no likelihood cost visible: bf16 - float32 = {mean:+.2f} nats, within the noise "
                f"({noise:.2f})")
    return {"differences": differences, "mean_difference": mean, "float32_seed_spread": seed_spread,
            "noise": noise, "epoch_speedup": speedup, "text": text}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mnist", default=os.environ.get("BOLTZKIT_MNIST", "../shared/data/mnist.npz"))
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--out", default=str(RESULTS / "bf16_rbm.json"))
    args = parser.parse_args()
    mnist = mnist_file(args.mnist)
    torch.set_num_threads(1)
    print(f"{cpu_name()} ({torch.backends.cpu.get_cpu_capability()}), 1 thread, rbm-mnist for {args.epochs} "
          "epochs, closed-form gradient")
    rows = [run(mnist, args.epochs, seed, dtype) for seed in SEEDS for dtype in ("float32", "bfloat16")]
    summary = verdict(rows)
    print(f"\nbfloat16 epochs are {summary['epoch_speedup']:.2f}x faster; {summary['text']}")
    RESULTS.mkdir(exist_ok=True)
    Path(args.out).write_text(json.dumps({
        "command": f"python benchmarks/bf16_rbm.py --mnist ../shared/data/mnist.npz --epochs {args.epochs}",
        "cpu": cpu_name(), "threads": 1, "rows": rows, "summary": summary}, indent=2, default=str))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
