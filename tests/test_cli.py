import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from boltzkit import onednn
from boltzkit.cli import main

FAST = ["--set", "train.epochs=2", "--set", "model.n_hidden=16", "--set", "train.metrics_examples=50",
        "--quiet"]


def test_train_and_sample_end_to_end_on_digits(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--out", str(out), *FAST]) == 0
    printed = capsys.readouterr().out
    assert "done in" in printed and "val_pseudo_log_likelihood" in printed
    for name in ["config.yaml", "metrics.csv", "samples.png", "filters.png", "curves.png",
                 "model.safetensors", "checkpoints/last.pt"]:
        assert (out / name).is_file(), name
    assert main(["sample", str(out), "--n", "9", "--steps", "20", "--seed", "3"]) == 0
    arrays = np.load(out / "samples-n9-k20-s3.npz")
    assert arrays["samples"].shape == (9, 64) and set(np.unique(arrays["samples"])) <= {0.0, 1.0}
    assert ((arrays["means"] >= 0) & (arrays["means"] <= 1)).all()
    assert (out / "samples-n9-k20-s3.png").is_file()
    assert main(["sample", str(out), "--n", "4", "--steps", "5", "--pt", "3"]) == 0
    assert np.load(out / "samples-n4-k5-s0-pt3.npz")["samples"].shape == (4, 64)
    assert main(["sample", str(out), "--pt", "1"]) == 2


def test_resume_of_a_finished_run_does_nothing_and_extending_is_recorded(tmp_path, capsys):
    import json

    import yaml

    out = tmp_path / "run"
    assert main(["train", "--out", str(out), *FAST, "--set", "train.schedule={name: cosine}"]) == 0
    weights = (out / "model.safetensors").read_bytes()
    capsys.readouterr()
    assert main(["train", "--out", str(out), "--resume", "--quiet"]) == 0
    assert "already finished its 2 epochs; nothing to do" in capsys.readouterr().out
    assert (out / "model.safetensors").read_bytes() == weights and not (out / "resumes.jsonl").exists()

    assert main(["train", "--out", str(out), "--resume", "--set", "train.epochs=3", "--quiet"]) == 0
    said = capsys.readouterr().out
    assert "resuming after epoch 2 with train.epochs: 2 -> 3; the cosine schedule now spans 3 epochs" in said
    assert len((out / "metrics.csv").read_text().splitlines()) == 1 + 3
    assert yaml.safe_load((out / "config.yaml").read_text())["train"]["epochs"] == 3
    record = json.loads((out / "resumes.jsonl").read_text())
    assert record["after_epoch"] == 2 and record["changes"] == {"train.epochs": [2, 3]}

    assert main(["train", "--out", str(out), "--resume", "--set", "train.epochs=1"]) == 2
    err = capsys.readouterr().err
    assert "train.epochs=1, but" in err and "accepted: train.epochs >= 3" in err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "--set", "train.epochs=zero"], "config key 'train.epochs': invalid value 'zero'"),
        (["train", "missing.yaml"], "'missing.yaml' is neither a file nor a preset"),
        (["train", "--resume"], "--resume needs --out RUN_DIR"),
        (["train", "rbm-digits", "--resume", "--out", "x"], "--resume continues a run with its saved config"),
        (["train", "--device", "quantum"], "config key 'device': device must be auto, cpu, cuda"),
        (["sample", "/nonexistent/run"], "not a boltzkit run directory (no config.yaml)"),
        (["train", "--set", "data.name=npz", "--set", "data.path=/nonexistent.npz"], "/nonexistent.npz: file not found"),
    ],
)
def test_usage_errors_exit_2_with_one_line(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("boltzkit: error: ") and message in err
    assert "\n" not in err and "Traceback" not in err


def test_config_command_prints_resolved_yaml(capsys):
    assert main(["config", "rbm-mnist", "--set", "train.epochs=7"]) == 0
    text = capsys.readouterr().out
    assert "epochs: 7" in text and "n_hidden: 500" in text


def test_console_script_runs_default_preset(tmp_path):
    """`boltzkit train` as a user types it: a subprocess, the rbm-digits preset."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    exe = Path(sys.executable).with_name("boltzkit")
    command = [str(exe)] if exe.exists() else [sys.executable, "-m", "boltzkit.cli"]
    done = subprocess.run([*command, "train", "--out", str(tmp_path / "r"), "--set", "train.epochs=2"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "r" / "samples.png").is_file()
    bad = subprocess.run([*command, "train", "--set", "train.k=0"], capture_output=True, text=True,
                         env=env, timeout=300)
    assert bad.returncode == 2 and "config key 'train.k'" in bad.stderr


def test_evaluate_writes_evaluation_json_and_brackets_the_exact_value(tmp_path, capsys, monkeypatch):
    import json

    out = tmp_path / "run"
    assert main(["train", "--out", str(out), "--set", "train.epochs=3", "--set", "model.n_hidden=12",
                 "--set", "train.metrics_examples=50", "--quiet"]) == 0
    kernel = "onednn" if onednn.available() else "torch"  # the flag reaches AIS either way
    products = []
    real = onednn.linear
    monkeypatch.setattr(onednn, "linear", lambda x, w, b=None: products.append(w.shape) or real(x, w, b))
    assert main(["evaluate", str(out), "--ais-betas", "3001", "--ais-runs", "50", "--product-kernel", kernel,
                 "--reverse-examples", "100", "--reverse-runs", "2", "--quiet"]) == 0
    printed = capsys.readouterr().out
    for label in ["log Z, AIS", "log Z, exact", "log-likelihood, AIS", "log-likelihood, exact",
                  "log-likelihood, reverse AIS", "pseudo-log-likelihood", "reconstruction error"]:
        assert label in printed
    results = json.loads((out / "evaluation.json").read_text())
    assert results["split"] == "test" and results["examples"] == 297
    assert abs(results["log_z_ais"] - results["log_z_exact"]) < 0.1
    assert abs(results["log_likelihood_ais"] - results["log_likelihood_exact"]) < 0.1
    assert results["ais_runs"] == 50 and results["ais_betas"] == 3001
    assert results["ais_product_kernel"] == kernel
    assert (len(products) >= 3000) == (kernel == "onednn")  # AIS multiplies in oneDNN at every beta
    # reverse AIS on the first 100 examples sits at or below AIS on the same examples
    same = results["log_likelihood_ais_same_examples"]
    assert results["log_likelihood_reverse_ais"] <= same + 3 * results["log_likelihood_reverse_ais_stderr"]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--ais-runs", "0"], "--ais-runs must be from 1 to 1,000,000, got 0"),
        (["--ais-betas", "1"], "--ais-betas must be from 2 to 10,000,000, got 1"),
        (["--reverse-examples", "-1"], "--reverse-examples must be from 0 to 1,000,000, got -1"),
    ],
)
def test_evaluate_rejects_bad_settings(tmp_path, argv, message, capsys):
    assert main(["evaluate", str(tmp_path), *argv]) == 2
    assert message in capsys.readouterr().err


def test_threads_on_every_command_and_evaluate_follows_the_run(tmp_path, capsys, monkeypatch):
    import torch

    out = tmp_path / "run"
    assert main(["train", "--out", str(out), *FAST, "--threads", "1"]) == 0
    assert "threads: 1" in (out / "config.yaml").read_text()  # recorded with the run
    seen, before = [], torch.get_num_threads()
    monkeypatch.setattr(torch, "set_num_threads", seen.append)
    assert main(["sample", str(out), "--n", "4", "--steps", "2"]) == 0
    assert main(["sample", str(out), "--n", "4", "--steps", "2", "--threads", "2"]) == 0
    assert seen == [1, before, 2, before]  # the run's threads, then the flag; restored after each
    assert main(["evaluate", str(out), "--threads", "0"]) == 2
    assert "--threads must be from 1 to 4,096, got 0" in capsys.readouterr().err
    assert main(["config", "--threads", "3"]) == 0 and "threads: 3" in capsys.readouterr().out


def test_a_run_killed_before_its_first_checkpoint_can_be_resumed_or_overwritten(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "config.yaml").write_text("")
    assert main(["train", "--out", str(out), *FAST]) == 2  # an empty config.yaml is still "a run"
    assert "--overwrite to start it over" in capsys.readouterr().err
    from boltzkit.config import load_config

    config = load_config(None, ["train.epochs=2", "model.n_hidden=16", "train.metrics_examples=50"])
    config.name = "rbm-digits"  # what `boltzkit train` without a config file names the run
    (out / "config.yaml").write_text(config.to_yaml())
    (out / "checkpoints").mkdir()
    (out / "checkpoints" / ".last.pt.k2j4x9").write_bytes(b"half a checkpoint")  # a kill mid-write
    assert main(["train", "--out", str(out), "--resume", "--quiet"]) == 0
    said = capsys.readouterr().out
    assert "has no checkpoint yet (stopped before its first): starting it from the beginning" in said
    assert not list((out / "checkpoints").glob(".last.pt.*")) and (out / "model.safetensors").is_file()
    from safetensors.torch import load_file

    first = load_file(out / "model.safetensors")
    assert main(["train", "--out", str(out), *FAST, "--overwrite"]) == 0
    again = load_file(out / "model.safetensors")  # same config and seed, started over: same weights
    assert first.keys() == again.keys() and all(torch.equal(first[k], again[k]) for k in first)
    assert main(["train", "--out", str(out), "--resume", "--overwrite"]) == 2


def test_divergence_names_only_checkpoints_that_exist(tmp_path, capsys, diverge_above):
    diverge_above(1.0)
    out = tmp_path / "run"
    assert main(["train", "--out", str(out), *FAST, "--set", "model={type: mlp, hidden_layers: [4]}",
                 "--set", "data.binarize=none", "--set", "train.optimizer={name: sgd, lr: 10.0}"]) == 1
    err = capsys.readouterr().err
    assert "No checkpoint was written before it: start over with --overwrite" in err
    assert "last.pt" not in err and not (out / "checkpoints" / "last.pt").exists()


def test_ctrl_c_while_figures_are_drawn_is_one_line_and_130(tmp_path, capsys, monkeypatch):
    from boltzkit.families.rbm import RBMTask

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(RBMTask, "write_figures", interrupted)
    assert main(["train", "--out", str(tmp_path / "run"), *FAST]) == 130
    assert capsys.readouterr().err.strip() == "boltzkit: interrupted"


def test_unexpected_errors_are_one_line_unless_debugging(monkeypatch, capsys):
    import boltzkit.cli as cli

    def broken(args):
        raise ZeroDivisionError("deep inside")

    monkeypatch.setattr(cli, "_show_config", broken)
    monkeypatch.setenv("BOLTZKIT_DEBUG", "0")
    assert main(["config"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("boltzkit: internal error: ZeroDivisionError: deep inside") and "--debug" in err
    assert len(err.strip().splitlines()) == 1
    with pytest.raises(ZeroDivisionError):
        main(["--debug", "config"])


def test_overwrite_checks_first_and_deletes_only_what_a_run_writes(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--out", str(out), *FAST]) == 0
    (out / "notes.txt").write_text("mine")
    assert main(["sample", str(out), "--n", "2", "--steps", "2", "--pt", "3"]) == 0
    assert main(["train", "--out", str(out), *FAST, "--overwrite", "--set", "train.early_stopping={metric: nope}"]) == 2
    assert (out / "model.safetensors").is_file()  # a refused config deletes nothing
    assert main(["train", "--out", str(out), *FAST, "--overwrite"]) == 0
    assert (out / "notes.txt").read_text() == "mine"  # not a file boltzkit writes
    assert not list(out.glob("samples-n2-*"))  # boltzkit sample's files are a run's


def test_resume_applies_a_new_rate_and_refuses_keys_the_checkpoint_fixes(tmp_path, capsys):
    import json

    out = tmp_path / "run"
    assert main(["train", "--out", str(out), *FAST, "--set", "train.schedule={name: constant}",
                 "--set", "train.optimizer.lr=0.02"]) == 0
    assert main(["train", "--out", str(out), "--resume", "--quiet", "--set", "train.epochs=3",
                 "--set", "train.optimizer.lr=0.001"]) == 0
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [round(row["lr"], 6) for row in rows] == [0.02, 0.02, 0.001]
    capsys.readouterr()
    assert main(["train", "--out", str(out), "--resume", "--set", "train.epochs=4",
                 "--set", "model.n_hidden=32"]) == 2
    assert "--resume cannot change model.n_hidden: 16 -> 32" in capsys.readouterr().err


def test_resume_without_last_pt_but_with_epoch_checkpoints_is_refused(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--out", str(out), *FAST, "--set", "train.checkpoint_every=1"]) == 0
    (out / "checkpoints" / "last.pt").unlink()
    assert main(["train", "--out", str(out), "--resume"]) == 2
    assert "last.pt is missing but epoch-0002.pt is there" in capsys.readouterr().err


def test_off_a_terminal_training_prints_epoch_lines_without_a_bar_and_quiet_keeps_the_summary(tmp_path, capsys):
    assert main(["train", "--out", str(tmp_path / "a"), *[a for a in FAST if a != "--quiet"]]) == 0
    out, err = capsys.readouterr()
    assert "epoch   1:" in out and "epoch   2:" in out and "done in" in out
    assert "\r" not in out + err and "batch/s" not in out + err  # no progress-bar redraws in a log
    assert main(["train", "--out", str(tmp_path / "b"), *FAST]) == 0
    out, _ = capsys.readouterr()
    assert "epoch   1:" not in out and out.startswith("done in")
