"""Several worker processes share one study in the default SQLite storage.

The PostgreSQL test in test_tune.py skips where no server is installed; this one needs
nothing beyond the package, so the multi-worker path (spawned processes, the shared
trial count, per-trial run directories, the report written by the parent) is always
exercised. Only public entry points are used: load_config, tune.run, optuna.load_study.
"""

import json
import math
import os

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from boltzkit.config import load_config
from boltzkit.tune import run

N_TRIALS = 6
WORKERS = 2
EPOCHS = 2
METRIC = "val_pseudo_log_likelihood"  # the default tune.metric, maximized
LR = "train.optimizer.lr"

OVERRIDES = [
    "threads=1", "data.limit=300", "model.n_hidden=16", "train.epochs=2", "train.k=1",
    "train.batch_size=30", "train.metrics_examples=50", "train.checkpoint_every=0",
    "tune.method=random", "tune.pruner=none", f"tune.n_trials={N_TRIALS}", f"tune.metric={METRIC}",
    f"tune.space={{{LR}: {{low: 1.0e-3, high: 0.1, log: true}}}}",
]


@pytest.fixture(scope="module")
def tuned(tmp_path_factory):
    """One two-worker study, shared by the checks below: (output directory, study)."""
    out = tmp_path_factory.mktemp("tune-workers")
    config = load_config("rbm-digits", OVERRIDES)
    assert config.train.epochs == EPOCHS and config.tune.n_trials == N_TRIALS
    study = run(config, out, workers=WORKERS, progress=False)
    return out, study


def _trials(out, study):
    """The trials as read back from OUT/study.db: the default storage is that file."""
    stored = optuna.load_study(study_name=study.study_name, storage=f"sqlite:///{out / 'study.db'}")
    return sorted(stored.get_trials(deepcopy=False), key=lambda t: t.number)


def _metrics(run_dir):
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def test_workers_share_the_study_and_stop_at_n_trials(tuned):
    out, study = tuned
    trials = _trials(out, study)
    assert len(trials) == len(study.trials)
    # nothing left running or waiting once run() returns, and no trial failed or pruned
    assert [t.state for t in trials] == [TrialState.COMPLETE] * len(trials), \
        [(t.number, t.state.name, t.user_attrs.get("error")) for t in trials]
    # the shared count stops both workers: tune.n_trials is the study's total ...
    assert len(trials) >= N_TRIALS
    # ... overshooting by at most one trial per extra worker (one may start a trial while
    # the other finishes the last one; MaxTrialsCallback counts finished trials only)
    assert len(trials) <= N_TRIALS + WORKERS - 1
    # trial numbers are distinct and consecutive, whoever ran them
    assert [t.number for t in trials] == list(range(len(trials)))


def test_both_worker_processes_took_trials(tuned):
    out, study = tuned
    trials = _trials(out, study)
    pids = [t.user_attrs["worker"] for t in trials]
    assert len(set(pids)) == WORKERS, pids
    assert os.getpid() not in pids  # the parent only creates the study and writes the report
    # each worker has its own sampler seed: random search never proposes the same rate twice
    lrs = [t.params[LR] for t in trials]
    assert len(set(lrs)) == len(lrs), lrs
    assert all(1e-3 <= lr <= 0.1 for lr in lrs)


def test_each_trial_has_its_run_directory_and_reports_its_metrics(tuned):
    out, study = tuned
    trials = _trials(out, study)
    names = [f"trial-{t.number:04d}" for t in trials]
    assert sorted(p.name for p in (out / "trials").iterdir()) == names  # no stray or missing runs
    for t, name in zip(trials, names, strict=True):
        run_dir = out / "trials" / name
        assert t.user_attrs["run_dir"] == str(run_dir)
        assert (run_dir / "metrics.csv").is_file()
        rows = _metrics(run_dir)
        assert [row["epoch"] for row in rows] == list(range(1, EPOCHS + 1))
        # the trial trained with its own sampled rate ...
        saved = yaml.safe_load((run_dir / "config.yaml").read_text())
        assert saved["train"]["optimizer"]["lr"] == pytest.approx(t.params[LR], rel=1e-12)
        assert saved["train"]["epochs"] == EPOCHS and saved["model"]["n_hidden"] == 16
        # ... reported the tuned metric after every epoch, and its value is the last row's
        assert t.intermediate_values == {row["epoch"] - 1: row[METRIC] for row in rows}
        assert math.isfinite(t.value) and t.value == rows[-1][METRIC]


def test_parent_writes_the_report_of_the_shared_study(tuned):
    out, study = tuned
    trials = _trials(out, study)
    best = max(trials, key=lambda t: t.value)  # the metric is maximized
    assert study.best_trial.number == best.number
    config = load_config(out / "best.yaml")
    assert config.train.optimizer.lr == pytest.approx(best.params[LR], rel=1e-12)
    assert config.tune.space == {}
    lines = (out / "trials.csv").read_text().splitlines()
    assert len(lines) == 1 + len(trials)
    header = lines[0].split(",")
    pids = {row.split(",")[header.index("worker")] for row in lines[1:]}
    assert pids == {str(t.user_attrs["worker"]) for t in trials}
