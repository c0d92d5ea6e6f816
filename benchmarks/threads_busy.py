"""``threads: auto`` against PyTorch's default thread count on a busy machine.

A neighbour process keeps every core busy with matrix products (two threads on a 2-core
machine, as another user's job would), and ``boltzkit train`` runs beside it, as a new
user types it, once with the default ``threads: auto`` and once with ``threads: null``
(PyTorch's default), alternating, ``--repeats`` times each. Runs: the default preset
(``rbm-digits``, 100 epochs) and, with ``--mnist``, one epoch of a 784x500 RBM on 10,000
MNIST images (large enough that ``auto`` times its choice instead of taking one thread).
Also one quiet-machine pair (no neighbour) per run, to show what ``auto`` costs there.

    python benchmarks/threads_busy.py --mnist ../shared/data/mnist.npz

Run it alone: its point is the neighbour it starts itself.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _machine import cpu_name  # noqa: E402

RESULTS = Path(__file__).parent / "results"


def neighbour(threads: int) -> None:
    """Another user's job: matrix products forever, with ``threads`` OpenMP threads."""
    import torch

    torch.set_num_threads(threads)
    a = torch.randn(1024, 1024)
    while True:
        a = torch.tanh(a @ a)


def timed_train(preset_args: list[str], threads: str, timeout: float) -> dict:
    out = Path(tempfile.mkdtemp(prefix="threads-busy-")) / "run"
    command = [sys.executable, "-m", "boltzkit.cli", "train", *preset_args, "--out", str(out),
               "--set", f"threads={threads}"]
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    started = time.perf_counter()
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)
        seconds, ok, said = time.perf_counter() - started, done.returncode == 0, done.stdout
    except subprocess.TimeoutExpired:
        seconds, ok, said = timeout, False, ""
    # the first line says what was chosen: "...; threads: 1, auto: ...)"
    chosen = said.splitlines()[0].split("; threads: ", 1)[-1].rstrip(")") if said else "timed out"
    return {"threads": threads, "seconds": seconds, "finished": ok, "chosen": chosen}


def summarize(rows: list[dict], cores: int) -> list[dict]:
    """Fastest and slowest run of each setting: a neighbour makes the spread the story."""
    print(f"\n{cpu_name()}, {cores} cores; neighbour: {cores}-thread matrix products")
    print(f"{'run':48s} {'neighbour':>9s} {'auto s (min-max)':>17s} {'null s (min-max)':>17s}")
    summary = []
    for label in dict.fromkeys(r["run"] for r in rows):
        for busy in (False, True):
            pick = [r for r in rows if r["run"] == label and r["neighbour"] is busy]
            auto = [r["seconds"] for r in pick if r["threads"] == "auto"]
            null = [r["seconds"] for r in pick if r["threads"] == "null"]
            summary.append({"run": label, "neighbour": busy, "auto_seconds": [min(auto), max(auto)],
                            "null_seconds": [min(null), max(null)]})
            print(f"{label:48s} {str(busy):>9s} {min(auto):8.1f}-{max(auto):<8.1f} "
                  f"{min(null):8.1f}-{max(null):<8.1f}")
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mnist", help="mnist.npz, for the larger model")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds before a run counts as failed")
    parser.add_argument("--out", default=str(RESULTS / "threads_busy.json"))
    parser.add_argument("--summary-only", action="store_true", help="re-print the table of --out")
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    if args.summary_only:
        saved = json.loads(Path(args.out).read_text())
        saved["summary"] = summarize(saved["rows"], saved["cores"])
        Path(args.out).write_text(json.dumps(saved, indent=2))
        return
    runs = {"rbm-digits (default boltzkit train)": ["rbm-digits"]}
    if args.mnist:
        runs["784x500 RBM, 1 epoch of 10,000 MNIST images"] = [
            "rbm-mnist", "--set", f"data.path={args.mnist}", "--set", "data.name=npz",
            "--set", "data.key=x", "--set", "data.limit=10000", "--set", "train.epochs=1",
            "--set", "eval.every=0", "--set", "model.n_hidden=500"]
    rows = []
    for label, preset in runs.items():
        for setting in ("auto", "null"):  # quiet machine first
            rows.append({"run": label, "neighbour": False, **timed_train(preset, setting, args.timeout)})
            print(rows[-1], flush=True)
        busy = multiprocessing.Process(target=neighbour, args=(cores,), daemon=True)
        busy.start()
        time.sleep(2)
        try:
            for _ in range(args.repeats):
                for setting in ("auto", "null"):  # alternating: the neighbour's load hits both
                    rows.append({"run": label, "neighbour": True,
                                 **timed_train(preset, setting, args.timeout)})
                    print(rows[-1], flush=True)
        finally:
            busy.terminate()
            busy.join()
    summary = summarize(rows, cores)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"cpu": cpu_name(), "cores": cores, "repeats": args.repeats,
                                          "rows": rows, "summary": summary}, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
