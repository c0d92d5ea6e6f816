"""Bad input never ends in a traceback: a generated set of wrong configs, flags, files and
run directories, each run through the command line in-process.

For every case: exit status 2 (bad input) or 1 (a run that failed), one line on stderr
that starts with ``boltzkit:``, and nothing written outside the case's own folder. The
suite runs with ``BOLTZKIT_DEBUG=1`` (tests/conftest.py), so an error that escapes every
boundary raises here instead of being turned into an "internal error" line.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from boltzkit import load_config
from boltzkit.cli import main

FAST = ["--set", "train.epochs=1", "--set", "model.n_hidden=8", "--set", "train.metrics_examples=20",
        "--set", "threads=1", "--quiet"]


def _flat(section: dict, prefix: str = ""):
    for key, value in section.items():
        if isinstance(value, dict):
            yield from _flat(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def _numeric_keys() -> list[str]:
    """Every key whose value is a number, in each family's config."""
    keys: list[str] = []
    for family in ("rbm", "bm", "mlp"):
        config = load_config("rbm-digits", [f"model={{type: {family}}}", "data.binarize=none"])
        keys += [f"{family}:{key}" for key, value in _flat(config.to_dict())
                 if isinstance(value, int | float) and not isinstance(value, bool)]
    return keys


# numbers no numeric key accepts; a mapping or list where a number belongs
NOT_A_NUMBER = [".nan", ".inf", "-.inf", "abc", "[1, 2]", "{a: 1}"]
ENUM_KEYS = ["data.name", "data.binarize", "model.visible", "model.hidden", "train.method",
             "train.positive", "train.gradient", "train.schedule.unit", "train.pt.ladder",
             "tune.method", "tune.pruner", "tune.direction", "device", "train.optimizer.name",
             "train.schedule.name", "model.type"]
NONSENSE = {
    "model.n_hidden": ["0", "-5", "1000000000000"], "train.batch_size": ["0", "100000000000"],
    "train.epochs": ["0", "1000000000000"], "train.k": ["0", "10000000000"],
    "train.n_chains": ["0", "1000000000000"], "train.pt.temperatures": ["1", "100000000"],
    "eval.ais.runs": ["0", "10000000000"], "eval.ais.betas": ["1", "1000000000000"],
    "eval.ais.pseudocount": ["0", "-1"], "data.validation": ["1", "-0.1"], "seed": ["-1", str(2**70)],
    "threads": ["0", "-2", str(2**70), "many"], "data.threshold": ["0", "1"],
    "train.optimizer.lr": ["0", "-1", "1.0e+300"], "train.optimizer.momentum": ["-1", "abc", "1.0e+300"],
    "train.optimizer.weight_decay": ["-1", "1.0e+300"], "model.init_std": ["1.0e+300"], "train.optimizer": ["{name: lbfgs, lr: 0.1}",
                                                                "{name: adam, lr: 0.1, betas: [2.0, 0.9]}",
                                                                "{name: adam, lr: 0.1, eps: -1}",
                                                                "{name: sgd, lr: 0.1, nesterov: true}",
                                                                "{name: adam, lr: 0.1, betas: [0.9]}",
                                                                "{name: [sgd], lr: 0.1}", "{lr: [0.1]}"],
    "train.schedule": ["{name: cosine, min_factor: -1}", "{name: exponential, rate: -1}",
                       "{name: piecewise, boundaries: [2, 1], values: [1, 1, 1]}",
                       "{name: piecewise, boundaries: [1], values: [-1, 1]}", "{name: plateau, mode: up}",
                       "{name: plateau, factor: 2}", "{name: cosine, warmup: 2}", "{name: cosine, gamma: 1}",
                       "{name: [a]}", "{name: plateau, metric: [1]}", "{name: piecewise, values: []}",
                       "{name: onecycle, base_momentum: 0.99}", "{name: onecycle, cycle_momentum: 3}",
                       "{name: cosine, min_factor: 1.0e+300}"],
    "data.potts": ["{coupling: 1.0e+300}", "{length: 100000000}", "{length: 5000, states: 500, examples: 100000}"],
    "tune.space": ["{train.optimizer.lr: {low: .nan, high: 1}}", "{train.optimizer.lr: {low: 1, high: 0.1}}",
                   "{nope.key: {low: 1, high: 2}}", "{train.k: {choices: [1, -3]}}",
                   "{train.schedule: {choices: [{name: [a]}]}}"],
    "eval.exact_max_units": ["26"], "train.checkpoint_every": ["-1"], "train.checkpoint_keep": ["0"],
    "train.early_stopping": ["{metric: nope}", "{patience: 0}", "{metric: val_free_energy}"],
    "train.backoff": ["{factor: 1}", "{retries: 0}"],
}


def _config_cases() -> list[tuple[str, list[str]]]:
    cases = []
    for entry in _numeric_keys():
        family, key = entry.split(":")
        switch = [] if family == "rbm" else ["--set", f"model={{type: {family}}}"]
        for value in NOT_A_NUMBER:
            cases.append((f"{entry}={value}", ["config", *switch, "--set", f"{key}={value}"]))
    for key in ENUM_KEYS:
        cases.append((f"{key}=bogus", ["config", "--set", f"{key}=bogus"]))
    for key, values in NONSENSE.items():
        for value in values:
            cases.append((f"{key}={value}", ["train", *FAST, "--set", f"{key}={value}"]))
    for bad in ["noequals", "=1", "train..epochs=1", "nope=1", "train.nope=1", "model.activation=relu",
                "train.epochs.x=1", "model={type: nope}", "model=3"]:
        cases.append((f"--set {bad}", ["config", "--set", bad]))
    return cases


def _file_cases(folder: Path) -> list[tuple[str, list[str]]]:
    """Broken config and data files."""
    files = {
        "bad.yaml": b"train: [unclosed\n", "latin1.yaml": "seed: 0 # caf\xe9\n".encode("latin-1"),
        "deep.yaml": b"a: " + b"[" * 20000 + b"]" * 20000 + b"\n", "list.yaml": b"- 1\n- 2\n",
        "empty.npz": b"", "notzip.npz": b"this is not a zip file",
        "latin1.csv": "a,b\n1,caf\xe9\n".encode("latin-1"), "dup.csv": b"a,a,b\n0,1,0\n1,0,1\n",
        "text.csv": b"a,b\n0,x\n1,0\n", "empty.csv": b"", "header.csv": b"a,b\n",
        "nan.csv": b"a,b\n0,nan\n1,0\n",
    }
    for name, content in files.items():
        (folder / name).write_bytes(content)
    np.savez(folder / "good.npz", x=np.random.default_rng(0).random((50, 4)).astype(np.float32))
    raw = (folder / "good.npz").read_bytes()
    (folder / "truncated.npz").write_bytes(raw[: len(raw) // 2])
    np.savez(folder / "objects.npz", x=np.array([{"a": 1}, None], dtype=object))
    np.savez(folder / "nan.npz", x=np.array([[0.0, np.nan], [1.0, 0.5]]))
    np.savez(folder / "rank1.npz", x=np.zeros(10))
    np.savez(folder / "labels.npz", x_train=np.zeros((10, 4)), y_train=np.arange(10) - 5.0)
    np.savez(folder / "floatlabels.npz", x_train=np.zeros((10, 4)), y_train=np.linspace(0, 1, 10))
    np.savez(folder / "shortlabels.npz", x_train=np.zeros((10, 4)), y_train=np.zeros(3))
    with zipfile.ZipFile(folder / "badcrc.npz", "w") as archive:  # a header claiming 10^12 rows
        archive.writestr("x.npy", b"\x93NUMPY\x01\x00v\x00{'descr': '<f4', 'fortran_order': False, "
                                  b"'shape': (1000000000000, 4), }" + b" " * 52 + b"\n")
    cases = [(name, ["train", str(folder / name), *FAST]) for name in
             ("bad.yaml", "latin1.yaml", "deep.yaml", "list.yaml", "missing.yaml")]
    for name in ("empty.npz", "notzip.npz", "truncated.npz", "objects.npz", "nan.npz", "rank1.npz",
                 "badcrc.npz", "missing.npz"):
        cases.append((name, ["train", *FAST, "--set", "data.name=npz", "--set", f"data.path={folder / name}"]))
    for name in ("labels.npz", "floatlabels.npz", "shortlabels.npz"):
        cases.append((name, ["train", *FAST, "--set", "model={type: mlp, hidden_layers: [4]}",
                             "--set", "data.name=npz", "--set", f"data.path={folder / name}"]))
    for name in ("latin1.csv", "dup.csv", "text.csv", "empty.csv", "header.csv", "nan.csv"):
        cases.append((name, ["train", *FAST, "--set", "data.name=csv", "--set", f"data.path={folder / name}"]))
    cases.append(("csv label column missing", ["train", *FAST, "--set", "data.name=csv", "--set",
                                               f"data.path={folder / 'dup.csv'}", "--set", "data.label_column=z"]))
    return cases


def _run_dir_cases(folder: Path, good_run: Path) -> list[tuple[str, list[str]]]:
    """Damaged run directories given to evaluate, sample and train --resume."""
    import shutil

    def copy(name: str) -> Path:
        target = folder / name
        shutil.copytree(good_run, target)
        return target

    flipped = copy("flipped")
    state = torch.load(flipped / "checkpoints" / "last.pt", weights_only=True)
    state["model"]["weight"][0, 0] += 1.0
    torch.save(state, flipped / "checkpoints" / "last.pt")
    (flipped / "model.safetensors").unlink()
    weights = copy("weights-flipped")
    raw = bytearray((weights / "model.safetensors").read_bytes())
    raw[-5] ^= 0x10
    (weights / "model.safetensors").write_bytes(bytes(raw))
    truncated = copy("truncated")
    checkpoint = truncated / "checkpoints" / "last.pt"
    checkpoint.write_bytes(checkpoint.read_bytes()[:300])
    (truncated / "model.safetensors").write_bytes(b"not safetensors")
    evil = copy("evil")

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    torch.save({"format": "boltzkit-checkpoint", "version": 2, "model": Evil()}, evil / "checkpoints" / "last.pt")
    (evil / "model.safetensors").unlink()
    no_config = copy("no-config")
    (no_config / "config.yaml").unlink()
    bad_config = copy("bad-config")
    (bad_config / "config.yaml").write_bytes(b"\xff\xfe\x00garbage")
    wrong_config = copy("wrong-config")
    (wrong_config / "config.yaml").write_text("model: {type: rbm, n_hidden: 999}\n")
    from safetensors.torch import load_file, save_file

    from boltzkit.train.checkpoint import save_checkpoint

    metadata = copy("metadata")  # edited metadata: the checksum covers it too
    tensors = load_file(metadata / "model.safetensors")
    save_file(tensors, metadata / "model.safetensors", metadata={"format": "boltzkit-model",
                                                                 "data_info": "not json {"})
    unchecked = copy("metadata-unchecked")  # no checksum at all (an older or foreign writer)
    save_file(tensors, unchecked / "model.safetensors", metadata={"data_info": '{"n_classes": 3}'})
    no_model = copy("no-model")  # a valid, checksummed checkpoint that lacks the weights
    save_checkpoint(no_model / "checkpoints" / "last.pt", {"data_info": {"n_features": 64}})
    (no_model / "model.safetensors").unlink()
    (no_model / "evaluation.json").mkdir()
    occupied = copy("evaluation-is-a-folder")
    (occupied / "evaluation.json").mkdir()
    a_file = folder / "a-file"
    a_file.write_text("x")
    cases = []
    for run in (flipped, weights, truncated, evil, no_config, bad_config, wrong_config, metadata, unchecked,
                no_model, folder / "missing", a_file):
        cases.append((f"evaluate {run.name}", ["evaluate", str(run), "--quiet", "--ais-runs", "4",
                                               "--ais-betas", "10"]))
        cases.append((f"sample {run.name}", ["sample", str(run), "--n", "2", "--steps", "2"]))
    cases.append(("evaluation.json is a folder", ["evaluate", str(occupied), "--quiet", "--ais-runs", "4",
                                                  "--ais-betas", "10"]))
    for run in (flipped, truncated, evil, bad_config):
        cases.append((f"resume {run.name}", ["train", "--out", str(run), "--resume", "--quiet",
                                             "--set", "train.epochs=3"]))
    study = folder / "broken-study"
    study.mkdir()
    (study / "tune-config.yaml").write_text(load_config(None, ["tune.space={train.k: {choices: [1]}}"]).to_yaml())
    (study / "study.db").write_bytes(b"not an sqlite database, not at all" * 100)
    broken_config = folder / "broken-tune-config"
    broken_config.mkdir()
    (broken_config / "tune-config.yaml").write_bytes(b"\xff\xfe garbage: [")
    cases += [
        ("tune --report on a corrupted study.db", ["tune", "--report", str(study)]),
        ("tune --report on a corrupted tune-config.yaml", ["tune", "--report", str(broken_config)]),
        ("--out is a file", ["train", *FAST, "--out", str(a_file)]),
        ("--out below a file", ["train", *FAST, "--out", str(a_file / "run")]),
        ("--out holds a run", ["train", *FAST, "--out", str(good_run)]),
        ("resume without --out", ["train", "--resume"]),
        ("resume and overwrite", ["train", "--out", str(good_run), "--resume", "--overwrite"]),
        ("sample --n 0", ["sample", str(good_run), "--n", "0"]),
        ("sample --n huge", ["sample", str(good_run), "--n", "100000000000"]),
        ("sample --steps 0", ["sample", str(good_run), "--steps", "0"]),
        ("sample --pt 1", ["sample", str(good_run), "--pt", "1"]),
        ("sample --min-beta 2", ["sample", str(good_run), "--pt", "3", "--min-beta", "2"]),
        ("sample --device banana", ["sample", str(good_run), "--device", "banana"]),
        ("evaluate --ais-runs huge", ["evaluate", str(good_run), "--ais-runs", "100000000000"]),
        ("evaluate --threads 0", ["evaluate", str(good_run), "--threads", "0"]),
        ("sample --threads huge", ["sample", str(good_run), "--threads", "100000"]),
        ("evaluate --data missing", ["evaluate", str(good_run), "--data", str(folder / "nope.npz")]),
        ("evaluate --data txt", ["evaluate", str(good_run), "--data", str(a_file)]),
        ("lr-find --high inf", ["lr-find", *FAST, "--high", "inf", "--out", str(folder / "lr")]),
        ("lr-find --low > --high", ["lr-find", *FAST, "--low", "1", "--high", "0.1"]),
        ("lr-find --iterations 2", ["lr-find", *FAST, "--iterations", "2"]),
        ("lr-find --probe -1", ["lr-find", *FAST, "--probe", "-1"]),
        ("schedule plateau", ["schedule", "--set", "train.schedule={name: plateau}"]),
        ("schedule --steps-per-epoch 0", ["schedule", "--steps-per-epoch", "0"]),
        ("tune --n-trials 0", ["tune", *FAST, "--n-trials", "0", "--out", str(folder / "t0")]),
        ("tune --workers 0", ["tune", *FAST, "--workers", "0", "--out", str(folder / "t1")]),
        ("tune --report missing", ["tune", "--report", str(folder / "no-study")]),
        ("tune --storage bogus", ["tune", *FAST, "--storage", "bogus://x", "--out", str(folder / "t2")]),
        ("tune --storage unreachable", ["tune", *FAST, "--storage", "sqlite:////no/such/dir/x.db",
                                        "--out", str(folder / "t3")]),
        ("tune metric not logged", ["tune", *FAST, "--set", "tune.metric=val_accuracy",
                                    "--out", str(folder / "t4")]),
        ("diverging run", ["train", *FAST, "--set", "model={type: mlp, hidden_layers: [4]}", "--set",
                           "data.binarize=none", "--set", "train.optimizer={name: sgd, lr: 1.0e+30}",
                           "--out", str(folder / "diverged")]),
    ]
    return cases


@pytest.fixture(scope="module")
def good_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("good") / "run"
    assert main(["train", "--out", str(out), *FAST]) == 0
    return out


def _all_cases(folder: Path, good_run: Path) -> list[tuple[str, list[str]]]:
    return [*_config_cases(), *_file_cases(folder), *_run_dir_cases(folder, good_run)]


def test_the_fuzz_set_is_large():
    assert len(_config_cases()) >= 200


def test_every_bad_input_is_one_line_and_a_usage_exit(tmp_path, good_run, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # anything written "outside" would land here, next to the cases
    cases_dir = tmp_path / "cases"
    cases_dir.mkdir()
    failures = []
    before = set(tmp_path.iterdir())
    for label, argv in _all_cases(cases_dir, good_run):
        capsys.readouterr()
        try:
            code = main(argv)
        except SystemExit as exit_:  # argparse's own usage errors
            code = exit_.code
        except Exception as escaped:  # noqa: BLE001 (collect every case, then report)
            failures.append(f"{label}: {type(escaped).__name__}: {' '.join(str(escaped).split())[:200]}")
            continue
        out, err = capsys.readouterr()
        lines = [line for line in err.splitlines() if line.strip() and not line.startswith("boltzkit: warning")]
        if lines and lines[0].startswith("usage: "):  # argparse: its usage, then one error line
            lines = lines[-1:]
        if code not in (1, 2) or len(lines) != 1 or not lines[0].startswith("boltzkit") or "Traceback" in err:
            failures.append(f"{label}: exit {code}, stderr {err.strip()[:300]!r}")
    assert not failures, f"{len(failures)} bad inputs not refused cleanly:\n" + "\n".join(failures)
    assert set(tmp_path.iterdir()) == before  # no stray runs/ or files in the working directory


@pytest.mark.slow
def test_the_command_itself_never_prints_a_traceback(tmp_path, good_run):
    """A spread of the cases through ``python -m boltzkit.cli`` with debugging off, as a
    user runs it: no traceback and no "internal error" either."""
    import subprocess
    import sys

    cases_dir = tmp_path / "cases"
    cases_dir.mkdir()
    env = {**os.environ, "BOLTZKIT_DEBUG": "0", "OMP_NUM_THREADS": "1"}
    failures = []
    for label, argv in _all_cases(cases_dir, good_run)[::4]:
        done = subprocess.run([sys.executable, "-m", "boltzkit.cli", *argv], capture_output=True, text=True,
                              env=env, cwd=tmp_path, timeout=300)
        if done.returncode not in (1, 2) or "Traceback" in done.stderr or "internal error" in done.stderr:
            failures.append(f"{label}: exit {done.returncode}, {done.stderr.strip()[-300:]!r}")
    assert not failures, "\n".join(failures)
