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


def test_resume_continues_the_trial_count(tmp_path):
    space = "{train.optimizer.lr: {low: 1.0e-3, high: 0.1, log: true}}"
    run(tune_config(space, "tune.n_trials=2", "tune.pruner=none"), tmp_path, progress=False)
    study = run(tune_config(space, "tune.n_trials=4", "tune.pruner=none"), tmp_path, progress=False)
    assert [t.number for t in study.trials] == [0, 1, 2, 3]
    assert sorted(p.name for p in (tmp_path / "trials").iterdir()) == [f"trial-000{i}" for i in range(4)]
    with pytest.raises(ConfigError, match="holds a study with a different tune.space"):
        run(tune_config("{train.k: {choices: [1, 2]}}"), tmp_path, progress=False)


def test_diverged_trials_are_pruned_and_crashed_trials_fail(tmp_path):
    config = tune_config("{train.optimizer.lr: {values: [0.05, 1.0e+38]}, "
                         "train.optimizer.momentum: {values: [0.5, -1.0]}}",
                         "tune.method=grid", "tune.pruner=none", "tune.n_trials=4")
    study = run(config, tmp_path, progress=False)
    states = {(t.params["train.optimizer.lr"], t.params["train.optimizer.momentum"]): t for t in study.trials}
    assert states[(0.05, 0.5)].state == TrialState.COMPLETE
    diverged = states[(1e38, 0.5)]
    assert diverged.state == TrialState.PRUNED and "diverged: the loss became" in diverged.user_attrs["pruned_reason"]
    crashed = states[(0.05, -1.0)]
    assert crashed.state == TrialState.FAIL and "Invalid momentum value: -1.0" in crashed.user_attrs["error"]


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
    for name in ["trials.csv", "optimization_history.png", "param_importances.png"]:
        (tmp_path / name).unlink()
    capsys.readouterr()
    assert main(["tune", "--report", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "best: trial" in printed and "optuna-dashboard sqlite:///" in printed
    assert (tmp_path / "trials.csv").is_file() and (tmp_path / "param_importances.png").is_file()


@pytest.mark.parametrize("space, message", [
    ("{train.optimizer.lr: {low: 1.0, high: 0.1}}", "low (1) must be <= high (0.1)"),
    ("{train.optimizer.lr: {low: 0, high: 0.1, log: true}}", "log: true needs low > 0, got low=0"),
    ("{train.learning_rate: {low: 0.1, high: 1}}", "tune.space key 'train.learning_rate': unknown config key"),
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
