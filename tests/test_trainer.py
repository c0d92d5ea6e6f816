import os
import signal

import pytest
import torch

from boltzkit.config import load_config
from boltzkit.errors import CheckpointError, ConfigError, DivergenceError
from boltzkit.train import TrainingInterrupted, train
from boltzkit.train.checkpoint import load_checkpoint
from boltzkit.train.run_dir import RunDir, load_run_model

SMALL = ["train.epochs=4", "model.n_hidden=16", "data.limit=300", "train.batch_size=20",
         "train.checkpoint_every=2", "train.metrics_examples=50", "train.k=1",
         "train.optimizer={name: sgd, lr: 0.05, momentum: 0.9}"]


def small_config(*extra):
    return load_config(None, [*SMALL, *extra])


def _weights(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def _assert_same(a, b):
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


@pytest.mark.parametrize("variant", [
    ["train.method=pcd", "data.binarize=dynamic"],
    ["model={type: mlp}", "model.dropout=0.3", "model.batch_norm=true", "data.binarize=none"],
    ["train.method=pt", "train.pt={temperatures: 4, min_beta: 0.5}", "model.centered=true"],
    ["train.method=cd", "train.k=2", "data.binarize=stochastic",
     "train.schedule={name: exponential, unit: epoch, steps: 2}"],
])
def test_resume_after_a_crash_gives_the_weights_of_an_uninterrupted_run(tmp_path, variant):
    config = small_config(*variant)
    torch.manual_seed(0)  # dropout uses the global generator, which the CLI seeds
    full = train(config, tmp_path / "full", progress=False)

    def crash(epoch, metrics):
        if epoch == 1:  # after the epoch-2 checkpoint
            raise RuntimeError("simulated crash")

    torch.manual_seed(0)
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(config, tmp_path / "cut", progress=False, on_epoch_end=crash)
    torch.manual_seed(123)  # resuming must restore the global generator itself
    resumed = train(config, tmp_path / "cut", resume=True, progress=False)
    _assert_same(_weights(full.model), _weights(resumed.model))
    assert [row["epoch"] for row in resumed.history] == [1, 2, 3, 4]
    assert resumed.history[-1] == {**full.history[-1], "seconds": resumed.history[-1]["seconds"]}
    assert len(RunDir(tmp_path / "cut").read_metrics()) == 4


def test_ctrl_c_mid_epoch_saves_an_exact_checkpoint(tmp_path):
    config = small_config("train.schedule={name: cosine, unit: step}")
    full = train(config, tmp_path / "full", progress=False)

    def press_ctrl_c(epoch, metrics):
        if epoch == 0:
            os.kill(os.getpid(), signal.SIGINT)  # arrives during the next update

    with pytest.raises(TrainingInterrupted) as info:
        train(config, tmp_path / "cut", progress=False, on_epoch_end=press_ctrl_c)
    state = load_checkpoint(info.value.checkpoint)
    position = state["fit"]["train_state"]["epoch"], state["fit"]["batches"]["position"]
    assert position[0] == 1 and 1 <= position[1] < 14  # mid-epoch (14 batches per epoch)
    resumed = train(config, tmp_path / "cut", resume=True, progress=False)
    _assert_same(_weights(full.model), _weights(resumed.model))


def test_only_the_newest_epoch_checkpoints_are_kept(tmp_path):
    kept = train(small_config("train.checkpoint_every=1", "train.checkpoint_keep=2", "train.epochs=5"),
                 tmp_path / "kept", progress=False)
    run = RunDir(kept.run_dir)
    assert [path.name for path in run.epoch_checkpoints()] == ["epoch-0004.pt", "epoch-0005.pt"]
    assert load_checkpoint(run.last_checkpoint)["fit"]["train_state"]["epoch"] == 5
    every = train(small_config("train.checkpoint_every=1", "train.checkpoint_keep=null", "train.epochs=5"),
                  tmp_path / "all", progress=False)
    assert len(RunDir(every.run_dir).epoch_checkpoints()) == 5
    _assert_same(_weights(kept.model), _weights(every.model))  # pruning leaves training alone


def test_pruning_spares_what_an_earlier_process_wrote_and_each_stages_newest(tmp_path):
    every = ["train.checkpoint_every=1", "train.checkpoint_keep=null"]
    first = train(small_config(*every, "train.schedule={name: constant}"), tmp_path / "run", progress=False)
    run = RunDir(first.run_dir)
    resumed = small_config("train.checkpoint_every=1", "train.checkpoint_keep=1", "train.epochs=7",
                           "train.schedule={name: constant}")
    train(resumed, run.path, resume=True, progress=False)
    # epochs 1-4 came from the first process; of this one's (5, 6, 7) only the newest stays
    assert [path.name for path in run.epoch_checkpoints()] == [f"epoch-000{e}.pt" for e in (1, 2, 3, 4, 7)]
    stack = train(load_config(None, ["model={type: dbn, layers: [8, 6]}", "data.limit=200", "train.batch_size=25",
                                     "train.epochs=3", "train.metrics_examples=40", "train.checkpoint_every=1",
                                     "train.checkpoint_keep=1"]), tmp_path / "dbn", progress=False)
    # layer 1's last epoch (3) outlives layer 2's three epochs
    assert [path.name for path in RunDir(stack.run_dir).epoch_checkpoints()] == ["epoch-0003.pt", "epoch-0006.pt"]


def test_epoch_checkpoints_come_in_epoch_order(tmp_path):
    run = RunDir(tmp_path)
    run.checkpoints.mkdir()
    for name in ["epoch-10000.pt", "epoch-0002.pt", "epoch-9999.pt", "epoch-best.pt", "last.pt"]:
        (run.checkpoints / name).write_bytes(b"")
    assert [path.name for path in run.epoch_checkpoints()] == ["epoch-0002.pt", "epoch-9999.pt", "epoch-10000.pt"]


def test_run_directory_contents(tmp_path):
    result = train(small_config(), tmp_path / "run", progress=False)
    run = RunDir(result.run_dir)
    for name in ["config.yaml", "metrics.csv", "metrics.jsonl", "model.safetensors",
                 "samples.png", "filters.png", "curves.png"]:
        assert run.file(name).is_file(), name
    assert run.epoch_checkpoint(2).is_file() and run.epoch_checkpoint(4).is_file()
    header = run.metrics_csv.read_text().splitlines()[0].split(",")
    for column in ["epoch", "step", "lr", "loss", "seconds", "train_recon_error",
                   "val_recon_error", "train_pseudo_log_likelihood", "val_pseudo_log_likelihood",
                   "train_free_energy", "val_free_energy", "free_energy_gap"]:
        assert column in header
    assert run.read_config().to_dict() == result.config.to_dict()
    trained = load_run_model(run.path)
    _assert_same(_weights(trained.model), _weights(result.model))
    assert trained.image_shape == (8, 8) and trained.n_features == 64
    assert not [p for p in run.checkpoints.iterdir() if p.name.startswith(".")]  # no temp files


def test_training_improves_pseudo_likelihood(tmp_path):
    result = train(small_config("train.epochs=8", "data.limit=1000"), tmp_path / "run", progress=False)
    first, last = result.history[0], result.history[-1]
    assert last["val_pseudo_log_likelihood"] > first["val_pseudo_log_likelihood"] + 1.0
    assert last["train_recon_error"] < first["train_recon_error"]


def test_same_config_and_seed_give_the_same_run(tmp_path):
    a = train(small_config("train.epochs=2"), tmp_path / "a", progress=False)
    b = train(small_config("train.epochs=2"), tmp_path / "b", progress=False)
    c = train(small_config("train.epochs=2", "seed=1"), tmp_path / "c", progress=False)
    _assert_same(_weights(a.model), _weights(b.model))
    assert not torch.equal(a.model.weight, c.model.weight)


def test_divergence_stops_with_a_clear_message_and_keeps_the_last_checkpoint(tmp_path, diverge_above):
    diverge_above(1.0)
    config = small_config(
        "train.checkpoint_every=1", "train.optimizer={name: sgd, lr: 0.1}",
        "train.schedule={name: piecewise, unit: epoch, boundaries: [1], values: [1.0, 1000.0]}")
    with pytest.raises(DivergenceError) as info:
        train(config, tmp_path / "run", progress=False)
    message = str(info.value)
    assert "at epoch 2, step" in message and "learning rate 100" in message
    assert "last.pt" in message
    state = load_checkpoint(RunDir(tmp_path / "run").last_checkpoint)
    assert state["fit"]["train_state"]["epoch"] == 1
    assert all(torch.isfinite(t).all() for t in state["model"].values())


def test_existing_run_and_missing_checkpoint_errors(tmp_path):
    train(small_config("train.epochs=1"), tmp_path / "run", progress=False)
    with pytest.raises(ConfigError, match="already holds a run; pass --resume to continue it, --overwrite"):
        train(small_config("train.epochs=1"), tmp_path / "run", progress=False)
    fresh = train(small_config("train.epochs=1"), tmp_path / "empty", resume=True, progress=False)
    assert fresh.epochs_trained == 1  # nothing to resume from: it starts at the beginning


def test_corrupt_and_foreign_checkpoints(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"\x00garbage")
    with pytest.raises(CheckpointError, match="bad.pt: not a readable boltzkit checkpoint"):
        load_checkpoint(bad)
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(2)}, foreign)
    with pytest.raises(CheckpointError, match="foreign.pt: not a boltzkit checkpoint"):
        load_checkpoint(foreign)
    future = tmp_path / "future.pt"
    torch.save({"format": "boltzkit-checkpoint", "version": 99}, future)
    with pytest.raises(CheckpointError, match="checkpoint version 99 is not supported"):
        load_checkpoint(future)
    with pytest.raises(CheckpointError, match="missing.pt: checkpoint not found"):
        load_checkpoint(tmp_path / "missing.pt")


def test_weights_that_do_not_fit_the_config(tmp_path):
    result = train(small_config("train.epochs=1"), tmp_path / "run", progress=False)
    run = RunDir(result.run_dir)
    run.config.write_text(run.config.read_text().replace("n_hidden: 16", "n_hidden: 17"))
    with pytest.raises(CheckpointError, match="model.safetensors: weights do not fit the configured model"):
        load_run_model(run.path)
    with pytest.raises(CheckpointError, match="not a boltzkit run directory \\(no config.yaml\\)"):
        load_run_model(tmp_path)


def test_unavailable_cuda_is_a_config_error(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    with pytest.raises(ConfigError, match="'cuda' requested but CUDA is not available"):
        train(small_config("device=cuda"), tmp_path / "run", progress=False)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_trains_on_cuda(tmp_path):
    result = train(small_config("device=cuda", "train.epochs=2"), tmp_path / "run", progress=False)
    assert result.model.weight.device.type == "cuda"
    assert result.history[-1]["val_pseudo_log_likelihood"] < 0


def test_in_training_likelihood_is_logged(tmp_path):
    exact = train(small_config("train.epochs=2", "eval.every=1", "model.n_hidden=10"),
                  tmp_path / "exact", progress=False)
    row = exact.history[-1]
    assert {"exact_log_z", "train_log_likelihood", "val_log_likelihood"} <= row.keys()
    assert row["val_log_likelihood"] < row["val_pseudo_log_likelihood"] + 30  # same scale, nats
    ais = train(small_config("train.epochs=2", "eval.every=2", "eval.exact_max_units=0",
                             "eval.quick_ais={runs: 8, betas: 200}"), tmp_path / "ais", progress=False)
    assert "ais_log_z" not in ais.history[0]
    assert {"ais_log_z", "ais_ess", "val_ais_log_likelihood"} <= ais.history[1].keys()


def test_gaussian_rbm_trains_stably_on_standardized_digits(tmp_path):
    config = load_config("grbm-digits", ["train.epochs=6", "train.metrics_examples=200"])
    result = train(config, tmp_path / "run", progress=False)
    errors = [row["val_recon_error"] for row in result.history]
    assert all(torch.isfinite(torch.tensor(errors)))
    assert errors[-1] < 0.9 * errors[0]  # standardized: about 64 would be "predict the mean"
    sigma = result.model.visible.sigma
    assert bool((sigma > 0.04).all()) and not torch.allclose(sigma, torch.ones_like(sigma))
    assert (tmp_path / "run" / "samples.png").is_file()


def test_parallel_tempering_training_logs_swap_rates(tmp_path):
    """Replicas at (almost) the same temperature swap (almost) always: the Metropolis ratio
    is exp((beta_m - beta_m+1)(E_m - E_m+1)) ~ 1; a ladder down to a hot replica swaps less."""
    close = train(small_config("train.method=pt", "train.pt={betas: [1.0, 0.9999]}"),
                  tmp_path / "close", progress=False)
    wide = train(small_config("train.method=pt", "train.pt={temperatures: 3, min_beta: 0.05}"),
                 tmp_path / "wide", progress=False)
    for row in close.history:
        assert row["pt_swap_rate_min"] == row["pt_swap_rate_mean"] > 0.99  # one pair only
    for row in wide.history:
        assert row["pt_swap_rate_min"] < min(r["pt_swap_rate_mean"] for r in close.history)


def test_metrics_are_appended_per_epoch_and_rewritten_when_a_column_appears(tmp_path):
    run = RunDir(tmp_path)
    history = [{"epoch": 1, "loss": 1.0}]
    run.write_metrics(history)
    history.append({"epoch": 2, "loss": 0.5})
    run.write_metrics(history)
    assert run.metrics_csv.read_text().splitlines() == ["epoch,loss", "1,1.0", "2,0.5"]
    history.append({"epoch": 3, "loss": 0.25, "val_ais_log_likelihood": -20.0})  # a new column
    run.write_metrics(history)
    assert run.metrics_csv.read_text().splitlines() == [
        "epoch,loss,val_ais_log_likelihood", "1,1.0,", "2,0.5,", "3,0.25,-20.0"]
    assert run.read_metrics() == history
    stale = RunDir(tmp_path)  # a resumed run: its history (2 rows) replaces what a crash left
    stale.write_metrics(history[:2])
    assert run.read_metrics() == history[:2]


def test_tensorboard_logs_every_epoch(tmp_path):
    pytest.importorskip("tensorboard", reason="the tensorboard extra is not installed")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    result = train(small_config("train.tensorboard=true", "train.epochs=3"), tmp_path / "run", progress=False)
    events = EventAccumulator(str(tmp_path / "run" / "tensorboard"))
    events.Reload()
    scalars = events.Scalars("val_pseudo_log_likelihood")
    assert [s.step for s in scalars] == [1, 2, 3]
    assert [s.value for s in scalars] == pytest.approx(
        [row["val_pseudo_log_likelihood"] for row in result.history], rel=1e-6)


def test_tensorboard_missing_is_one_config_error_before_anything_is_written(tmp_path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_tensorboard(name, *args, **kwargs):
        if name == "torch.utils.tensorboard":
            raise ImportError("No module named 'tensorboard'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_tensorboard)
    with pytest.raises(ConfigError, match=r"pip install 'boltzkit\[tensorboard\]'"):
        train(small_config("train.tensorboard=true"), tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


def test_a_rate_change_survives_a_crash_before_the_next_checkpoint(tmp_path):
    config = small_config("train.schedule={name: constant}", "train.checkpoint_every=2", "train.epochs=2",
                          "train.optimizer={name: sgd, lr: 0.05}")
    train(config, tmp_path / "run", progress=False)
    longer = config.with_overrides({"train.epochs": 4, "train.optimizer.lr": 0.001})

    def crash(epoch, metrics):
        if epoch == 2:  # epoch 3: no checkpoint (every 2), config.yaml already says 0.001
            raise RuntimeError("simulated crash")

    with pytest.raises(RuntimeError):
        train(longer, tmp_path / "run", resume=True, progress=False, on_epoch_end=crash)
    resumed = train(RunDir(tmp_path / "run").read_config(), tmp_path / "run", resume=True, progress=False)
    assert [round(row["lr"], 6) for row in resumed.history] == [0.05, 0.05, 0.001, 0.001]
