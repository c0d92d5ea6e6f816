"""The family registry as the rest of boltzkit reads it: config validation without the
trainer, presets, metric directions, capability gates of the command line, in-memory
fit(), and the Ctrl-C path of tuning."""

import json
import subprocess
import sys

import pytest
import torch

from boltzkit.cli import main
from boltzkit.config import load_config, preset_names
from boltzkit.errors import ConfigError
from boltzkit.families import family_names, get_family
from boltzkit.train import fit
from boltzkit.train.trainer import TrainingInterrupted

TINY = ["train.epochs=1", "data.limit=150", "train.metrics_examples=40", "threads=1"]


def test_validating_a_config_imports_neither_the_trainer_nor_matplotlib():
    code = ("import sys; from boltzkit.config import load_config; load_config('rbm-mnist'); "
            "print(sorted(m for m in sys.modules if m.startswith(('boltzkit.train', 'boltzkit.tune', "
            "'matplotlib', 'optuna'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_every_preset_belongs_to_one_family_and_validates_as_it():
    owners = {preset: name for name in family_names() for preset in get_family(name).presets}
    assert set(owners) == set(preset_names())
    for preset, family in owners.items():
        assert load_config(preset).model.type == family


def test_presets_command_names_each_preset_family(capsys):
    assert main(["presets"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == preset_names()
    assert {line.split()[0]: line.split()[1] for line in lines} == {
        "grbm-digits": "rbm:", "mlp-digits": "mlp:", "rbm-digits": "rbm:", "rbm-mnist": "rbm:",
        "rbm-potts": "rbm:", "gan-digits": "gan:", "gan-mnist": "gan:", "cgan-mnist": "gan:", "dbn-digits": "dbn:",
        "dbn-mnist": "dbn:", "dbn-mnist-labels": "dbn:", "dbm-digits": "dbm:", "dbm-mnist": "dbm:", "vae-digits": "vae:",
        "vae-mnist": "vae:", "ae-digits": "autoencoder:", "sda-mnist": "autoencoder:"}


def test_config_prints_only_the_family_keys(capsys):
    assert main(["config", "rbm-mnist"]) == 0
    rbm = capsys.readouterr().out
    assert "offset_rate:" in rbm and "activation:" not in rbm and "hidden_layers:" not in rbm
    assert main(["config", "--set", "model={type: mlp}"]) == 0
    mlp = capsys.readouterr().out
    assert "hidden_layers:" in mlp and "n_hidden:" not in mlp and "visible:" not in mlp


def test_switching_family_with_a_single_key_says_how():
    with pytest.raises(ConfigError, match="unknown config key 'model.n_hidden'; accepted keys in model: "
                       "type, hidden_layers, .*replace the whole section, e.g. --set 'model=\\{type: mlp\\}'"):
        load_config(None, ["model.type=mlp"])


@pytest.mark.parametrize("family, metric, direction", [
    ("rbm", "val_pseudo_log_likelihood", "maximize"),
    ("rbm", "val_recon_error", "minimize"),
    ("rbm", "free_energy_gap", "minimize"),
    ("rbm", "ais_ess", "maximize"),
    ("rbm", "loss", "minimize"),
    ("rbm", "exact_log_z", None),  # informative only: not a quantity to optimise
    ("bm", "val_log_likelihood", "maximize"),
    ("mlp", "val_accuracy", "maximize"),
    ("mlp", "val_loss", "minimize"),
    ("mlp", "val_pseudo_log_likelihood", None),  # not an MLP metric
])
def test_metric_directions_are_declared_by_the_family(family, metric, direction):
    assert get_family(family).direction(metric) == direction


def test_tune_direction_comes_from_the_family_or_is_an_error():
    pytest.importorskip("optuna")
    from boltzkit.tune.study import direction

    assert direction(load_config(None, ["tune.metric=val_recon_error"])) == "minimize"
    assert direction(load_config(None, ["tune.metric=exact_log_z", "tune.direction=maximize"])) == "maximize"
    with pytest.raises(ConfigError, match="tune.metric 'exact_log_z' is informative only; choose one of "):
        direction(load_config(None, ["tune.metric=exact_log_z"]))
    with pytest.raises(ConfigError, match="tune.metric 'val_accuracy' is not a metric of model.type 'rbm'"):
        direction(load_config(None, ["tune.metric=val_accuracy"]))


def test_fit_trains_in_memory_and_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = fit(load_config(None, [*TINY, "model.n_hidden=8"]))
    assert list(tmp_path.iterdir()) == []
    assert [row["epoch"] for row in result.history] == [1]
    v = result.task.monitor_val
    assert result.history[0]["val_free_energy"] == pytest.approx(result.model.free_energy(v).mean().item(),
                                                                 rel=1e-6)


def _train(tmp_path, *overrides):
    out = tmp_path / "run"
    args = ["train", "--out", str(out), "--quiet"]
    for item in [*TINY, *overrides]:
        args += ["--set", item]
    assert main(args) == 0
    return out


def test_sample_is_refused_for_families_that_cannot(tmp_path, capsys):
    out = _train(tmp_path, "model={type: mlp, hidden_layers: [8]}", "data.binarize=none")
    assert main(["sample", str(out)]) == 2
    assert ("holds a model.type 'mlp', which cannot be sampled (families that can: rbm, bm, dbn, dbm, vae, gan)"
            in capsys.readouterr().err)


def test_evaluate_a_classifier_reports_accuracy_on_the_test_split(tmp_path, capsys):
    out = _train(tmp_path, "model={type: mlp, hidden_layers: [8]}", "data.binarize=none")
    assert main(["evaluate", str(out), "--quiet"]) == 0
    results = json.loads((out / "evaluation.json").read_text())
    from boltzkit.data import load_dataset
    from boltzkit.train.run_dir import load_run_model

    trained = load_run_model(out)
    data = load_dataset(trained.config.data, trained.config.seed, unit_interval=False)
    with torch.no_grad():
        predicted = trained.model.eval()(data.test).argmax(1)
    assert results["examples"] == len(data.test) == 297
    assert results["accuracy"] == pytest.approx((predicted == data.test_labels).float().mean().item())
    assert "accuracy" in capsys.readouterr().out


def test_evaluate_a_small_boltzmann_machine_gives_its_exact_likelihood(tmp_path):
    out = _train(tmp_path, "model={type: bm, n_hidden: 2}", "data.name=potts",
                 "data.potts={length: 4, states: 2, examples: 200}", "train.k=1")
    assert main(["evaluate", str(out), "--split", "validation", "--quiet"]) == 0
    results = json.loads((out / "evaluation.json").read_text())
    from boltzkit.data import load_dataset
    from boltzkit.estimate.exact_bm import bm_log_likelihood
    from boltzkit.train.run_dir import load_run_model

    trained = load_run_model(out)
    data = load_dataset(trained.config.data, trained.config.seed)
    assert results["log_likelihood_exact"] == pytest.approx(
        bm_log_likelihood(trained.model, data.validation.double()).mean().item(), rel=1e-6)
    assert results["examples"] == len(data.validation) and results["model_type"] == "bm"


def test_ctrl_c_during_a_trial_ends_the_study_instead_of_failing_the_trial(tmp_path, monkeypatch):
    pytest.importorskip("optuna")
    import boltzkit.tune.study as study

    calls = []

    def interrupted_train(config, out, **kwargs):
        calls.append(out)
        raise TrainingInterrupted(out / "checkpoints" / "last.pt", 0, 3)

    monkeypatch.setattr(study, "train", interrupted_train)
    config = load_config(None, [*TINY, "tune.n_trials=5", "tune.method=random", "tune.pruner=none",
                                "tune.space={train.optimizer.lr: {low: 0.001, high: 0.1, log: true}}"])
    with pytest.raises(TrainingInterrupted):
        study.run(config, tmp_path / "study", progress=False)
    assert len(calls) == 1  # no further trial started


@pytest.mark.parametrize("family, overrides", [
    ("rbm", ["model.n_hidden=8"]),
    ("bm", ["model={type: bm, n_hidden: 2}", "data.name=potts", "data.potts={length: 3, states: 2}"]),
    ("mlp", ["model={type: mlp, hidden_layers: [8]}", "data.binarize=none"]),
    ("gan", ["model={type: gan, latent: 4, generator_layers: [8], discriminator_layers: [8]}",
             "data.binarize=none"]),
    ("vae", ["model={type: vae, latent: 2, hidden_layers: [8]}"]),  # latent 2: latent_map.png too
    ("autoencoder", ["model={type: autoencoder, hidden_layers: [8], corruption: masking}", "data.binarize=none"]),
])
def test_a_run_writes_the_figures_its_family_declares(tmp_path, family, overrides):
    out = _train(tmp_path, *overrides)
    assert {p.name for p in out.glob("*.png")} == set(get_family(family).figures)


def test_plateau_on_a_metric_the_family_does_not_log_is_refused_before_training():
    with pytest.raises(ConfigError, match="'train.schedule': plateau watches 'val_loss' after each epoch; "
                                          "it needs unit: epoch and a metric that model.type 'rbm' logs"):
        fit(load_config(None, [*TINY, "train.schedule={name: plateau}"]))
    result = fit(load_config(None, [*TINY, "model.n_hidden=8", "train.epochs=2",
                                    "train.schedule={name: plateau, metric: val_recon_error}"]))
    assert len(result.history) == 2


def test_lr_find_works_with_monitoring_off(tmp_path):
    from boltzkit.train.lr_find_run import find_lr

    config = load_config(None, ["model={type: mlp, hidden_layers: [16]}", "data.binarize=none",
                                "train.metrics_examples=0", "threads=1"])
    result, _ = find_lr(config, tmp_path, iterations=20, progress=False)
    assert len(result.lrs) == 20


def test_resuming_with_another_batch_size_is_refused(tmp_path, capsys):
    out = _train(tmp_path, "model.n_hidden=8", "train.epochs=2")
    assert main(["train", "--out", str(out), "--resume", "--set", "train.epochs=3",
                 "--set", "train.batch_size=20", "--quiet"]) == 2
    assert "--resume cannot change train.batch_size: 32 -> 20" in capsys.readouterr().err


def test_a_trial_whose_ais_likelihood_is_unreliable_cannot_win(tmp_path, monkeypatch):
    pytest.importorskip("optuna")
    from types import SimpleNamespace

    from optuna.trial import TrialState

    import boltzkit.tune.study as study

    def fake_train(config, out, on_epoch_end=None, **kwargs):
        lr = config.train.optimizer.lr
        row = {"val_ais_log_likelihood": -20.0 + lr, "ais_reliable": float(lr < 0.01)}
        on_epoch_end(0, row)
        return SimpleNamespace(history=[row], kept_epoch=1)

    monkeypatch.setattr(study, "train", fake_train)
    config = load_config(None, [*TINY, "tune.n_trials=6", "tune.method=random", "tune.pruner=none",
                                "tune.metric=val_ais_log_likelihood",
                                "tune.space={train.optimizer.lr: {low: 0.001, high: 0.1, log: true}}"])
    result = study.run(config, tmp_path / "study", progress=False)
    trials = result.get_trials()
    unreliable = [t for t in trials if t.params["train.optimizer.lr"] >= 0.01]
    assert unreliable and all(t.state == TrialState.PRUNED for t in unreliable)
    assert all("unreliable AIS" in t.user_attrs["pruned_reason"] for t in unreliable)
    assert result.best_trial.params["train.optimizer.lr"] < 0.01  # the higher, unreliable values lost


EVALUATED_SAMPLERS = {  # a tiny run of each family that samples and evaluates, and its options
    "rbm": (["model.n_hidden=8"], {"ais_runs": 8, "ais_betas": 100}),
    "bm": (["model={type: bm, n_hidden: 2}", "data.name=potts", "data.potts={length: 4, states: 2, examples: 200}",
            "train.k=1"], {}),
    "dbn": (["model={type: dbn, layers: [8, 6]}"], {"ais_runs": 8, "ais_betas": 100}),
    "dbm": (["model={type: dbm, layers: [8, 6]}"], {"ais_runs": 8, "ais_betas": 100}),
    "vae": (["model={type: vae, latent: 2, hidden_layers: [8]}"], {"k": 10}),
}


@pytest.mark.parametrize("family", [
    name for name in family_names() if get_family(name).capabilities.sample and get_family(name).capabilities.evaluate])
def test_each_evaluating_sampler_reports_a_likelihood_key_that_comparisons_read(family):
    """benchmarks/mnist_zoo.py reads the test log-likelihood through reported_likelihood:
    a family whose evaluation reports none of LIKELIHOOD_KEYS would show n/a there."""
    from boltzkit.families.contract import LIKELIHOOD_KEYS, reported_likelihood

    overrides, options = EVALUATED_SAMPLERS[family]  # a new family adds its tiny run here
    result = fit(load_config(None, [*TINY, *overrides, "eval.every=0"]))
    results, _ = result.task.evaluate(result.model, "test" if family != "bm" else "validation", seed=0,
                                      **options)
    reported = reported_likelihood(results)
    assert reported is not None, (family, sorted(results))
    assert reported["kind"] in LIKELIHOOD_KEYS and reported["value"] == results[reported["kind"]]
    if any(key.startswith("ais_") for key in results):  # an AIS estimate says whether to trust it
        assert reported["reliable"] == bool(results["ais_reliable"])
    else:
        assert reported["reliable"] is None


def test_reported_likelihood_takes_the_best_key_and_reads_reliability_as_a_bool():
    from boltzkit.families.contract import reported_likelihood

    results = {"iwae_bound": -90.0, "log_likelihood_ais": -85.5, "log_likelihood_bound": -88.0,
               "ais_reliable": 0.0}
    assert reported_likelihood(results) == {"kind": "log_likelihood_ais", "value": -85.5, "reliable": False}
    assert reported_likelihood({"elbo": -91.0, "log_likelihood": -1.0}) is None  # not keys of the contract
    assert reported_likelihood({"iwae_bound": -90.0}) == {"kind": "iwae_bound", "value": -90.0, "reliable": None}


@pytest.mark.parametrize("family", [name for name in family_names() if get_family(name).capabilities.evaluate])
def test_evaluate_names_its_options_so_that_others_are_refused(family):
    """``boltzkit evaluate`` refuses an option the family does not take by reading the
    signature; a ``**options`` catch-all would let ``--k`` pass silently."""
    import inspect

    parameters = inspect.signature(get_family(family).task.evaluate).parameters.values()
    assert not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)
