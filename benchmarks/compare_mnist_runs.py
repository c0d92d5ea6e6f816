"""Compare MNIST RBM runs trained for the same wall-clock time (``benchmarks/mnist_rbm.py``).

Reads each run directory's ``metrics.csv`` (per-epoch seconds, validation
pseudo-log-likelihood and reconstruction error) and ``evaluation.json`` (test AIS and
reverse AIS from ``boltzkit evaluate`` or the benchmark), prints a table and writes
``benchmarks/results/mnist_equal_time.json`` and a PNG of the validation curves against
wall-clock minutes.

    python benchmarks/compare_mnist_runs.py benchmarks/runs/mnist_rbm-pcd5-30min \
        benchmarks/runs/mnist_rbm-centered-pcd5-30min benchmarks/runs/mnist_rbm-pt-30min
"""

from __future__ import annotations

import argparse
import csv
import json
from itertools import accumulate
from pathlib import Path

from boltzkit.plots import plt

RESULTS = Path(__file__).parent / "results"
CURVES = (("val_pseudo_log_likelihood", "validation pseudo-log-likelihood (nats)"),
          ("val_recon_error", "validation reconstruction error"))


def read_run(path: Path) -> dict:
    with open(path / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    evaluation = json.loads((path / "evaluation.json").read_text())
    minutes = [s / 60 for s in accumulate(float(r["seconds"]) for r in rows)]
    return {
        "run": path.name, "epochs": len(rows), "train_minutes": minutes[-1], "minutes": minutes,
        "curves": {key: [float(r[key]) for r in rows] for key, _ in CURVES if key in rows[0]},
        "test_ais": evaluation["log_likelihood_ais"],
        "test_ais_interval": [evaluation["log_likelihood_ais_low"], evaluation["log_likelihood_ais_high"]],
        "ais_ess": evaluation["ais_ess"],
        "reverse_ais": evaluation.get("log_likelihood_reverse_ais"),
        "ais_same_examples": evaluation.get("log_likelihood_ais_same_examples"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run directories")
    parser.add_argument("--out", default=str(RESULTS / "mnist_equal_time.json"))
    args = parser.parse_args()
    runs = [read_run(path) for path in args.runs]

    print(f"{'run':34s} {'epochs':>6s} {'minutes':>7s} {'test LL, AIS':>13s} {'ESS':>5s} "
          f"{'reverse AIS':>11s} {'AIS, same ex.':>13s}")
    for r in runs:
        reverse = f"{r['reverse_ais']:11.3f}" if r["reverse_ais"] is not None else f"{'-':>11s}"
        same = f"{r['ais_same_examples']:13.3f}" if r["ais_same_examples"] is not None else f"{'-':>13s}"
        print(f"{r['run']:34s} {r['epochs']:6d} {r['train_minutes']:7.1f} {r['test_ais']:13.3f} "
              f"{r['ais_ess']:5.1f} {reverse} {same}")

    fig, axes = plt.subplots(1, len(CURVES), figsize=(12, 4.2))
    for ax, (key, label) in zip(axes, CURVES, strict=True):
        for r in (r for r in runs if key in r["curves"]):
            ax.plot(r["minutes"], r["curves"][key], label=f"{r['run']} (test AIS {r['test_ais']:.1f})")
        ax.set_xlabel("training minutes (wall clock)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    RESULTS.mkdir(exist_ok=True)
    figure = Path(args.out).with_suffix(".png")
    fig.savefig(figure, dpi=100)
    command = "python benchmarks/compare_mnist_runs.py " + " ".join(str(p) for p in args.runs)
    Path(args.out).write_text(json.dumps({"command": command, "runs": runs}, indent=1))
    print(f"wrote {args.out} and {figure}")


if __name__ == "__main__":
    main()
