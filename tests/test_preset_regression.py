"""Behaviour is unchanged: each preset (and the CD, PT, BM and MLP paths), trained briefly,
ends with exactly the weights saved in tests/reference/weights/ before the model-family
refactor. The runs happen in a subprocess with the numerics pinned (one thread, AVX2
kernels, MKL_CBWR=AVX2), which makes the bits the same on every x86-64 machine we use."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from conftest import SHARED_MNIST

HERE = Path(__file__).parent / "reference"
sys.path.insert(0, str(HERE))
from preset_runs import CASES, PINNED_ENV  # noqa: E402


@pytest.fixture(scope="module")
def fresh_runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("preset-runs")
    command = [sys.executable, str(HERE / "preset_runs.py"), str(out)]
    mnist = Path(os.environ.get("BOLTZKIT_MNIST", SHARED_MNIST)).resolve()
    if mnist.is_file():
        command += ["--mnist", str(mnist)]
    subprocess.run(command, check=True, env={**os.environ, **PINNED_ENV}, timeout=600)
    return out


@pytest.mark.parametrize("name", CASES)
def test_preset_trains_to_the_reference_weights(name, fresh_runs):
    if not (fresh_runs / name).is_dir():
        pytest.skip(f"{name}: MNIST not available (set BOLTZKIT_MNIST to an mnist.npz)")
    expected = load_file(HERE / "weights" / f"{name}.safetensors")
    got = load_file(fresh_runs / name / "model.safetensors")
    assert sorted(got) == sorted(expected)
    for key, tensor in expected.items():
        assert torch.equal(got[key], tensor), f"{name}: {key} differs (max {(got[key] - tensor).abs().max():.3g})"
    reference = json.loads((HERE / "weights" / "metrics.json").read_text())[name]
    metrics = json.loads((fresh_runs / "summary.json").read_text())[name]
    for key, value in reference.items():
        if key != "seconds":
            assert metrics[key] == pytest.approx(value, rel=1e-6, abs=1e-9), key
