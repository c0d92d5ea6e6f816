import glob
import math
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState

from boltzkit.cli import main
from boltzkit.config import load_config
from boltzkit.errors import ConfigError
from boltzkit.tune import run
from boltzkit.tune.space import grid, suggest
from boltzkit.tune.study import MetricMissing

FAST = ["data.limit=300", "model.n_hidden=16", "train.epochs=2", "train.metrics_examples=50",
        "train.batch_size=30", "train.k=1", "train.schedule={name: constant}",
        "train.optimizer={name: sgd, lr: 0.05, momentum: 0.5}"]


def tune_config(space: str, *extra: str):
    return load_config(None, [*FAST, f"tune.space={space}", *extra])


def test_grid_covers_every_combination_exactly_once(tmp_path):
    config = tune_config("{train.k: {choices: [1, 2]}, train.batch_size: {values: [20, 30, 60]}}",
                         "tune.method=grid", "tune.n_trials=50", "tune.pruner=none")
    study = run(config, tmp_path, progress=False)
    combos = [(t.params["train.k"], t.params["train.batch_size"]) for t in study.trials]
    assert sorted(combos) == sorted((k, b) for k in (1, 2) for b in (20, 30, 60))
    assert all(t.state == TrialState.COMPLETE for t in study.trials)


def _sample(space_yaml: str, key: str, n: int, seed: int = 0) -> np.ndarray:
    space = tune_config(space_yaml).tune.space
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    values = []
    for _ in range(n):
        trial = study.ask()
        values.append(suggest(trial, space)[key])
        study.tell(trial, 0.0)
    return np.asarray(values)


def test_log_uniform_sampling_is_uniform_in_log_space():
    from scipy import stats

    lrs = _sample("{train.optimizer.lr: {low: 1.0e-4, high: 1.0, log: true}}", "train.optimizer.lr", 3000)
    assert lrs.min() >= 1e-4 and lrs.max() <= 1.0
    u = (np.log10(lrs) + 4) / 4  # uniform on [0, 1] if log-uniform
    assert stats.kstest(u, "uniform").pvalue > 0.01
    assert stats.kstest(lrs, "uniform", args=(1e-4, 1 - 1e-4)).pvalue < 1e-10  # and not uniform
    # the docs' claim: drawn uniformly from [1e-3, 1e-1], ~91 % of rates land above 1e-2
    linear = _sample("{train.optimizer.lr: {low: 1.0e-3, high: 0.1}}", "train.optimizer.lr", 3000)
    assert abs((linear > 1e-2).mean() - 0.909) < 0.02
    logged = _sample("{train.optimizer.lr: {low: 1.0e-3, high: 0.1, log: true}}", "train.optimizer.lr", 3000)
    assert abs((logged > 1e-2).mean() - 0.5) < 0.03


def test_int_ranges_steps_and_grids():
    hidden = _sample("{model.n_hidden: {low: 16, high: 256, log: true, type: int}}", "model.n_hidden", 300)
    assert hidden.dtype.kind == "i" and hidden.min() >= 16 and hidden.max() <= 256
    momentum = _sample("{train.optimizer.momentum: {low: 0.5, high: 0.9, step: 0.1}}",
                       "train.optimizer.momentum", 100)
    assert set(np.round(momentum, 6)) <= {0.5, 0.6, 0.7, 0.8, 0.9}
    space = tune_config("{train.k: {low: 1, high: 5, type: int, step: 2}, "
                        "train.optimizer.momentum: {low: 0.5, high: 0.9, step: 0.2}}").tune.space
    values = grid(space)
    assert values["train.k"] == [1, 3, 5]
    assert np.allclose(values["train.optimizer.momentum"], [0.5, 0.7, 0.9])
    with pytest.raises(ValueError, match="grid search needs a finite set of values"):
        grid(tune_config("{train.optimizer.lr: {low: 1.0e-3, high: 0.1, log: true}}").tune.space)


def test_pruning_stops_bad_trials_early(tmp_path):
    config = tune_config("{train.optimizer.lr: {low: 1.0e-7, high: 0.3, log: true}}",
                         "train.epochs=4", "tune.method=random", "tune.pruner=median", "tune.n_trials=12")
    study = run(config, tmp_path, progress=False)
    pruned = [t for t in study.trials if t.state == TrialState.PRUNED]
    assert pruned, "no trial was pruned"
    assert all(len(t.intermediate_values) < 4 for t in pruned)
    assert all("pruned after epoch" in t.user_attrs["pruned_reason"] for t in pruned)
    for t in pruned:  # each was stopped while below the median of the trials before it
        step = max(t.intermediate_values)
        earlier = [o.intermediate_values[step] for o in study.trials
                   if o.number < t.number and step in o.intermediate_values]
        assert t.intermediate_values[step] < np.median(earlier)


class PruneFrom(optuna.pruners.BasePruner):
    """Says prune once a trial has reported step ``first`` (0: always); notes what it was asked."""

    def __init__(self, first: int):
        self.first, self.asked = first, []

    def prune(self, study, trial):
        self.asked.append((trial.number, trial.last_step))
        return trial.last_step >= self.first


@pytest.mark.parametrize("epochs, first", [(1, 0), (2, 1), (3, 1)])
def test_a_trial_that_ran_all_its_epochs_completes_whatever_the_pruner_says(tmp_path, monkeypatch, epochs, first):
    pruner = PruneFrom(first)
    monkeypatch.setattr("boltzkit.tune.study.make_pruner", lambda config: pruner)
    config = tune_config("{train.optimizer.lr: {low: 1.0e-3, high: 0.1, log: true}}",
                         f"train.epochs={epochs}", "tune.n_trials=2")
    study = run(config, tmp_path, progress=False)
    assert all(step < epochs - 1 for _, step in pruner.asked)  # never after the last epoch
    for t in study.trials:
        if first < epochs - 1:  # told to prune before the last epoch: it is, there
            assert t.state == TrialState.PRUNED and sorted(t.intermediate_values) == list(range(first + 1))
            assert t.user_attrs["pruned_reason"].startswith(f"pruned after epoch {first + 1}:")
        else:  # the pruner would stop it only at its last epoch: it completes with its final value
            assert t.state == TrialState.COMPLETE and "pruned_reason" not in t.user_attrs
            assert sorted(t.intermediate_values) == list(range(epochs))
            assert t.value == t.intermediate_values[epochs - 1]


METRIC = "val_pseudo_log_likelihood"


def _study(completed: int, pruned: int, epochs: int = 4) -> optuna.Study:
    """An in-memory study of made-up trials (no training): every third one pruned after
    epoch 2 while there are pruned ones to make, the others ran all ``epochs``."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution
    from optuna.trial import create_trial

    rng = np.random.default_rng(0)
    distributions = {"train.optimizer.lr": FloatDistribution(1e-4, 1.0, log=True),
                     "train.optimizer.momentum": FloatDistribution(0.0, 0.95),
                     "train.batch_size": CategoricalDistribution([16, 32, 64])}
    study = optuna.create_study(direction="maximize")
    kinds = ["pruned" if i % 3 == 2 and i // 3 < pruned else "complete" for i in range(completed + pruned)]
    kinds += ["pruned"] * (pruned - kinds.count("pruned"))
    for number, kind in enumerate(kinds):
        params = {"train.optimizer.lr": float(10 ** rng.uniform(-4, 0)),
                  "train.optimizer.momentum": float(rng.uniform(0, 0.95)),
                  "train.batch_size": int(rng.choice([16, 32, 64]))}
        start = -30 + 5 * rng.random()
        steps = 2 if kind == "pruned" else epochs
        values = {step: start + step for step in range(steps)}
        attrs = {"worker": 4242, "run_dir": f"trials/trial-{number:04d}"}
        if kind == "pruned":
            attrs["pruned_reason"] = f"pruned after epoch 2: {METRIC} {values[1]:.5g}"
            study.add_trial(create_trial(params=params, distributions=distributions, state=TrialState.PRUNED,
                                         intermediate_values=values, user_attrs=attrs))
        else:
            study.add_trial(create_trial(params=params, distributions=distributions, value=values[steps - 1],
                                         intermediate_values=values, user_attrs=attrs))
    return study


def _find_spec_without(monkeypatch, missing: str):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *args: None if name == missing else real(name, *args))


@pytest.mark.parametrize("installed", [True, False])
def test_the_report_says_how_to_get_optuna_dashboard(tmp_path, monkeypatch, installed):
    import importlib.util

    from boltzkit.tune.report import write_report

    if installed:
        real = importlib.util.find_spec
        monkeypatch.setattr(importlib.util, "find_spec", lambda name, *args: object()
                            if name == "optuna_dashboard" else real(name, *args))
    else:
        _find_spec_without(monkeypatch, "optuna_dashboard")
    config = tune_config("{train.optimizer.lr: {low: 1.0e-4, high: 1.0, log: true}}")
    text = write_report(_study(3, 1), config, tmp_path, url="sqlite:////x/study.db", echo=False)
    last = text.splitlines()[-1]
    assert last.endswith("optuna-dashboard sqlite:////x/study.db")
    if installed:
        assert last == "browse it: optuna-dashboard sqlite:////x/study.db"
    else:
        assert "not installed" in last and "pip install 'boltzkit[dashboard]'" in last
        assert "pip install optuna-dashboard" in last


def _read_csv(path):
    import csv

    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_trials_csv_from_trials_dataframe_and_without_pandas(tmp_path, monkeypatch):
    pytest.importorskip("pandas")
    from boltzkit.tune.report import write_trials_csv

    study = _study(3, 2)
    write_trials_csv(study, tmp_path / "pandas.csv")
    _find_spec_without(monkeypatch, "pandas")
    write_trials_csv(study, tmp_path / "plain.csv")
    expected = ["number", "state", "value", "epochs", "seconds", "train.batch_size", "train.optimizer.lr",
                "train.optimizer.momentum", "pruned_reason", "run_dir", "worker", "datetime_start",
                "datetime_complete"]
    for name in ("pandas.csv", "plain.csv"):
        rows = _read_csv(tmp_path / name)
        assert list(rows[0]) == expected, name
        assert len(rows) == len(study.trials)
        for row, t in zip(rows, study.trials, strict=True):
            assert int(row["number"]) == t.number and row["state"] == t.state.name
            assert int(row["epochs"]) == len(t.intermediate_values)
            assert (row["value"] == "") if t.value is None else float(row["value"]) == t.value
            assert float(row["train.optimizer.lr"]) == t.params["train.optimizer.lr"]
            assert int(row["train.batch_size"]) == t.params["train.batch_size"]
            assert row["worker"] == "4242" and row["pruned_reason"] == t.user_attrs.get("pruned_reason", "")


def _tick_labels(ax, axis="x"):
    """The tick labels shown inside the axis's view limits, once drawn."""
    ax.figure.canvas.draw()
    lo, hi = sorted(ax.get_xlim() if axis == "x" else ax.get_ylim())
    labels = ax.get_xticklabels() if axis == "x" else ax.get_yticklabels()
    return [label.get_text() for label in labels if lo <= (label.get_position()[0 if axis == "x" else 1]) <= hi]


def test_tuning_figures_name_the_metric_count_in_integers_and_show_pruned_trials():
    from boltzkit.plots import plt
    from boltzkit.tune.report import build_figures

    study = _study(4, 2, epochs=4)
    figures, skipped = build_figures(study, METRIC)
    try:
        assert set(figures) == {"optimization_history.png", "parallel_coordinate.png", "intermediate_values.png"}
        assert "4 completed trial(s)" in skipped["param_importances.png"]

        history = figures["optimization_history.png"].axes[0]
        assert METRIC in history.get_ylabel()
        ticks = _tick_labels(history)
        assert ticks and all(text.isdigit() for text in ticks), ticks
        pruned = [t for t in study.trials if t.state == TrialState.PRUNED]
        marks = [c for c in history.collections if c.get_label() == "pruned (last reported)"]
        assert len(marks) == 1
        assert sorted(map(tuple, marks[0].get_offsets().tolist())) == sorted(
            (t.number, t.intermediate_values[1]) for t in pruned)
        assert "pruned (last reported)" in [text.get_text() for text in history.get_legend().get_texts()]

        steps = figures["intermediate_values.png"].axes[0]
        assert steps.get_xlabel() == "epoch" and METRIC in steps.get_ylabel()
        ticks = _tick_labels(steps)
        assert ticks and all(text.isdigit() for text in ticks), ticks
        assert min(map(int, ticks)) >= 1 and max(map(int, ticks)) == 4  # epochs 1..4, steps 0..3

        parallel = figures["parallel_coordinate.png"]
        ax = parallel.axes[0]
        names = _tick_labels(ax)
        assert names == [METRIC, "train.batch_size", "train.optimizer.lr", "train.optimizer.momentum"]
        renderer = parallel.canvas.get_renderer()
        boxes = [label.get_window_extent(renderer) for label in ax.get_xticklabels() if label.get_text()]
        assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:])
    finally:
        plt.close("all")

    figures, skipped = build_figures(_study(10, 1), METRIC)
    try:
        assert "param_importances.png" in figures and not skipped
        assert "10 completed trials" in figures["param_importances.png"].axes[0].get_title(loc="left")
    finally:
        plt.close("all")


def test_resume_continues_the_trial_count(tmp_path):
    space = "{train.optimizer.lr: {low: 1.0e-3, high: 0.1, log: true}}"
    run(tune_config(space, "tune.n_trials=2", "tune.pruner=none"), tmp_path, progress=False)
    study = run(tune_config(space, "tune.n_trials=4", "tune.pruner=none"), tmp_path, progress=False)
    assert [t.number for t in study.trials] == [0, 1, 2, 3]
    assert sorted(p.name for p in (tmp_path / "trials").iterdir()) == [f"trial-000{i}" for i in range(4)]
    with pytest.raises(ConfigError, match="holds a study with a different tune.space"):
        run(tune_config("{train.k: {choices: [1, 2]}}"), tmp_path, progress=False)


def test_diverged_trials_are_pruned_and_crashed_trials_fail(tmp_path, monkeypatch, diverge_above):
    from boltzkit.tune import study as study_module

    diverge_above(1.0)
    real_train = study_module.train

    def train_or_crash(run, *args, **kwargs):
        if run.train.optimizer.model_extra.get("momentum") == 0.25:
            raise RuntimeError("simulated crash inside a trial")
        return real_train(run, *args, **kwargs)

    monkeypatch.setattr(study_module, "train", train_or_crash)
    config = tune_config("{train.optimizer.lr: {values: [0.05, 50.0]}, "
                         "train.optimizer.momentum: {values: [0.5, 0.25]}}",
                         "tune.method=grid", "tune.pruner=none", "tune.n_trials=4")
    study = run(config, tmp_path, progress=False)
    states = {(t.params["train.optimizer.lr"], t.params["train.optimizer.momentum"]): t for t in study.trials}
    assert states[(0.05, 0.5)].state == TrialState.COMPLETE
    diverged = states[(50.0, 0.5)]
    assert diverged.state == TrialState.PRUNED and "diverged: the loss became" in diverged.user_attrs["pruned_reason"]
    crashed = states[(0.05, 0.25)]
    assert crashed.state == TrialState.FAIL and "simulated crash inside a trial" in crashed.user_attrs["error"]


def test_every_value_of_the_space_is_validated_before_the_study():
    with pytest.raises(ConfigError, match="tune.space key 'train.optimizer.momentum' = -1.0: .*momentum=-1.0; accepted: 0.0 to 1.0"):
        tune_config("{train.optimizer.momentum: {values: [0.5, -1.0]}}")


def test_outputs_best_config_and_report(tmp_path, capsys):
    config = tune_config("{train.optimizer.lr: {low: 1.0e-3, high: 0.1, log: true}}",
                         "tune.n_trials=3", "tune.pruner=none")
    study = run(config, tmp_path, progress=False)
    best = load_config(tmp_path / "best.yaml")
    assert best.train.optimizer.lr == pytest.approx(study.best_params["train.optimizer.lr"])
    assert best.tune.space == {}
    assert main(["train", str(tmp_path / "best.yaml"), "--out", str(tmp_path / "again"), "--quiet",
                 "--set", "train.epochs=1"]) == 0
    lines = (tmp_path / "trials.csv").read_text().splitlines()
    assert len(lines) == 4 and lines[0].startswith("number,state,value,epochs,seconds,train.optimizer.lr")
    for name in ["trials.csv", "optimization_history.png"]:
        (tmp_path / name).unlink()
    capsys.readouterr()
    assert main(["tune", "--report", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "best: trial" in printed and "optuna-dashboard sqlite:///" in printed
    assert (tmp_path / "trials.csv").is_file() and (tmp_path / "optimization_history.png").is_file()
    # 3 completed trials are too few for parameter importances: no figure, and the summary says so
    assert not (tmp_path / "param_importances.png").exists()
    assert "param_importances.png not drawn: 3 completed trial(s)" in printed


@pytest.mark.parametrize("space, message", [
    ("{train.optimizer.lr: {low: 1.0, high: 0.1}}", "low (1) must be <= high (0.1)"),
    ("{train.optimizer.lr: {low: 0, high: 0.1, log: true}}", "log: true needs low > 0, got low=0"),
    ("{train.learning_rate: {low: 0.1, high: 1}}", "tune.space key 'train.learning_rate' = 0.1: unknown config key"),
    ("{train.k: {choices: []}}", "choices must not be empty"),
    ("{train.k: {low: 1, high: 5, choices: [1]}}", "give either low/high, choices or values"),
    ("{train.k: {low: 1.5, high: 5, type: int}}", "type: int needs integer low and high"),
])
def test_bad_space_definitions(space, message):
    with pytest.raises(ConfigError) as info:
        tune_config(space)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_empty_space_missing_metric_and_cli_errors(tmp_path, capsys):
    with pytest.raises(ConfigError, match="tune.space is empty"):
        run(load_config(None, FAST), tmp_path / "a", progress=False)
    config = tune_config("{train.k: {choices: [1, 2]}}", "tune.metric=val_ais_log_likelihood")
    with pytest.raises(MetricMissing, match="tune.metric 'val_ais_log_likelihood' is not logged"):
        run(config, tmp_path / "b", progress=False)
    assert main(["tune", "--report", str(tmp_path / "nothing")]) == 2
    assert "no study here" in capsys.readouterr().err
    assert main(["tune", "--set", "tune.method=annealing"]) == 2


# --------------------------------------------------------------------------- PostgreSQL


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def postgres_url():
    """A throw-away PostgreSQL server on a Unix socket (Debian's postgresql package)."""
    found = shutil.which("initdb") or next(iter(sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))), None)
    if not found:
        pytest.skip("PostgreSQL server binaries (initdb) not found: install Debian's postgresql")
    pytest.importorskip("psycopg2", reason="psycopg2 missing: pip install 'boltzkit[postgres]'")
    bindir = Path(found).parent
    folder = Path(tempfile.mkdtemp(prefix="boltzkit-pg-"))
    prefix: list[str] = []
    if os.geteuid() == 0:  # the server refuses to run as root
        if not shutil.which("runuser"):
            pytest.skip("running as root without runuser: cannot start PostgreSQL as another user")
        shutil.chown(folder, "postgres", "postgres")
        prefix = ["runuser", "-u", "postgres", "--"]
    port = _free_port()
    data = folder / "data"

    def call(*args):
        return subprocess.run([*prefix, *map(str, args)], capture_output=True, text=True, timeout=120)

    init = call(bindir / "initdb", "-D", data, "-A", "trust", "-U", "postgres")
    if init.returncode:
        pytest.skip(f"initdb failed: {init.stderr.strip()[:200]}")
    start = call(bindir / "pg_ctl", "-D", data, "-w", "-l", folder / "log", "-o",
                 f"-p {port} -k {folder} -c listen_addresses=''", "start")
    if start.returncode:
        pytest.skip(f"PostgreSQL did not start: {start.stderr.strip()[:200]}")
    try:
        create = subprocess.run([str(bindir / "createdb") if (bindir / "createdb").exists() else "createdb",
                                 "-h", str(folder), "-p", str(port), "-U", "postgres", "optuna"],
                                capture_output=True, text=True, timeout=60)
        assert create.returncode == 0, create.stderr
        yield f"postgresql+psycopg2://postgres@/optuna?host={folder}&port={port}"
    finally:
        call(bindir / "pg_ctl", "-D", data, "-m", "fast", "stop")
        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.postgres
def test_two_workers_share_a_postgresql_study(tmp_path, postgres_url):
    config = tune_config("{train.optimizer.lr: {low: 1.0e-3, high: 0.1, log: true}}",
                         "tune.n_trials=8", "tune.pruner=none", "train.epochs=3", "data.limit=600")
    study = run(config, tmp_path, workers=2, storage=postgres_url, progress=False)
    finished = [t for t in study.trials if t.state.is_finished()]
    assert 8 <= len(finished) <= 9  # a worker may start one trial before seeing the count
    assert len({t.user_attrs["worker"] for t in finished}) == 2
    assert all(t.state == TrialState.COMPLETE for t in finished)
    again = optuna.load_study(study_name=study.study_name, storage=postgres_url)
    assert len(again.trials) == len(study.trials)
    assert not math.isnan(again.best_value)


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_a_trial_whose_worker_died_is_failed_retried_and_not_counted(tmp_path, monkeypatch, request, backend):
    import time

    from boltzkit.tune import study as study_module

    storage = request.getfixturevalue("postgres_url") if backend == "postgres" else None
    monkeypatch.setattr(study_module, "HEARTBEAT_INTERVAL", 1)
    monkeypatch.setattr(study_module, "GRACE_PERIOD", 2)
    config = tune_config("{train.optimizer.lr: {low: 1.0e-3, high: 0.1, log: true}}",
                         "tune.n_trials=2", "tune.pruner=none", "tune.method=random",
                         f"tune.study_name=lost-worker-{backend}")
    study = study_module.open_study(config, tmp_path, storage)
    lost = study.ask({"train.optimizer.lr": optuna.distributions.FloatDistribution(1e-3, 0.1, log=True)})
    study._storage.record_heartbeat(lost._trial_id)  # a worker that then died mid-trial
    time.sleep(3)
    finished = run(config, tmp_path, storage=storage, progress=False).trials
    assert finished[0].state == TrialState.FAIL and "error" not in finished[0].user_attrs
    retried = [t for t in finished[1:] if t.params == finished[0].params]
    assert len(retried) == 1 and retried[0].state == TrialState.COMPLETE  # its parameters ran again
    assert sum(t.state == TrialState.COMPLETE for t in finished) == 2  # the lost one did not count


def test_a_rerun_continues_the_search_instead_of_replaying_it(tmp_path):
    first = tune_config("{train.optimizer.lr: {low: 1.0e-3, high: 0.1, log: true}}",
                        "tune.n_trials=2", "tune.pruner=none", "tune.method=random")
    run(first, tmp_path, progress=False)
    trials = run(first.with_overrides({"tune.n_trials": 4}), tmp_path, progress=False).trials
    rates = [t.params["train.optimizer.lr"] for t in trials]
    assert len(rates) == 4 and len(set(rates)) == 4  # trials 2-3 are new points, not 0-1 again


def test_repeated_parameters_reuse_the_finished_result(tmp_path):
    config = tune_config("{train.k: {choices: [1]}}", "tune.n_trials=2", "tune.pruner=none",
                         "tune.method=random")
    first, second = run(config, tmp_path, progress=False).trials
    assert second.user_attrs["reused_from"] == 0 and second.value == first.value
    assert not (tmp_path / "trials" / "trial-0001").exists()  # nothing trained again


def test_report_of_a_missing_study_creates_nothing(tmp_path, capsys):
    config = tune_config("{train.k: {choices: [1, 2]}}", "tune.n_trials=1", "tune.pruner=none")
    run(config, tmp_path, progress=False)
    (tmp_path / "tune-config.yaml").write_text(config.with_overrides({"tune.study_name": "other"}).to_yaml())
    assert main(["tune", "--report", str(tmp_path)]) == 2
    assert "no study 'other'" in capsys.readouterr().err
    assert [s.study_name for s in optuna.get_all_study_summaries(f"sqlite:///{tmp_path / 'study.db'}")] == [
        config.name]


def test_reuse_needs_the_same_base_config_and_qmc_keeps_its_seed(tmp_path):
    from boltzkit.tune.study import make_sampler

    config = tune_config("{train.k: {choices: [1]}}", "tune.n_trials=1", "tune.pruner=none",
                         "tune.method=random")
    run(config, tmp_path, progress=False)
    longer = config.with_overrides({"tune.n_trials": 2, "train.epochs": 3})  # same study, longer runs
    first, second = run(longer, tmp_path, progress=False).trials
    assert first.params == second.params and "reused_from" not in second.user_attrs
    assert (tmp_path / "trials" / "trial-0001").is_dir()  # trained, not copied from a 2-epoch trial
    qmc = config.with_overrides({"tune.method": "qmc"})
    assert make_sampler(qmc, worker=1, done=7)._seed == make_sampler(qmc)._seed == qmc.seed


def test_tuning_with_early_stopping_scores_the_epoch_it_kept(tmp_path, monkeypatch):
    config = tune_config("{train.optimizer.lr: {values: [0.05]}}", "tune.method=grid", "tune.pruner=none",
                         "tune.n_trials=1", "train.epochs=4",
                         "train.early_stopping={metric: val_pseudo_log_likelihood, patience: 100}")
    trial = run(config, tmp_path, progress=False).trials[0]
    from boltzkit.train.run_dir import RunDir

    history = RunDir(trial.user_attrs["run_dir"]).read_metrics()
    assert trial.value == max(row["val_pseudo_log_likelihood"] for row in history)
    assert trial.value != history[-1]["val_pseudo_log_likelihood"]  # the best epoch was not the last


def test_a_lost_worker_process_is_reported_after_the_report_is_written(tmp_path, monkeypatch, capsys):
    """Two workers, one of which dies (exit code -9): the study keeps the survivor's trials,
    the report is still written and the command exits 1 naming the loss."""
    from boltzkit.tune import study as study_module

    class Inline:  # worker 0 runs in this process; worker 1 is killed before it starts
        def __init__(self, target, args):
            self.target, self.args, self.exitcode = target, args, None

        def start(self):
            if self.args[3] == 0:
                self.target(*self.args)
                self.exitcode = 0
            else:
                self.exitcode = -9

        def join(self):
            pass

    monkeypatch.setattr(study_module.multiprocessing, "get_context",
                        lambda kind: type("Context", (), {"Process": staticmethod(Inline)}))
    import torch

    monkeypatch.setattr(torch, "set_num_threads", lambda n: None)  # the inline worker would set it
    config = tune_config("{train.k: {choices: [1, 2]}}", "tune.n_trials=2", "tune.pruner=none",
                         "tune.method=grid")
    with pytest.raises(study_module.WorkersLost, match="1 of 2 worker processes died"):
        run(config, tmp_path, workers=2, progress=False)
    assert (tmp_path / "trials.csv").is_file() and (tmp_path / "best.yaml").is_file()
    out = tmp_path / "cli"
    assert main(["tune", *[a for pair in (("--set", o) for o in FAST) for a in pair],
                 "--set", "tune.space={train.k: {choices: [1, 2]}}", "--set", "tune.method=grid",
                 "--set", "tune.pruner=none", "--n-trials", "2", "--workers", "2", "--out", str(out)]) == 1
    assert "worker processes died" in capsys.readouterr().err
