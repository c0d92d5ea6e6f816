"""The classifier of Salakhutdinov & Hinton (2009): an MLP over ``[v, q(h_2 | v)]`` seeded
from a two-hidden-layer DBM (``model.pretrained_input: augmented``)."""

from __future__ import annotations

import re

import pytest
import torch

from boltzkit import load
from boltzkit.config import load_config
from boltzkit.data import load_dataset
from boltzkit.errors import ConfigError, DataError
from boltzkit.families.mlp import input_features
from boltzkit.models.dbm import CLASSIFIER_SWEEPS, CLASSIFIER_TOL
from boltzkit.train import Fit, train
from boltzkit.train.evaluate_run import evaluate_run
from helpers import random_dbm

DIGITS = ["data.limit=200", "threads=1", "train.metrics_examples=50"]
DBM_RUN = ["model={type: dbm, layers: [8, 6], centered: true, init_std: 0.5}", "train.epochs=1",
           "train.batch_size=25", "data.binarize=threshold", *DIGITS]
AUGMENTED = ["model={type: mlp, hidden_layers: [8, 6], activation: sigmoid, pretrained_input: augmented}",
             "data.binarize=none", "train.epochs=1", *DIGITS]
TWO_LAYERS = "defined for a DBM with two hidden layers, and this one has 3"


@pytest.fixture(scope="module")
def dbm_run(tmp_path_factory):
    """A tiny centered DBM run on digits (centered: the seeding must fold the offsets in)."""
    out = tmp_path_factory.mktemp("dbm") / "run"
    train(load_config(None, DBM_RUN), out, progress=False)
    return out


# ---------------------------------------------------------------- the model's maths


def test_per_example_mean_field_rows_equal_single_example_runs():
    model = random_dbm((7, 5, 4), seed=1, centered=True, scale=1.0)
    v = torch.rand(6, 7, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    batch, _ = model.mean_field(v, 40, 1e-5, per_example=True)
    sweeps = set()
    for i in range(len(v)):
        single, taken = model.mean_field(v[i:i + 1], 40, 1e-5)
        sweeps.add(taken)
        for depth in (1, 2):
            torch.testing.assert_close(batch[depth][i:i + 1], single[depth], rtol=0, atol=1e-13)
    assert len(sweeps) > 1  # rows converge at different sweeps: freezing is what is tested


def test_input_features_is_the_mean_field_top_layer_at_a_fixed_point():
    model = random_dbm((7, 5, 4), seed=3, centered=True, scale=1.0)
    v = torch.bernoulli(torch.full((5, 7), 0.5, dtype=torch.float64), generator=torch.Generator().manual_seed(4))
    q = model.input_features(v)
    for i in range(len(v)):
        states, taken = model.mean_field(v[i:i + 1], CLASSIFIER_SWEEPS, CLASSIFIER_TOL)
        assert taken < CLASSIFIER_SWEEPS  # converged, not cut off
        torch.testing.assert_close(q[i:i + 1], states[2], rtol=0, atol=1e-13)
        # a fixed point: the first layer's update moves it by no more than the tolerance (the
        # top layer, updated last from the final h1, satisfies its equation exactly anyway)
        assert (torch.sigmoid(model.layer_input(states, 1)) - states[1]).abs().max() < 10 * CLASSIFIER_TOL


def test_augmented_affines_compute_the_mean_field_updates_of_a_centered_model():
    model = random_dbm((7, 5, 4), seed=5, centered=True, scale=1.0)
    g = torch.Generator().manual_seed(6)
    v = torch.rand(3, 7, generator=g, dtype=torch.float64)
    h1 = torch.rand(3, 5, generator=g, dtype=torch.float64)
    q = torch.rand(3, 4, generator=g, dtype=torch.float64)
    (a1, c1), (a2, c2) = model.augmented_affines()
    assert a1.shape == (7 + 4, 5) and a2.shape == (5, 4)
    mu0, _, mu2 = model.offsets()
    w1, w2 = model.weights
    b1, b2 = model.biases[1], model.biases[2]
    # the centered energy's conditionals, written out
    expected1 = torch.sigmoid(b1 + (v - mu0) @ w1 + (q - mu2) @ w2.T)
    expected2 = torch.sigmoid(b2 + (h1 - model.offsets()[1]) @ w2)
    torch.testing.assert_close(torch.sigmoid(torch.cat([v, q], 1) @ a1 + c1), expected1, rtol=0, atol=1e-12)
    torch.testing.assert_close(torch.sigmoid(h1 @ a2 + c2), expected2, rtol=0, atol=1e-12)


def test_the_augmented_input_is_refused_for_other_depths():
    model = random_dbm((7, 5, 4, 3), centered=True, scale=1.0)
    with pytest.raises(ValueError, match=TWO_LAYERS):
        model.input_features(torch.rand(2, 7, dtype=torch.float64))
    with pytest.raises(ValueError, match=TWO_LAYERS):
        model.augmented_affines()


# ---------------------------------------------------------------- through model.pretrained


def test_seeded_layers_compute_the_dbm_classifier_right_after_seeding(dbm_run):
    session = Fit(load_config(None, [*AUGMENTED, f"model.pretrained={dbm_run}"]))
    mlp, task = session.model.eval(), session.task
    dbm = load(dbm_run).model.double()
    data = load_dataset(session.config.data, session.config.seed)
    v = data.train.double()
    q = dbm.input_features(v)
    # the task's inputs: the features, then q(h2 | v), computed once
    assert task.train_x.shape == (len(v), 64 + 6)
    torch.testing.assert_close(task.train_x[:, :64], data.train, rtol=0, atol=0)
    torch.testing.assert_close(task.train_x[:, 64:].double(), q, rtol=0, atol=1e-5)
    first, second = (block.double() for block in mlp.hidden)
    (w1, w2), (mu0, mu1, mu2) = dbm.weights, dbm.offsets()
    h1 = torch.sigmoid(dbm.biases[1] + (v - mu0) @ w1 + (q - mu2) @ w2.T)
    with torch.no_grad():
        # float32 weights with the offsets folded into the biases: agreement to float32 rounding
        torch.testing.assert_close(first(torch.cat([v, q], 1)), h1, rtol=0, atol=1e-5)
        torch.testing.assert_close(second(h1), torch.sigmoid(dbm.biases[2] + (h1 - mu1) @ w2), rtol=0, atol=1e-5)


def test_evaluate_applies_the_augmentation(dbm_run, tmp_path):
    train(load_config(None, [*AUGMENTED, f"model.pretrained={dbm_run}", "train.epochs=10",
                             "train.batch_size=20", "train.optimizer={name: adam, lr: 0.05}"]),
          tmp_path / "mlp", progress=False)
    results = evaluate_run(tmp_path / "mlp", "test", progress=False, device="cpu")
    run = load(tmp_path / "mlp")
    data = load_dataset(run.config.data, run.config.seed)
    inputs = input_features(run, data.test)
    assert inputs.shape == (len(data.test), 64 + 6)
    with torch.no_grad():
        accuracy = (run.model(inputs).argmax(1) == data.test_labels).double().mean().item()
    assert results["accuracy"] == pytest.approx(accuracy, abs=1e-6)  # one example is 1/297
    assert results["accuracy"] > 0.5  # trained: far above chance (0.1)
    # a run directory works as well as a loaded run; plain runs read their features as they are
    torch.testing.assert_close(input_features(tmp_path / "mlp", data.test[:4]), inputs[:4], rtol=0, atol=0)


def test_a_retrained_dbm_is_refused_by_the_classifier_that_read_it(tmp_path):
    """The classifier records the DBM's weight digest; once that run is overwritten by
    another DBM, evaluating the classifier or computing its inputs is an error, not a silent
    change of inputs."""
    dbm = tmp_path / "dbm"
    train(load_config(None, DBM_RUN), dbm, progress=False)
    train(load_config(None, [*AUGMENTED, f"model.pretrained={dbm}"]), tmp_path / "mlp", progress=False)
    run = load(tmp_path / "mlp")
    assert len(run.data_info["pretrained_sha256"]) == 64
    evaluate_run(tmp_path / "mlp", "test", progress=False, device="cpu")  # unchanged: accepted
    train(load_config(None, [*DBM_RUN, "seed=1"]), dbm, overwrite=True, progress=False)
    changed = f"{dbm}: this pretrained model has changed since the run that reads it was trained"
    with pytest.raises(DataError, match=re.escape(changed)):
        evaluate_run(tmp_path / "mlp", "test", progress=False, device="cpu")
    with pytest.raises(DataError, match=re.escape(changed)):
        input_features(run, torch.zeros(2, 64))


def test_sources_without_the_hook_and_deeper_dbms_are_refused(tmp_path):
    train(load_config(None, ["model={type: rbm, n_hidden: 8}", "train.epochs=1", *DIGITS]),
          tmp_path / "rbm", progress=False)
    with pytest.raises(DataError, match="model.pretrained_input 'augmented' needs a pretrained run whose "
                       "model computes extra input features .*model.type 'rbm', for which the accepted "
                       "value is 'plain'"):
        Fit(load_config(None, [*AUGMENTED, f"model.pretrained={tmp_path / 'rbm'}"]))
    train(load_config(None, [*DBM_RUN, "model.layers=[8, 6, 4]"]), tmp_path / "deep", progress=False)
    with pytest.raises(DataError, match=TWO_LAYERS):
        Fit(load_config(None, [*AUGMENTED, f"model.pretrained={tmp_path / 'deep'}"]))


def test_configurations_the_augmented_input_cannot_serve(dbm_run):
    with pytest.raises(ConfigError, match="model.pretrained_input: augmented needs model.pretrained"):
        load_config(None, ["model={type: mlp, pretrained_input: augmented}", "data.binarize=none"])
    with pytest.raises(ConfigError, match="'model.pretrained_input': invalid value 'both'"):
        load_config(None, ["model={type: mlp, pretrained_input: both}", "data.binarize=none"])
    with pytest.raises(ConfigError, match="'data.binarize': dynamic .* accepted with it: none, threshold"):
        Fit(load_config(None, [*AUGMENTED, f"model.pretrained={dbm_run}", "data.binarize=dynamic"]))
    with pytest.raises(DataError, match="pretrained layer 2 has weights of shape \\(6, 8\\) but hidden "
                       "layer 2 needs \\(5, 8\\)"):
        Fit(load_config(None, [*AUGMENTED, f"model.pretrained={dbm_run}", "model.hidden_layers=[8, 5]"]))
