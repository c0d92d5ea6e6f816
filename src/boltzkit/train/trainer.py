"""The run-directory trainer: :func:`train` = :class:`~boltzkit.train.fit.Fit` + a run directory.

The directory gets the resolved config, the metrics after every epoch, checkpoints
(every ``train.checkpoint_every`` epochs, on Ctrl-C and at the end), the final weights
and the family's figures. ``resume=True`` continues from ``checkpoints/last.pt`` and
ends with exactly the weights of an uninterrupted run.
"""

from __future__ import annotations

import signal
import threading
from dataclasses import dataclass, field
from pathlib import Path

from torch import nn

from ..config import RunConfig
from ..data import DataLike
from ..errors import CheckpointError, ConfigError, DivergenceError
from .checkpoint import load_checkpoint, save_checkpoint, save_weights
from .fit import EpochCallback, Fit, FitInterrupted
from .run_dir import RunDir


class TrainingInterrupted(Exception):
    """Ctrl-C stopped training; a checkpoint was saved at ``checkpoint``."""

    def __init__(self, checkpoint: Path, epoch: int, step: int):
        super().__init__(f"interrupted at epoch {epoch + 1}, step {step}; checkpoint saved to {checkpoint}")
        self.checkpoint, self.epoch, self.step = checkpoint, epoch, step


@dataclass
class TrainResult:
    run_dir: Path
    config: RunConfig
    model: nn.Module
    history: list[dict[str, float]] = field(default_factory=list)


def train(
    config: RunConfig,
    out: str | Path,
    *,
    resume: bool = False,
    progress: bool = True,
    on_epoch_end: EpochCallback | None = None,
    dataset: DataLike | None = None,
) -> TrainResult:
    """Train the model ``config`` describes and write a run directory at ``out``.

    Args:
        config: validated run configuration.
        out: run directory; must not hold a run unless ``resume``.
        resume: continue the run in ``out`` from ``checkpoints/last.pt``.
        progress: show a progress bar and per-epoch lines.
        on_epoch_end: called as ``f(epoch, metrics)`` after each epoch (tuning reports
            and pruning use it; an exception it raises stops training).
        dataset: the data instead of ``config.data``'s set: a loaded
            :class:`~boltzkit.data.Dataset` (tuning reuses one across trials) or features
            ``X`` / ``(X, y)``, recorded in the run's config as ``data.name: memory``.

    Raises:
        DivergenceError: the loss became NaN or infinite (the last checkpoint is kept).
        TrainingInterrupted: Ctrl-C; a checkpoint of the exact position was saved.
    """
    run = RunDir(out)
    if run.exists() and not resume:
        raise ConfigError(
            f"{run.path} already holds a run; pass --resume to continue it or choose another --out"
        )
    if resume and not run.last_checkpoint.is_file():
        raise CheckpointError(f"{run.path}: nothing to resume (no checkpoints/last.pt)")

    session = Fit(config, dataset)
    config, data = session.config, session.task.data
    if progress:
        print(f"{'resuming' if resume else 'training'} {config.name} -> {run.path} "
              f"({session.task.n_examples()} train / {len(data.validation)} validation examples, "
              f"{data.n_features} features, {session.model.__class__.__name__}, device {session.device}; "
              f"threads: {session.threads.threads or 'default'}, {session.threads.reason})")
    if resume:
        state = load_checkpoint(run.last_checkpoint, resumable=True)
        try:
            session.load_state_dict(state["fit"])
        except (KeyError, RuntimeError, ValueError, TypeError) as err:
            detail = " ".join(str(err).split())[:300]
            raise CheckpointError(f"{run.last_checkpoint}: cannot resume from it ({type(err).__name__}: "
                                  f"{detail})") from None
    else:
        run.write_config(config)

    def checkpoint(path: Path) -> None:
        save_checkpoint(path, {"model": session.model.state_dict(), "fit": session.state_dict(),
                               "config": config.to_dict(), "data_info": session.task.data_info})

    def epoch_end(epoch: int, metrics: dict[str, float]) -> None:
        run.write_metrics(session.history)
        every = config.train.checkpoint_every
        if every and (epoch + 1) % every == 0:
            checkpoint(run.epoch_checkpoint(epoch + 1))
            checkpoint(run.last_checkpoint)
        if on_epoch_end is not None:
            on_epoch_end(epoch, metrics)

    with _StopOnCtrlC() as stop:
        try:
            session.run(progress=progress, on_epoch_end=epoch_end, should_stop=lambda: stop.requested)
        except FitInterrupted:
            checkpoint(run.last_checkpoint)
            raise TrainingInterrupted(run.last_checkpoint, session.epochs_done, session.state.step) from None
        except DivergenceError as err:
            raise DivergenceError(f"{err} The last good checkpoint is {run.last_checkpoint}") from None

    checkpoint(run.last_checkpoint)
    model = session.model.eval()
    save_weights(run.weights, model, config.to_dict(), session.task.data_info)
    session.task.write_figures(run.path, model, session.history)
    return TrainResult(run.path, config, model, session.history)


class _StopOnCtrlC:
    """Turn the first Ctrl-C into a request to stop after the current update.

    The loop then saves an exact checkpoint; a second Ctrl-C interrupts at once.
    Outside the main thread (where signals cannot be caught) it does nothing.
    """

    def __init__(self) -> None:
        self.requested = False
        self._previous = None

    def _handle(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print("\nstopping after this update and saving a checkpoint (Ctrl-C again to abort)")

    def __enter__(self) -> _StopOnCtrlC:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
