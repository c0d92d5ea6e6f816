"""The classic speed-ups of deep-net training, shown on a deep MLP on MNIST.

A 10-hidden-layer MLP (128 units each) on 18,000 MNIST training images (2,000 held out),
SGD with momentum 0.9 at a constant rate 0.01, batch 64, 6 epochs, trained with and
without each speed-up: the initialisation (naive N(0, 1) or U(-0.05, 0.05) against
Glorot/He/LeCun matched to the activation), the activation (sigmoid/tanh against
ReLU/ELU/SELU/GELU), batch normalisation, gradient clipping, and a first layer taken from
an RBM trained on the same images (``model.pretrained``). For each: the updates until
the validation accuracy first reaches 90 % (epoch granularity), the final accuracy, and
the gradient norms of the first and last weight matrices in the first epoch
(``train.log_grad_norms``), which show gradients vanishing or exploding.

    python benchmarks/speedups.py --mnist ../shared/data/mnist.npz

Writes ``benchmarks/results/speedups.json``, ``speedups.png`` (accuracy curves) and
``speedups_gradients.png``. One thread; losses and accuracies, not times, are compared.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402

from boltzkit import load_config  # noqa: E402
from boltzkit.errors import DivergenceError  # noqa: E402
from boltzkit.plots import plt  # noqa: E402
from boltzkit.train import train  # noqa: E402

RESULTS = Path(__file__).parent / "results"
TARGET = 0.90
DEPTH, WIDTH = 10, 128

VARIANTS: dict[str, list[str]] = {
    "sigmoid, N(0,1) init": ["model.activation=sigmoid", "model.init=normal"],
    "sigmoid, U(-0.05,0.05) init": ["model.activation=sigmoid", "model.init=small"],
    "sigmoid, Glorot init": ["model.activation=sigmoid", "model.init=glorot"],
    "tanh, Glorot init": ["model.activation=tanh", "model.init=glorot"],
    "ReLU, U(-0.05,0.05) init": ["model.activation=relu", "model.init=small"],
    "ReLU, N(0,1) init": ["model.activation=relu", "model.init=normal"],
    "ReLU, N(0,1) init + clip norm 1": ["model.activation=relu", "model.init=normal",
                                        "train.clip_grad_norm=1.0"],
    "ReLU, He init": ["model.activation=relu", "model.init=he"],
    "ELU, He init": ["model.activation=elu", "model.init=he"],
    "SELU, LeCun init": ["model.activation=selu", "model.init=lecun"],
    "GELU, He init": ["model.activation=gelu", "model.init=he"],
    "sigmoid, Glorot + batch norm": ["model.activation=sigmoid", "model.init=glorot",
                                     "model.batch_norm=true"],
    "ReLU, He + batch norm": ["model.activation=relu", "model.init=he", "model.batch_norm=true"],
    "sigmoid, Glorot + RBM first layer": ["model.activation=sigmoid", "model.init=glorot", "PRETRAINED"],
}


def base(mnist: Path, seed: int, examples: int, epochs: int) -> list[str]:
    return ["data.name=npz", f"data.path={mnist}", "data.binarize=none", f"data.limit={examples}",
            "data.validation=0.1", f"seed={seed}", "threads=1", f"train.epochs={epochs}",
            "train.batch_size=64",
            "train.optimizer={name: sgd, lr: 0.01, momentum: 0.9}", "train.schedule={name: constant}",
            "train.checkpoint_every=0", "train.metrics_examples=2000", "train.log_grad_norms=true"]


def rbm_run(mnist: Path, seed: int, examples: int, folder: Path) -> Path:
    """An RBM with the MLP's first-layer width, trained on the same images (CD-1, 3 epochs)."""
    config = load_config("rbm-mnist", [
        "data.name=npz", f"data.path={mnist}", "data.binarize=stochastic", f"data.limit={examples}",
        "data.validation=0.1", f"seed={seed}", "threads=1", f"model.n_hidden={WIDTH}", "train.method=cd",
        "train.k=1", "train.epochs=3", "train.batch_size=64", "train.checkpoint_every=0", "eval.every=0",
        "train.optimizer={name: sgd, lr: 0.05, momentum: 0.9}", "train.schedule={name: constant}"])
    out = folder / f"rbm-{seed}"
    train(config, out, progress=False)
    return out


def run_variant(overrides: list[str], common: list[str], pretrained: Path | None) -> dict:
    extra = [o for o in overrides if o != "PRETRAINED"]
    if "PRETRAINED" in overrides:
        extra.append(f"model.pretrained={pretrained}")
    config = load_config(None, [*common, f"model={{type: mlp, hidden_layers: {[WIDTH] * DEPTH}}}", *extra])
    with tempfile.TemporaryDirectory() as tmp:
        try:
            history = train(config, Path(tmp) / "run", progress=False).history
        except DivergenceError as err:
            return {"diverged": str(err)[:200]}
    steps_per_epoch = history[0]["step"]
    reached = next((row["epoch"] for row in history if row["val_accuracy"] >= TARGET), None)
    weights = [k for k in history[0] if k.startswith("grad_norm/") and k.endswith("weight")]
    return {
        "updates_to_target": reached * steps_per_epoch if reached else None,
        "final_accuracy": history[-1]["val_accuracy"],
        "accuracy": [row["val_accuracy"] for row in history],
        "first_layer_grad_norm": history[0][weights[0]], "last_layer_grad_norm": history[0][weights[-1]],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mnist", default="../shared/data/mnist.npz")
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--examples", type=int, default=20000)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--out", default=str(RESULTS / "speedups.json"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    mnist = Path(args.mnist).resolve()
    results: dict[str, list[dict]] = {name: [] for name in VARIANTS}
    with tempfile.TemporaryDirectory() as folder:
        for seed in range(args.seeds):
            pretrained = rbm_run(mnist, seed, args.examples, Path(folder))
            common = base(mnist, seed, args.examples, args.epochs)
            for name, overrides in VARIANTS.items():
                results[name].append(run_variant(overrides, common, pretrained))
                print(f"seed {seed} {name}: {results[name][-1]}", flush=True)
    rows = summarize(results)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({
        "command": "python benchmarks/speedups.py --mnist ../shared/data/mnist.npz",
        "target_accuracy": TARGET, "depth": DEPTH, "width": WIDTH, "seeds": args.seeds,
        "examples": args.examples, "epochs": args.epochs, "results": results, "summary": rows}, indent=2))
    figures(results, Path(args.out).with_suffix(""))
    print(f"wrote {args.out}")


def summarize(results: dict[str, list[dict]]) -> list[dict]:
    print(f"\n{'variant':36s} {'updates to 90 %':>16s} {'final acc':>10s} {'|g| first':>10s} "
          f"{'|g| last':>10s}")
    rows = []
    for name, runs in results.items():
        done = [r for r in runs if "diverged" not in r]

        def mean(key: str, done: list[dict] = done) -> float:
            return statistics.mean(r[key] for r in done) if done else math.nan

        updates = [r["updates_to_target"] for r in done]
        reached = [u for u in updates if u is not None]
        row = {
            "variant": name, "runs": len(runs), "diverged": len(runs) - len(done),
            "reached_target": f"{len(reached)}/{len(runs)}",
            "median_updates_to_target": statistics.median(reached) if len(reached) == len(runs) else None,
            "mean_final_accuracy": mean("final_accuracy"),
            "first_layer_grad_norm": mean("first_layer_grad_norm"),
            "last_layer_grad_norm": mean("last_layer_grad_norm"),
        }
        rows.append(row)
        updates_text = (f"{row['median_updates_to_target']:.0f}" if row["median_updates_to_target"]
                        else f"{row['reached_target']} reached")
        print(f"{name:36s} {updates_text:>16s} {row['mean_final_accuracy']:10.3f} "
              f"{row['first_layer_grad_norm']:10.2e} {row['last_layer_grad_norm']:10.2e}")
    return rows


def figures(results: dict[str, list[dict]], stem: Path) -> None:
    fig, ax = plt.subplots(figsize=(9, 5))
    styles = ["-", "--", ":", "-."]
    for index, (name, runs) in enumerate(results.items()):
        run = runs[0]
        if "accuracy" in run:
            epochs = range(1, len(run["accuracy"]) + 1)
            ax.plot(epochs, run["accuracy"], marker="o", markersize=3, linestyle=styles[index % 4],
                    color=f"C{index % 10}", label=name)
    ax.axhline(TARGET, color="0.5", linewidth=0.8)
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation accuracy")
    ax.set_title(f"{DEPTH}-hidden-layer MLP on MNIST, SGD + momentum, seed 0", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
    fig.savefig(stem.with_suffix(".png"), dpi=100, bbox_inches="tight")
    plt.close(fig)

    names = [n for n, runs in results.items() if "first_layer_grad_norm" in runs[0]]
    fig, ax = plt.subplots(figsize=(9, 4.5))
    x = range(len(names))
    ax.bar([i - 0.2 for i in x], [results[n][0]["first_layer_grad_norm"] for n in names], 0.4,
           label="first weight matrix")
    ax.bar([i + 0.2 for i in x], [results[n][0]["last_layer_grad_norm"] for n in names], 0.4,
           label="output weight matrix")
    ax.set_yscale("log")
    ax.set_xticks(list(x))
    ax.set_xticklabels(names, rotation=35, ha="right", fontsize=7)
    ax.set_ylabel("gradient norm, epoch 1 mean")
    ax.set_title("vanishing (first << last) and exploding gradients, seed 0", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, axis="y")
    fig.savefig(stem.parent / f"{stem.name}_gradients.png", dpi=100, bbox_inches="tight")
    plt.close(fig)


if __name__ == "__main__":
    main()
