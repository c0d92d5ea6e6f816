"""Does a bfloat16 product cost an RBM likelihood? A probe for issue 18, not a feature.

Issue 18 allows bfloat16 "where the CPU supports it in hardware, with its accuracy effect
measured on the likelihood". boltzkit has no bfloat16 path yet; this script measures what
one would buy before it is built. It trains the ``rbm_speed.py`` setting (784 x 500,
CD-1, batch 100, SGD 0.1, closed-form gradient, one thread) three times:

- float32, seed 0 and seed 1 (the second shows how far two float32 runs land apart);
- seed 0 with the three sampling products of each update (``v W`` of the data and of the
  negatives, ``h W^T``) in bfloat16 with float32 results: the model's ``hidden_input`` and
  ``visible_input`` are replaced on the trained instance; the two gradient products and
  all weights, biases and optimizer state stay float32;

then reports seconds per epoch and the test log-likelihood by AIS (100 runs, 14,501
inverse temperatures, in float32 on the trained weights, with its interval).

    python benchmarks/bf16_rbm.py --mnist ../shared/data/mnist.npz --epochs 5
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402
from _machine import cpu_name, mnist_file  # noqa: E402

from boltzkit.config import load_config  # noqa: E402
from boltzkit.train import Fit  # noqa: E402

RESULTS = Path(__file__).parent / "results"


def bfloat16_products(model) -> None:
    """Route the model's two sampling products through bfloat16 (float32 in and out)."""
    def hidden_input(v):
        return (model.visible.scaled(v).bfloat16() @ model.weight.detach().bfloat16()).float()

    def visible_input(h):
        return (model.hidden.scaled(h).bfloat16() @ model.weight.detach().T.bfloat16()).float()

    model.hidden_input, model.visible_input = hidden_input, visible_input


def run(mnist: Path, epochs: int, seed: int, bfloat16: bool) -> dict:
    config = load_config("rbm-mnist", [
        "data.name=npz", f"data.path={mnist}", "data.binarize=stochastic", "model.centered=false",
        "train.method=cd", "train.k=1", f"train.epochs={epochs}", "train.batch_size=100", "threads=1",
        "train.optimizer={name: sgd, lr: 0.1}", "train.schedule={name: constant}",
        "train.gradient=closed_form", "train.checkpoint_every=0", "train.metrics_examples=0",
        "eval.every=0", f"seed={seed}"])
    torch.manual_seed(seed)
    session = Fit(config)
    if bfloat16:
        bfloat16_products(session.model)
    session.run()
    if bfloat16:  # evaluate the weights with the model's own float32 products
        del session.model.hidden_input, session.model.visible_input
    results, _ = session.task.evaluate(session.model, "test", seed=0)
    seconds = [row["seconds"] for row in session.history]
    return {"seed": seed, "bfloat16": bfloat16, "epoch_seconds": seconds,
            "median_epoch_seconds": sorted(seconds)[len(seconds) // 2],
            "log_likelihood_ais": results["log_likelihood_ais"],
            "interval": [results.get("log_likelihood_ais_low"), results.get("log_likelihood_ais_high")],
            "ais_reliable": results.get("ais_reliable"), "verdict": results.get("ais_verdict")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mnist", default=os.environ.get("BOLTZKIT_MNIST", "../shared/data/mnist.npz"))
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--out", default=str(RESULTS / "bf16_rbm.json"))
    args = parser.parse_args()
    mnist = mnist_file(args.mnist)
    torch.set_num_threads(1)
    rows = [run(mnist, args.epochs, seed, bf16) for seed, bf16 in ((0, False), (1, False), (0, True))]
    print(f"{cpu_name()} ({torch.backends.cpu.get_cpu_capability()}), 1 thread, {args.epochs} epochs of CD-1")
    print(f"{'products':28s} {'seed':>4s} {'s / epoch':>10s} {'test log-likelihood (AIS)':>28s}")
    for row in rows:
        low, high = row["interval"]
        interval = f" [{low:.2f}, {high:.2f}]" if low is not None else ""
        print(f"{'bfloat16 sampling' if row['bfloat16'] else 'float32':28s} {row['seed']:4d} "
              f"{row['median_epoch_seconds']:10.3f} {row['log_likelihood_ais']:12.2f}{interval}")
    RESULTS.mkdir(exist_ok=True)
    Path(args.out).write_text(json.dumps({
        "command": f"python benchmarks/bf16_rbm.py --mnist ../shared/data/mnist.npz --epochs {args.epochs}",
        "cpu": cpu_name(), "threads": 1, "rows": rows}, indent=2, default=str))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
