"""``boltzkit tune``: hyperparameter search on Optuna around the normal trainer.

A trial turns ``tune.space`` into config overrides, trains a run in
``OUT/trials/trial-NNNN`` and reports ``tune.metric`` after every epoch, so pruners
(median, successive halving, Hyperband) can stop unpromising trials early; the pruner
is not asked after the last epoch, so a trial that ran all its epochs completes. A diverged
trial (NaN loss) is pruned with the reason recorded; a crashed trial is recorded as
failed with its error, and the study goes on. The study lives in an SQLite file in the
output directory by default (running again resumes it) or in any Optuna storage URL,
such as PostgreSQL shared by workers on many machines.

Surviving workers and re-runs: every running trial sends a heartbeat; a trial whose
worker was killed is marked failed once silent for :data:`GRACE_PERIOD` seconds, when a
live worker starts its next trial (or the next run starts), and its parameters are queued
again (Optuna's ``RetryHeartbeatStaleTrialCallback``), and it does not
count toward ``tune.n_trials``. A re-run seeds its sampler with the number of trials
already in the study, so it continues the search instead of replaying it; a trial whose
whole config equals a completed one's (``config_sha256``) reuses that result
(``reused_from``) instead of training again.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import warnings
from pathlib import Path

import optuna
from optuna.trial import TrialState

from ..config import RunConfig, read_yaml_file, validate
from ..data import load_dataset
from ..errors import BoltzkitError, CheckpointError, ConfigError, DivergenceError, RunFailed
from ..families import get_family
from ..train.trainer import TrainingInterrupted, train
from .report import write_report
from .space import grid, suggest, trial_config

CONFIG_FILE = "tune-config.yaml"
HEARTBEAT_INTERVAL = 10
"""Seconds between a running trial's heartbeats."""
GRACE_PERIOD = 40
"""Seconds without a heartbeat after which a trial's worker counts as lost."""
MAX_RETRY = 2
"""How often the parameters of a trial whose worker was lost are tried again."""


class WorkersLost(RunFailed):
    """Some tuning workers died; the study keeps what they finished (exit status 1)."""


def counted(trial: optuna.trial.FrozenTrial) -> bool:
    """Whether a trial counts toward ``tune.n_trials``: it completed, was pruned, or failed
    by itself (an error), not because its worker was lost (those are run again)."""
    if trial.state == TrialState.FAIL:
        return "error" in trial.user_attrs
    return trial.state in (TrialState.COMPLETE, TrialState.PRUNED)


class MetricMissing(BoltzkitError):
    """The tuned metric is not among those the trainer logs: a config mistake."""


class TrialCrashed(Exception):
    """A trial raised: Optuna records it as failed and the study goes on."""


def direction(config: RunConfig) -> str:
    """``tune.direction``, else the direction the model family declares for ``tune.metric``."""
    if config.tune.direction:
        return config.tune.direction
    family = get_family(config.model.type)
    declared = family.direction(config.tune.metric)
    if declared is None:
        known = sorted(m for m in family.metrics if family.direction(m))
        what = ("is informative only" if family.logs(config.tune.metric)
                else f"is not a metric of model.type {family.name!r}")
        raise ConfigError(f"tune.metric {config.tune.metric!r} {what}; choose one of {', '.join(known)} "
                          "or set tune.direction: maximize | minimize")
    return declared


def storage_url(config: RunConfig, out: Path, storage: str | None = None) -> str:
    return storage or config.tune.storage or f"sqlite:///{(out / 'study.db').resolve()}"


def make_storage(url: str) -> optuna.storages.BaseStorage:
    """An RDB storage; SQLite waits for locks held by other worker processes, and a
    heartbeat lets trials of a killed worker be marked failed instead of running forever."""
    engine = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {"pool_pre_ping": True}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        try:
            return optuna.storages.RDBStorage(url, engine_kwargs=engine, **_heartbeat())
        except Exception as err:  # noqa: BLE001 (SQLAlchemy raises many kinds for a bad URL)
            detail = " ".join(str(err).split())[:200]
            raise ConfigError(f"storage {url!r} cannot be opened ({type(err).__name__}: {detail}); "
                              "accepted: sqlite:///PATH or postgresql://USER@HOST/DB") from None


def _heartbeat() -> dict:
    """Heartbeat settings and the retry of lost trials (named differently before Optuna 4.9)."""
    settings: dict = {"heartbeat_interval": HEARTBEAT_INTERVAL, "grace_period": GRACE_PERIOD}
    if hasattr(optuna.storages, "RetryHeartbeatStaleTrialCallback"):
        settings["heartbeat_stale_trial_callback"] = optuna.storages.RetryHeartbeatStaleTrialCallback(
            max_retry=MAX_RETRY)
    else:
        settings["failed_trial_callback"] = optuna.storages.RetryFailedTrialCallback(max_retry=MAX_RETRY)
    return settings


def make_sampler(config: RunConfig, worker: int = 0, done: int = 0) -> optuna.samplers.BaseSampler:
    """The sampler ``tune.method`` names, seeded from the run seed, the worker index and
    ``done``, the trials already in the study (so that a re-run does not replay them).
    QMC keeps the run seed alone: its sequence is shared by every worker and re-run, and it
    continues from the study's trial count by itself."""
    method = config.tune.method
    seed = config.seed if method == "qmc" else (config.seed + 1000 * worker + 1_000_003 * done) % 2**32
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if method == "grid":
            try:
                return optuna.samplers.GridSampler(grid(config.tune.space), seed=seed)
            except ValueError as err:
                raise ConfigError(str(err)) from None
        if method == "random":
            return optuna.samplers.RandomSampler(seed=seed)
        if method == "qmc":
            return optuna.samplers.QMCSampler(seed=seed, scramble=True, warn_independent_sampling=False)
        startup = config.tune.startup_trials
        if method == "gp":
            return optuna.samplers.GPSampler(seed=seed, n_startup_trials=startup,
                                             warn_independent_sampling=False)
        if method == "cmaes":
            return optuna.samplers.CmaEsSampler(seed=seed, n_startup_trials=startup,
                                                warn_independent_sampling=False)
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup, multivariate=True)


def make_pruner(config: RunConfig) -> optuna.pruners.BasePruner:
    name = config.tune.pruner
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=1)
    if name == "successive-halving":
        return optuna.pruners.SuccessiveHalvingPruner()
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=config.train.epochs,
                                              reduction_factor=3)
    return optuna.pruners.NopPruner()


def open_study(config: RunConfig, out: Path, storage: str | None = None, worker: int = 0,
               create: bool = True) -> optuna.Study:
    """The study (created unless ``create`` is false: a report never makes an empty one)."""
    name = config.tune.study_name or config.name
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # trials are reported by _announce
    backend = make_storage(storage_url(config, out, storage))
    names = optuna.get_all_study_names(backend)
    if not create and name not in names:
        raise CheckpointError(f"no study {name!r} in {storage_url(config, out, storage)}; studies there: "
                              f"{', '.join(names) or 'none'}")
    done = 0
    if name in names:
        done = len(optuna.load_study(study_name=name, storage=backend).get_trials(deepcopy=False))
    try:
        return optuna.create_study(
            study_name=name, storage=backend, sampler=make_sampler(config, worker, done),
            pruner=make_pruner(config), direction=direction(config), load_if_exists=True)
    except ValueError as err:
        raise ConfigError(f"study {name!r}: {err}") from None


def objective(config: RunConfig, out: Path, dataset=None):
    """The Optuna objective: train one trial's config, report the metric every epoch."""
    metric = config.tune.metric

    def run_trial(trial: optuna.Trial) -> float:
        params = suggest(trial, config.tune.space)
        try:
            fingerprint = config_fingerprint(trial_config(config, params, 0))
        except BoltzkitError:
            fingerprint = None  # a bad combination: it fails below, with its message
        trial.set_user_attr("config_sha256", fingerprint)
        for earlier in trial.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            if fingerprint and earlier.user_attrs.get("config_sha256") == fingerprint:
                # the very same training run (same base config, parameters and seed): same result
                trial.set_user_attr("reused_from", earlier.number)
                trial.set_user_attr("run_dir", earlier.user_attrs.get("run_dir"))
                return earlier.value
        run_dir = out / "trials" / f"trial-{trial.number:04d}"
        trial.set_user_attr("run_dir", str(run_dir))
        trial.set_user_attr("worker", os.getpid())

        def report(epoch: int, metrics: dict[str, float]) -> None:
            if metric not in metrics:
                raise MetricMissing(
                    f"tune.metric {metric!r} is not logged by this run; logged metrics: "
                    f"{', '.join(sorted(metrics))} (likelihoods need eval.every >= 1)")
            trial.report(metrics[metric], epoch)
            # a trial that has run all its epochs completes: pruning it then saves nothing
            # and would drop a finished result (``epochs`` is set before training starts)
            if epoch + 1 < epochs and trial.should_prune():
                raise optuna.TrialPruned(f"pruned after epoch {epoch + 1}: {metric} {metrics[metric]:.5g}")

        try:
            run = trial_config(config, params, trial.number)  # a bad combination fails the trial
            epochs = run.train.epochs
            result = train(run, run_dir, progress=False, on_epoch_end=report, dataset=dataset)
        except optuna.TrialPruned as pruned:
            trial.set_user_attr("pruned_reason", str(pruned))
            raise
        except DivergenceError as err:
            trial.set_user_attr("pruned_reason", f"diverged: {err}")
            raise optuna.TrialPruned(f"diverged: {err}") from None
        except (MetricMissing, TrainingInterrupted):
            raise  # a config mistake or Ctrl-C ends the study, it does not fail one trial
        except Exception as err:
            message = f"{type(err).__name__}: {err}"
            trial.set_user_attr("error", message)
            raise TrialCrashed(message) from err
        # the epoch whose weights were kept (early stopping may keep an earlier one), or the
        # latest before it that logged the metric
        last = next(row for row in reversed(result.history[: result.kept_epoch]) if metric in row)
        if ("ais" in metric or "bound" in metric) and last.get("ais_reliable") == 0.0:
            # an AIS likelihood that may be far off must not win the study
            reason = f"unreliable AIS at the last epoch: {metric} {last[metric]:.5g} is not to be trusted"
            trial.set_user_attr("pruned_reason", reason)
            raise optuna.TrialPruned(reason)
        return last[metric]

    return run_trial


def config_fingerprint(config: RunConfig) -> str:
    """SHA-256 of a trial's whole config (its name aside): equal fingerprints, equal runs."""
    raw = config.to_dict()
    raw.pop("name", None)
    return hashlib.sha256(json.dumps(raw, sort_keys=True).encode()).hexdigest()


def optimize(config: RunConfig, out: Path, storage: str | None = None, worker: int = 0,
             progress: bool = True) -> optuna.Study:
    """Run trials in this process until the study holds ``tune.n_trials`` finished trials."""
    study = open_study(config, out, storage, worker)
    shared = not any(key.startswith("data.") or key == "seed" for key in config.tune.space)
    unit_interval = get_family(config.model.type).unit_interval(config.model)
    dataset = load_dataset(config.data, config.seed, unit_interval=unit_interval) if shared else None
    remaining = config.tune.n_trials - sum(counted(t) for t in study.get_trials(deepcopy=False))
    if remaining <= 0:
        return study
    callbacks = [_stop_at(config.tune.n_trials)]
    if progress:
        callbacks.append(_announce(config.tune.metric))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.optimize(
            objective(config, out, dataset),
            n_trials=remaining,
            timeout=config.tune.timeout,
            catch=(TrialCrashed,),
            callbacks=callbacks,
            gc_after_trial=True,
        )
    return study


def _stop_at(n_trials: int):
    """Stop when counted trials plus running ones reach ``n_trials``: a worker that finishes
    while another runs the last trial must not start one more."""

    def callback(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        trials = study.get_trials(deepcopy=False)
        if sum(counted(t) or t.state == TrialState.RUNNING for t in trials) >= n_trials:
            study.stop()

    return callback


def _announce(metric: str):
    """A callback printing one line per finished trial."""

    def callback(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        params = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                           for k, v in trial.params.items())
        if trial.state == TrialState.COMPLETE:
            outcome = f"{metric} {trial.value:.5g}"
            if "reused_from" in trial.user_attrs:
                outcome += f" (same parameters as trial {trial.user_attrs['reused_from']}: reused)"
        else:
            reason = trial.user_attrs.get("pruned_reason") or trial.user_attrs.get("error", "")
            outcome = f"{trial.state.name.lower()}: {reason[:120]}"
        print(f"trial {trial.number:4d} ({len(trial.intermediate_values)} epochs): {outcome} [{params}]",
              flush=True)

    return callback


def _worker(raw: dict, out: str, storage: str | None, worker: int, threads: int) -> None:
    import torch

    torch.set_num_threads(threads)
    torch.manual_seed(validate(raw).seed + worker)
    optimize(validate(raw), Path(out), storage, worker, progress=False)


def run(
    config: RunConfig,
    out: str | Path,
    *,
    workers: int = 1,
    storage: str | None = None,
    progress: bool = True,
) -> optuna.Study:
    """Run (or resume) the study ``config.tune`` describes; returns the Optuna study.

    Args:
        config: the run config with its ``tune`` section.
        out: output directory: ``study.db`` (default storage), ``trials/``, reports.
        workers: processes on this machine sharing the study.
        storage: an Optuna storage URL (e.g. ``postgresql://user@host/db``) instead of
            ``tune.storage`` or the SQLite default.
    """
    out = Path(out)
    if not config.tune.space:
        raise ConfigError("tune.space is empty: give at least one config key to tune, e.g. "
                          "--set 'tune.space={train.optimizer.lr: {low: 1.0e-4, high: 1.0, log: true}}'")
    if workers < 1:
        raise ConfigError(f"--workers must be >= 1, got {workers}")
    _check_resume(config, out)
    out.mkdir(parents=True, exist_ok=True)
    (out / CONFIG_FILE).write_text(config.to_yaml())
    open_study(config, out, storage)  # create it once, before workers race to
    lost: list[int] = []
    if workers == 1:
        optimize(config, out, storage, 0, progress)
    else:
        threads = max(1, (os.cpu_count() or 1) // workers)
        context = multiprocessing.get_context("spawn")
        processes = [context.Process(target=_worker, args=(config.to_dict(), str(out), storage, w, threads))
                     for w in range(workers)]
        for process in processes:
            process.start()
        for process in processes:
            process.join()
        lost = [p.exitcode for p in processes if p.exitcode]
    study = open_study(config, out, storage)
    write_report(study, config, out, storage_url(config, out, storage), echo=progress)
    if lost:
        raise WorkersLost(f"{len(lost)} of {workers} worker processes died (exit codes {lost}); the "
                          f"study keeps every finished trial and {out} has its report; run the same "
                          "command again to finish it")
    return study


def report(out: str | Path, storage: str | None = None) -> optuna.Study:
    """Rebuild ``best.yaml``, ``trials.csv`` and the figures of the study in ``out``."""
    out = Path(out)
    saved = out / CONFIG_FILE
    if not saved.is_file():
        raise CheckpointError(
            f"{out}: no study here (no {CONFIG_FILE}); give the --out of a boltzkit tune run")
    config = validate(read_yaml_file(saved, CheckpointError))
    study = open_study(config, out, storage, create=False)
    write_report(study, config, out, storage_url(config, out, storage))
    return study


def _check_resume(config: RunConfig, out: Path) -> None:
    saved_path = out / CONFIG_FILE
    if not saved_path.is_file():
        return
    saved = validate(read_yaml_file(saved_path, CheckpointError))
    for key in ("space", "method", "metric", "direction"):
        if getattr(saved.tune, key) != getattr(config.tune, key):
            raise ConfigError(
                f"{out} holds a study with a different tune.{key}; resume it with the same tune "
                f"section (only n_trials and timeout may change) or choose another --out")
