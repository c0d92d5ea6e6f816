"""Old (pre-refactor) vs new code: are evaluation and LR range test results unchanged?

The "model families as plug-ins" refactor kept training bit-identical
(tests/test_preset_regression.py) but changed two random draws on purpose:

- ``boltzkit evaluate`` seeds its AIS / reverse-AIS generator with
  ``make_generator(seed, "evaluate", device)`` instead of ``torch.Generator().manual_seed(seed)``;
- the RBM range test's proxy (negative pseudo-log-likelihood on 64 units) draws its units
  from ``make_generator(config.seed, "lr-find.proxy-units")`` instead of a fresh
  ``torch.Generator().manual_seed(0)`` per call.

So the numbers differ draw for draw, and this script checks that they agree within their
seed-to-seed spread. Every measurement runs in its own subprocess through each version's
CLI (``boltzkit.cli.main``): the old code with ``PYTHONPATH=<old-src>``, the new code with
the normal (editable) install, both with ``OMP_NUM_THREADS=1`` and ``torch.set_num_threads(1)``.

1. ``boltzkit train rbm-digits`` with both versions: the saved tensors must be equal.
2. ``boltzkit evaluate RUN --seed S`` (the new version's run, defaults: 100 AIS runs x
   14,501 betas, reverse AIS on up to 1000 test examples) for S = 0..4 with each version;
   per metric the difference of means is "within spread" when
   ``|mean_new - mean_old| < 3 * sqrt(sd_old^2 / n + sd_new^2 / n)`` (sd over seeds, ddof 1).
3. ``boltzkit lr-find rbm-digits --set seed=S`` for S = 0..2 with each version: per rule the
   suggestions' spread over seeds (log10 decades) and the difference of mean log10 between
   versions (same 3-standard-error rule, n = 3). As rbm-digits has exactly 64 visible units,
   its proxy draws every unit whatever the generator (only their order changes), so the
   range test is also run on rbm-mnist (784 units, 64 drawn) when MNIST is available.

    python benchmarks/refactor_equivalence.py --old-src /tmp/oldtree/src
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
DEFAULT_MNIST = os.environ.get("BOLTZKIT_MNIST", str(ROOT.parent / "shared" / "data" / "mnist.npz"))
VERSIONS = ("old", "new")
EVAL_METRICS = ("log_likelihood_ais", "log_z_ais", "ais_ess", "log_likelihood_reverse_ais")
RULES = ("steepest", "valley", "minimum")
DRIVER = ("import sys, torch; torch.set_num_threads(1); from boltzkit.cli import main; "
          "sys.exit(main(sys.argv[1:]))")
PROBE = ("import json, torch, boltzkit; torch.set_num_threads(1); print(json.dumps("
         "{'file': boltzkit.__file__, 'version': getattr(boltzkit, '__version__', None), "
         "'torch': torch.__version__, 'torch_threads': torch.get_num_threads()}))")


def environment(version: str, old_src: Path) -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    env.pop("PYTHONPATH", None)
    if version == "old":
        env["PYTHONPATH"] = str(old_src)
    return env


def run(version: str, old_src: Path, code: str, *argv: str) -> tuple[str, float]:
    """Run ``python -c code argv...`` for one version; stdout and wall seconds."""
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code, *argv], env=environment(version, old_src),
                          cwd=ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"[{version}] {' '.join(argv)} failed ({proc.returncode}):\n"
                         f"{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    return proc.stdout, seconds


def cli(version: str, old_src: Path, *argv: str) -> float:
    log(f"  [{version}] boltzkit {' '.join(argv)}")
    return run(version, old_src, DRIVER, *argv)[1]


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def mean_sd(values: list[float]) -> tuple[float, float]:
    mean = sum(values) / len(values)
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else 0.0
    return mean, sd


def compare(old: list[float], new: list[float]) -> dict:
    """Difference of means (new - old), its standard error and the 3-SE verdict."""
    mean_old, sd_old = mean_sd(old)
    mean_new, sd_new = mean_sd(new)
    diff = mean_new - mean_old
    se = math.sqrt(sd_old ** 2 / len(old) + sd_new ** 2 / len(new))
    if se == 0:
        verdict = "identical" if diff == 0 else "OUTSIDE spread (no spread)"
    else:
        verdict = "within spread" if abs(diff) < 3 * se else "OUTSIDE spread"
    return {"old": old, "new": new, "mean_old": mean_old, "sd_old": sd_old, "mean_new": mean_new,
            "sd_new": sd_new, "diff": diff, "se": se, "z": diff / se if se else None, "verdict": verdict}


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def git_head(path: Path) -> str | None:
    proc = subprocess.run(["git", "-C", str(path), "rev-parse", "HEAD"], capture_output=True, text=True)
    return proc.stdout.strip() if proc.returncode == 0 else None


def check_versions(old_src: Path) -> dict:
    info = {}
    for version in VERSIONS:
        out, _ = run(version, old_src, PROBE)
        info[version] = json.loads(out.strip().splitlines()[-1])
    old_file, new_file = Path(info["old"]["file"]).resolve(), Path(info["new"]["file"]).resolve()
    if not old_file.is_relative_to(old_src.resolve()):
        raise SystemExit(f"old code imports boltzkit from {old_file}, not from {old_src}")
    if old_file == new_file:
        raise SystemExit(f"old and new code both import {old_file}")
    return info


def train_step(work: Path, old_src: Path) -> dict:
    from safetensors.numpy import load_file

    log("1. train rbm-digits with both versions")
    seconds, tensors = {}, {}
    for version in VERSIONS:
        out = work / f"train-{version}"
        seconds[version] = cli(version, old_src, "train", "rbm-digits", "--out", str(out), "--quiet")
        tensors[version] = load_file(out / "model.safetensors")
    old, new = tensors["old"], tensors["new"]
    same_keys = sorted(old) == sorted(new)
    unequal = [key for key in sorted(old) if key in new
               and not (old[key].shape == new[key].shape and (old[key] == new[key]).all())]
    return {"seconds": seconds, "tensors": sorted(old), "same_keys": same_keys, "unequal_tensors": unequal,
            "identical": same_keys and not unequal}


def evaluate_step(work: Path, old_src: Path, seeds: list[int], extra: list[str]) -> dict:
    log(f"2. evaluate the new version's run, seeds {seeds}, with both versions")
    run_dir = work / "train-new"
    results: dict[str, list[dict]] = {version: [] for version in VERSIONS}
    seconds: dict[str, list[float]] = {version: [] for version in VERSIONS}
    for version in VERSIONS:
        for seed in seeds:
            seconds[version].append(cli(version, old_src, "evaluate", str(run_dir), "--seed", str(seed),
                                        "--quiet", *extra))
            copy = work / f"evaluation-{version}-{seed}.json"
            shutil.copy(run_dir / "evaluation.json", copy)  # each run overwrites it
            results[version].append(json.loads(copy.read_text()))
    first = results["new"][0]
    metrics = {metric: compare([r[metric] for r in results["old"]], [r[metric] for r in results["new"]])
               for metric in EVAL_METRICS}
    return {"seeds": seeds, "ais_runs": first["ais_runs"], "ais_betas": first["ais_betas"],
            "reverse_ais_examples": first.get("reverse_ais_examples"),
            "reverse_ais_runs": first.get("reverse_ais_runs"), "split": first["split"],
            "examples": first["examples"], "seconds": seconds, "metrics": metrics}


def lr_find_step(work: Path, old_src: Path, preset: str, seeds: list[int], extra: list[str]) -> dict:
    log(f"3. lr-find {preset}, seeds {seeds}, with both versions")
    found: dict[str, list[dict]] = {version: [] for version in VERSIONS}
    seconds: dict[str, list[float]] = {version: [] for version in VERSIONS}
    for version in VERSIONS:
        for seed in seeds:
            out = work / f"lr-{preset}-{version}-{seed}"
            seconds[version].append(cli(version, old_src, "lr-find", preset, "--quiet", "--out", str(out),
                                        "--set", f"seed={seed}", *extra))
            found[version].append(json.loads((out / "lr_find.json").read_text()))
    rules = {}
    for rule in RULES:
        logs = {v: [math.log10(r["suggestions"][rule]) for r in found[v]] for v in VERSIONS}
        entry = compare(logs["old"], logs["new"])
        entry.update({
            "suggestions_old": [r["suggestions"][rule] for r in found["old"]],
            "suggestions_new": [r["suggestions"][rule] for r in found["new"]],
            "range_decades_old": max(logs["old"]) - min(logs["old"]),
            "range_decades_new": max(logs["new"]) - min(logs["new"]),
            # same seed, same training trajectory: only the proxy's units differ
            "max_paired_diff_decades": max(abs(a - b) for a, b in zip(logs["old"], logs["new"], strict=True)),
        })
        rules[rule] = entry
    loss_diff = []
    for old, new in zip(found["old"], found["new"], strict=True):
        n = min(len(old["losses"]), len(new["losses"]))
        loss_diff.append(max(abs(a - b) for a, b in zip(old["losses"][:n], new["losses"][:n], strict=True)))
    first = found["new"][0]
    return {"preset": preset, "seeds": seeds, "iterations": first["iterations"], "probe": first["probe"],
            "loss_name": first["loss_name"], "seconds": seconds, "rules": rules,
            "updates": {v: [len(r["lrs"]) for r in found[v]] for v in VERSIONS},
            "stopped_early": {v: [r["stopped_early"] for r in found[v]] for v in VERSIONS},
            "max_abs_loss_diff_per_seed": loss_diff}


def print_tables(result: dict) -> None:
    train = result["train"]
    print(f"\ntrain rbm-digits: old and new weights {'IDENTICAL' if train['identical'] else 'DIFFER'} "
          f"({len(train['tensors'])} tensors; unequal: {train['unequal_tensors'] or 'none'})")
    ev = result["evaluate"]
    print(f"\nevaluate ({ev['split']} split, {ev['examples']} examples; AIS {ev['ais_runs']} runs x "
          f"{ev['ais_betas']} betas; reverse AIS {ev['reverse_ais_examples']} examples x "
          f"{ev['reverse_ais_runs']} runs), seeds {ev['seeds']}")
    print("verdict rule: within spread if |mean_new - mean_old| < 3 * sqrt(sd_old^2/n + sd_new^2/n)")
    header = f"{'metric':28s} {'old mean':>10s} {'old sd':>8s} {'new mean':>10s} {'new sd':>8s} " \
             f"{'diff':>8s} {'s.e.':>7s} {'z':>6s}  verdict"
    print(header)
    print("-" * len(header))
    for name, m in ev["metrics"].items():
        z = f"{m['z']:6.2f}" if m["z"] is not None else "   n/a"
        print(f"{name:28s} {m['mean_old']:10.4f} {m['sd_old']:8.4f} {m['mean_new']:10.4f} {m['sd_new']:8.4f} "
              f"{m['diff']:8.4f} {m['se']:7.4f} {z}  {m['verdict']}")
    for lr in result["lr_find"]:
        print(f"\nlr-find {lr['preset']} ({lr['loss_name']}, {lr['iterations']} updates), "
              f"seeds {lr['seeds']}; log10 of the suggested rate")
        header = f"{'rule':9s} {'old suggestions':>27s} {'new suggestions':>27s} {'range old':>9s} " \
                 f"{'range new':>9s} {'diff':>7s} {'s.e.':>6s} {'paired':>6s}  verdict"
        print(header)
        print("-" * len(header))
        for rule, r in lr["rules"].items():
            old = " ".join(f"{s:.3g}" for s in r["suggestions_old"])
            new = " ".join(f"{s:.3g}" for s in r["suggestions_new"])
            print(f"{rule:9s} {old:>27s} {new:>27s} {r['range_decades_old']:9.3f} "
                  f"{r['range_decades_new']:9.3f} {r['diff']:7.3f} {r['se']:6.3f} "
                  f"{r['max_paired_diff_decades']:6.3f}  {r['verdict']}")
        print("(range: max - min over seeds, decades; diff: mean new - mean old, decades; paired: largest "
              "|old - new| at the same seed)")
        print("largest |old - new| of the recorded proxy loss per seed: "
              + ", ".join(f"{d:.3g}" for d in lr["max_abs_loss_diff_per_seed"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--old-src", required=True, help="src/ folder of the pre-refactor checkout")
    parser.add_argument("--eval-seeds", type=int, default=5)
    parser.add_argument("--lr-seeds", type=int, default=3)
    parser.add_argument("--ais-runs", type=int, help="default: the run's eval.ais.runs (100)")
    parser.add_argument("--ais-betas", type=int, help="default: the run's eval.ais.betas (14501)")
    parser.add_argument("--reverse-examples", type=int, help="default: eval.reverse_ais.examples (1000)")
    parser.add_argument("--mnist", default=DEFAULT_MNIST,
                        help="mnist.npz for the rbm-mnist range test (skipped when absent)")
    parser.add_argument("--no-mnist", action="store_true", help="skip the rbm-mnist range test")
    parser.add_argument("--work", help="folder for runs (default: a temporary folder, removed)")
    parser.add_argument("--out", default=str(RESULTS / "refactor_equivalence.json"))
    args = parser.parse_args()
    started = time.perf_counter()
    old_src = Path(args.old_src).resolve()
    versions = check_versions(old_src)
    for version in VERSIONS:
        log(f"{version}: boltzkit from {versions[version]['file']}")
    extra = []
    for flag, value in (("--ais-runs", args.ais_runs), ("--ais-betas", args.ais_betas),
                        ("--reverse-examples", args.reverse_examples)):
        if value is not None:
            extra += [flag, str(value)]
    mnist = Path(args.mnist)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.work) if args.work else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        result = {"train": train_step(work, old_src),
                  "evaluate": evaluate_step(work, old_src, list(range(args.eval_seeds)), extra),
                  "lr_find": [lr_find_step(work, old_src, "rbm-digits", list(range(args.lr_seeds)), [])]}
        if not args.no_mnist and mnist.is_file():
            result["lr_find"].append(lr_find_step(work, old_src, "rbm-mnist", list(range(args.lr_seeds)),
                                                  ["--data-dir", str(mnist.parent)]))
        elif not args.no_mnist:
            log(f"no {mnist}: rbm-mnist range test skipped")
    runtime = time.perf_counter() - started
    print_tables(result)
    print(f"\ntotal runtime {runtime:.0f} s")
    report = {
        "command": "python benchmarks/refactor_equivalence.py " + " ".join(sys.argv[1:]),
        "machine": {"cpu": cpu_model(), "platform": platform.platform(), "omp_num_threads": 1,
                    "torch_threads": {v: versions[v]["torch_threads"] for v in VERSIONS},
                    "torch": versions["new"]["torch"], "python": platform.python_version()},
        "code": {"old": {"src": str(old_src), "commit": git_head(old_src),
                         "boltzkit": versions["old"]["file"]},
                 "new": {"commit": git_head(ROOT), "boltzkit": versions["new"]["file"]}},
        "verdict_rule": "within spread if |mean_new - mean_old| < 3 * sqrt(sd_old^2/n_old + sd_new^2/n_new), "
                        "sd over seeds with ddof 1 (log10 of the rate for lr-find)",
        "runtime_seconds": runtime,
        **result,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
