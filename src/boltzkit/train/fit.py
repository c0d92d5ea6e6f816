"""The training core, without run-directory I/O: ``fit(config) -> FitResult``.

Read top to bottom, :meth:`Fit.run` is the whole loop for every family: for each of the
family's stages, epoch after epoch, batches from one resumable iterator go through the
stage's train step; after each epoch the task's metrics are logged. Everything that
decides the next update (parameters, the step's optimizers, schedules and samplers,
generator states, the epoch's permutation and the position in it) is in
:meth:`Fit.state_dict`, so a run restored from it ends with exactly the weights of an
uninterrupted one. The run-directory trainer (``train.trainer``), ``lr-find``, ``tune``
and in-memory use (scikit-learn wrappers) all build on it.
"""

from __future__ import annotations

import copy
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from ..config import RunConfig
from ..data import DataLike, as_dataset, load_dataset
from ..errors import ConfigError, DivergenceError
from ..families import (
    COMMON_METRICS,
    Family,
    GradientStep,
    NonFiniteLoss,
    Stage,
    Task,
    TrainStep,
    get_family,
)
from ..seeding import global_rng_state, make_generator, set_global_rng_state
from .batches import EpochBatches
from .device import resolve_device
from .early_stopping import EarlyStopping
from .memory import check_model_fits
from .threads import ThreadChoice, choose_threads, using_threads

EpochCallback = Callable[[int, dict[str, float]], None]


class FitInterrupted(Exception):
    """A stop was requested; training stopped after a complete update (state is exact)."""


@dataclass
class TrainState:
    """Where the run is, and what it logged.

    ``stage`` indexes the family's stages; ``epoch`` counts the epochs done in that stage;
    ``step`` the updates done in the whole run; ``loss_sum`` and ``seconds`` accumulate
    over the current epoch.
    """

    stage: int = 0
    epoch: int = 0
    step: int = 0
    loss_sum: float = 0.0
    seconds: float = 0.0
    history: list[dict[str, float]] = field(default_factory=list)
    stopped_at: int | None = None
    """The epoch after which early stopping ended the run (None: it did not)."""
    backoffs: list[dict[str, float]] = field(default_factory=list)
    """``train.backoff``: each time the rate was lowered after a non-finite loss."""

    def state_dict(self) -> dict[str, Any]:
        return asdict(self)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for key, value in state.items():
            setattr(self, key, list(value) if key in ("history", "backoffs") else value)


@dataclass
class FitResult:
    config: RunConfig
    model: nn.Module
    history: list[dict[str, float]]
    task: Task


class Fit:
    """A training run held in memory: data, task, model, stages, train step and position.

    Args:
        config: validated run configuration.
        dataset: the data (default: the set ``config.data`` describes): a loaded
            :class:`Dataset`, or features ``X`` / ``(X, y)`` given in Python, which are
            split and binarized as ``config.data`` says. Data other than the config's
            own set are recorded in ``self.config`` as ``data.name: memory``, so that a
            later evaluation asks for them instead of loading another set.
    """

    def __init__(self, config: RunConfig, dataset: DataLike | None = None):
        self.family: Family = get_family(config.model.type)
        unit_interval = self.family.unit_interval(config.model)
        if dataset is None:
            data = load_dataset(config.data, config.seed, unit_interval=unit_interval)
        else:
            data = as_dataset(dataset, config.data, config.seed, unit_interval)
            if data.name != config.data.name:
                config = config.with_overrides({"data.name": "memory"})
        self.config = config
        self.device = resolve_device(config.device)
        self.task: Task = self.family.task(config, data, self.device)
        sizes = ", ".join(f"model.{k}={v}" for k, v in config.model.model_dump().items()
                          if "hidden" in k and not isinstance(v, bool | str))
        check_model_fits(lambda: self.family.build(config.model, self.task.data_info, torch.Generator()),
                         self.device, f"{sizes} on {data.n_features} features")
        self.model = self.task.build_model()
        self.stages: list[Stage] = self.task.stages(self.model)
        self.data_rng = make_generator(config.seed, "train.data", self.device)
        self.batches = EpochBatches(self.task.n_examples(), config.train.batch_size, self.data_rng,
                                    self.device)
        self.state = TrainState()
        self._step: TrainStep | None = None
        self.threads: ThreadChoice = choose_threads(config.threads, self.model, config.train.batch_size,
                                                    self.device)
        self.stopper = self._early_stopping()

    def _early_stopping(self) -> EarlyStopping | None:
        cfg = self.config.train.early_stopping
        if cfg is None:
            return None
        direction = self.family.direction(cfg.metric)
        if direction is None:
            known = [m for m in {**COMMON_METRICS, **self.family.metrics} if self.family.direction(m)]
            raise ConfigError(f"train.early_stopping.metric {cfg.metric!r} is not a metric model.type "
                              f"{self.family.name!r} logs with a direction; accepted: {', '.join(known)}")
        if cfg.metric != "loss" and self.config.train.metrics_examples == 0:
            raise ConfigError(f"train.early_stopping.metric {cfg.metric!r} is never logged with "
                              "train.metrics_examples: 0; set it > 0 or stop on 'loss'")
        return EarlyStopping(cfg.metric, direction, cfg.patience, cfg.min_delta, cfg.restore_best)

    def keep_best(self) -> int:
        """At the end of a run with early stopping's ``restore_best``: load the best epoch's
        weights (a run that stopped early has them already) and return the epoch whose
        weights the model holds. Called after the last checkpoint, which keeps the last
        epoch's weights so that an extended run continues from them."""
        if self.stopper is not None and self.stopper.restore_best and self.done():
            if self.state.stopped_at is None:
                self.stopper.restore(self.model)
            if self.stopper.best_weights is not None:
                return self.stopper.best_epoch
        return self.epochs_done

    @property
    def history(self) -> list[dict[str, float]]:
        return self.state.history

    @property
    def total_steps(self) -> int:
        return sum(stage.epochs for stage in self.stages) * self.batches.per_epoch

    def train_step(self) -> TrainStep:
        """The current stage's train step (built on first use)."""
        if self._step is None:
            self._step = self.stages[self.state.stage].build_step()
        return self._step

    def skip_to_stage(self, index: int) -> None:
        """Go to the start of stage ``index`` with a fresh train step, leaving the model as
        it is (e.g. to time an upper stage of a stack without training the ones below:
        its cost does not depend on their weights). Not for real training runs."""
        if not 0 <= index < len(self.stages):
            raise ValueError(f"stage {index} does not exist: this run has stages 0 to {len(self.stages) - 1} "
                             f"({', '.join(s.name for s in self.stages)})")
        self.state.stage, self.state.epoch, self._step = index, 0, None

    def _epochs_before(self, stage: int) -> int:
        return sum(s.epochs for s in self.stages[:stage])

    @property
    def epochs_done(self) -> int:
        """Complete epochs over all stages."""
        return self._epochs_before(self.state.stage) + self.state.epoch

    def done(self) -> bool:
        if self.state.stopped_at is not None:
            return True
        last = len(self.stages) - 1
        return self.state.stage >= last and self.state.epoch >= self.stages[last].epochs

    # ------------------------------------------------------------------ the loop

    def run(
        self,
        *,
        progress: bool = False,
        on_epoch_end: EpochCallback | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> list[dict[str, float]]:
        """Train to the end of the last stage; returns the history (one row per epoch).

        Args:
            progress: a progress bar and one line per epoch.
            on_epoch_end: ``f(epoch_index, metrics)`` after each epoch, once the state is
                consistent (checkpointing and tuning reports hook in here; an exception it
                raises stops training).
            should_stop: polled after every update; when true, :class:`FitInterrupted`
                is raised with the state exactly after that update.

        Raises:
            DivergenceError: a loss became NaN or infinite (no update was applied).
        """
        with using_threads(self.threads.threads):
            return self._run(progress, on_epoch_end, should_stop)

    def _run(self, progress: bool, on_epoch_end: EpochCallback | None,
             should_stop: Callable[[], bool] | None) -> list[dict[str, float]]:
        state, model, task = self.state, self.model, self.task
        # a bar only on a terminal: in a log file its redraws are noise; epoch lines stay
        bar = tqdm(total=self.total_steps, initial=state.step, disable=not (progress and _terminal()),
                   desc=self.config.name, unit="batch", dynamic_ncols=True, leave=False)
        try:
            while not self.done():
                stage = self.stages[state.stage]
                if state.epoch >= stage.epochs:  # the stage is complete: on to the next
                    state.stage, state.epoch, self._step = state.stage + 1, 0, None
                    continue
                step = self.train_step()
                # train.backoff: where to go back to if this epoch diverges
                snapshot = copy.deepcopy(self.state_dict()) if self.config.train.backoff else None
                started = time.perf_counter()
                model.train()
                restarted = False
                for rows in self.batches.epoch():
                    batch = task.batch(rows, self.data_rng)
                    if stage.prepare is not None:
                        batch = stage.prepare(batch)
                    try:
                        value = step(model, batch)
                    except NonFiniteLoss as err:
                        if snapshot is not None and self._back_off(snapshot, err, progress, bar):
                            restarted = True
                            break
                        raise DivergenceError(
                            f"{err} at epoch {self.epochs_done + 1}, "
                            f"step {state.step + 1} (learning rate {err.lr:.3g}); lower "
                            "train.optimizer.lr, set train.clip_grad_norm or train.backoff.") from None
                    state.step, state.loss_sum = state.step + 1, state.loss_sum + value
                    bar.update(1)
                    if should_stop is not None and should_stop():
                        state.seconds += time.perf_counter() - started
                        raise FitInterrupted(f"stopped at epoch {self.epochs_done + 1}, step {state.step}")
                if restarted:
                    bar.n = state.step
                    continue
                state.seconds += time.perf_counter() - started
                metrics = self._end_epoch(stage, step)
                if progress:
                    bar.write(_summary(metrics, task.summary_keys))  # prints even when disabled
                    bar.set_postfix(loss=f"{metrics['loss']:.3g}", lr=f"{step.lr:.3g}")
                # before the callback, so that its checkpoint holds the stopper's verdict
                if self.stopper is not None and self.stopper.update(metrics, model):
                    state.stopped_at = metrics["epoch"]
                    self.stopper.restore(model)
                    if progress:
                        bar.write(self.stopper.describe(state.stopped_at))
                if on_epoch_end is not None:
                    on_epoch_end(metrics["epoch"] - 1, metrics)
        finally:
            bar.close()
        return state.history

    def _back_off(self, snapshot: dict[str, Any], err: NonFiniteLoss, progress: bool, bar) -> bool:
        """Restore ``snapshot`` (the epoch's start) with the rate lowered; False when no
        retry is left or the step has no single schedule to lower."""
        cfg = self.config.train.backoff
        done = list(self.state.backoffs)
        if len(done) >= cfg.retries or not isinstance(self.train_step(), GradientStep):
            return False
        record = {"epoch": self.epochs_done + 1, "step": self.state.step + 1, "lr": err.lr,
                  "factor": cfg.factor}
        self.load_state_dict(snapshot)
        self.state.backoffs = [*done, record]
        self.train_step().schedule.scale(cfg.factor)
        if progress:
            bar.write(f"the loss became {err.value} at epoch {record['epoch']}, step {record['step']} "
                      f"(learning rate {err.lr:.3g}): back to the epoch's start with the rate x "
                      f"{cfg.factor:g} (back-off {len(done) + 1} of {cfg.retries})")
        return True

    def _end_epoch(self, stage: Stage, step: TrainStep) -> dict[str, float]:
        state, model = self.state, self.model
        epoch = self.epochs_done + 1
        model.eval()
        metrics: dict[str, Any] = {
            "epoch": epoch,
            "step": state.step,
            "lr": step.lr,
            "loss": state.loss_sum / self.batches.per_epoch,
            "seconds": state.seconds,
            **(stage.metrics(epoch) if stage.metrics is not None else self.task.epoch_metrics(model, epoch)),
            **step.epoch_metrics(),
        }
        if len(self.stages) > 1:
            metrics["stage"] = stage.name
        if self.config.train.backoff is not None:
            metrics["lr_backoffs"] = len(state.backoffs)
        state.history.append(metrics)
        step.end_epoch(metrics)
        state.epoch, state.loss_sum, state.seconds = state.epoch + 1, 0.0, 0.0
        return metrics

    # ------------------------------------------------------------------ state

    def state_dict(self) -> dict[str, Any]:
        """Everything an exact resume needs (tensors and plain containers only)."""
        return {
            "model": self.model.state_dict(),
            "train_state": self.state.state_dict(),
            "batches": self.batches.state_dict(),
            "step": self.train_step().state_dict(),
            "data_rng": self.data_rng.get_state(),
            "global_rng": global_rng_state(),  # dropout draws from it
            **({"early_stopping": self.stopper.state_dict()} if self.stopper is not None else {}),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.state.load_state_dict(state["train_state"])
        self.batches.load_state_dict(state["batches"])
        self._step = None
        self.train_step().load_state_dict(state["step"])
        self.data_rng.set_state(state["data_rng"])
        set_global_rng_state(state["global_rng"])
        if self.stopper is not None and "early_stopping" in state:
            self.stopper.load_state_dict(state["early_stopping"])


def fit(
    config: RunConfig,
    dataset: DataLike | None = None,
    *,
    progress: bool = False,
    on_epoch_end: EpochCallback | None = None,
) -> FitResult:
    """Train the model ``config`` describes, in memory; returns the model and its history.

    Nothing is written to disk (see :func:`boltzkit.train.train` for a run directory with
    checkpoints and figures). ``dataset`` replaces the data ``config.data`` describes: a
    :class:`~boltzkit.data.Dataset`, features ``X`` or ``(X, y)``; the result's config
    then records ``data.name: memory``.
    """
    session = Fit(config, dataset)
    session.run(progress=progress, on_epoch_end=on_epoch_end)
    session.keep_best()
    return FitResult(session.config, session.model.eval(), session.history, session.task)


def _terminal() -> bool:
    return sys.stderr.isatty()


def summarize(metrics: dict[str, float], keys: tuple[str, ...]) -> str:
    """``"loss 0.58, val_pseudo_log_likelihood -27.45"``: the ``keys`` present in ``metrics``."""
    return ", ".join(f"{k} {metrics[k]:.4g}" for k in keys if k in metrics)


def _summary(metrics: dict[str, float], keys: tuple[str, ...]) -> str:
    stage = f" [{metrics['stage']}]" if "stage" in metrics else ""
    return f"epoch {metrics['epoch']:>3}{stage}: " + summarize(metrics, keys)
