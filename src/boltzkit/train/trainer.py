"""The run-directory trainer: :func:`train` = :class:`~boltzkit.train.fit.Fit` + a run directory.

The directory gets the resolved config, the metrics after every epoch, checkpoints
(every ``train.checkpoint_every`` epochs, on Ctrl-C and at the end), the final weights
and the family's figures. ``resume=True`` continues from ``checkpoints/last.pt`` and
ends with exactly the weights of an uninterrupted run.
"""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from ..config import RunConfig, validate
from ..data import DataLike
from ..errors import CheckpointError, ConfigError, DivergenceError
from ..families import GradientStep
from ..optim.schedules import REACTIVE
from .checkpoint import load_checkpoint, save_checkpoint, save_weights
from .fit import EpochCallback, Fit, FitInterrupted, summarize
from .run_dir import EpochCheckpoints, RunDir
from .tensorboard import TensorBoardLog
from .threads import using_threads


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
    summary: str = ""
    """The last epoch's headline metrics (the family's summary keys), or why nothing ran."""
    epochs_trained: int = 0
    """Epochs this call trained (0: a resumed run that had already finished)."""
    kept_epoch: int = 0
    """The epoch whose weights ``model`` holds (the best one where early stopping restored it)."""


def train(
    config: RunConfig,
    out: str | Path,
    *,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    on_epoch_end: EpochCallback | None = None,
    dataset: DataLike | None = None,
) -> TrainResult:
    """Train the model ``config`` describes and write a run directory at ``out``.

    Every draw of the library comes from generators seeded from ``config.seed``, except
    dropout, which draws from PyTorch's global generator: this function leaves that to the
    caller (``boltzkit train`` seeds it with ``torch.manual_seed(config.seed)``, and a
    resumed run restores it from its checkpoint). Seed it likewise for a model with
    dropout whose run must repeat in one Python process.

    Args:
        config: validated run configuration.
        out: run directory; must not hold a run unless ``resume``.
        resume: continue the run in ``out`` from ``checkpoints/last.pt`` (a run killed
            before its first checkpoint starts again from the beginning). A few keys may
            change (see :data:`RESUMABLE_CHANGES`); they are recorded in ``resumes.jsonl``.
        overwrite: start the run in ``out`` over: once the config and data have been
            checked, the files a run writes there are deleted (nothing else).
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
    if resume and overwrite:
        raise ConfigError("resume continues a run and overwrite starts it over: choose one")
    if run.exists() and not (resume or overwrite):
        raise ConfigError(f"{run.path} already holds a run; pass --resume to continue it, --overwrite "
                          "to start it over, or choose another --out")
    if resume and not run.last_checkpoint.is_file():
        if run.epoch_checkpoints():
            raise CheckpointError(
                f"{run.last_checkpoint} is missing but {run.epoch_checkpoints()[-1].name} is there: copy the "
                "epoch checkpoint to continue from to checkpoints/last.pt, or start over with --overwrite")
        print(f"{run.path} has no checkpoint yet (stopped before its first): starting it from the "
              "beginning")
        resume = False

    session = Fit(config, dataset)  # every check of the config and data before anything is deleted
    config, data = session.config, session.task.data
    if config.train.tensorboard:
        TensorBoardLog.writer_class()
    if overwrite:
        run.clear()
    run.remove_partial_files()
    if progress:
        print(f"{'resuming' if resume else 'training'} {config.name} -> {run.path} "
              f"({session.task.n_examples()} train / {len(data.validation)} validation examples, "
              f"{data.n_features} features, {session.model.__class__.__name__}, device {session.device}; "
              f"threads: {session.threads.threads or 'default'}, {session.threads.reason})")
    if resume:
        finished = _resume(run, session, config)
        if finished is not None:
            return finished
    else:
        run.write_config(config)
    epochs_before = session.epochs_done

    def checkpoint(path: Path) -> None:
        save_checkpoint(path, {"model": session.model.state_dict(), "fit": session.state_dict(),
                               "config": config.to_dict(), "data_info": session.task.data_info})

    board = TensorBoardLog(run.file("tensorboard")) if config.train.tensorboard else None
    epoch_checkpoints = EpochCheckpoints(config.train.checkpoint_keep)

    def epoch_end(epoch: int, metrics: dict[str, float]) -> None:
        run.write_metrics(session.history)
        session.task.epoch_figures(run.path, session.model, epoch + 1)
        if board is not None:
            board.log(metrics)
        every = config.train.checkpoint_every
        if every and (epoch + 1) % every == 0:
            checkpoint(run.epoch_checkpoint(epoch + 1))
            checkpoint(run.last_checkpoint)
            epoch_checkpoints.wrote(run.epoch_checkpoint(epoch + 1), session.state.stage)
        if on_epoch_end is not None:
            on_epoch_end(epoch, metrics)

    with _StopOnCtrlC() as stop:
        try:
            session.run(progress=progress, on_epoch_end=epoch_end, should_stop=lambda: stop.requested)
        except FitInterrupted:
            checkpoint(run.last_checkpoint)
            raise TrainingInterrupted(run.last_checkpoint, session.epochs_done, session.state.step) from None
        except DivergenceError as err:
            if run.last_checkpoint.is_file():
                where = (f"The last good checkpoint is {run.last_checkpoint}: continue from it with "
                         "--resume and a lower rate (--set train.optimizer.lr=...)")
            else:
                where = "No checkpoint was written before it: start over with --overwrite"
            raise DivergenceError(f"{err} {where}") from None
        finally:
            if board is not None:
                board.close()

    with using_threads(session.threads.threads):  # figures run 100 chains x 1000 sweeps
        checkpoint(run.last_checkpoint)  # the last epoch's weights: an extended run goes on from them
        kept = session.keep_best()
        model = session.model.eval()
        save_weights(run.weights, model, config.to_dict(), session.task.data_info)
        session.task.write_figures(run.path, model, session.history)
        if config.train.log_grad_norms:
            from ..plots import save_grad_norms

            save_grad_norms(session.history, run.file("grad_norms.png"))
    last = session.history[-1] if session.history else {}
    keys = tuple(k for k in session.task.summary_keys if k != "seconds")
    summary = summarize(last, keys)
    if session.state.stopped_at is not None:
        summary += f" ({session.stopper.describe(session.state.stopped_at)})"
    elif kept != session.epochs_done:
        summary += f" (the weights are epoch {kept}'s, the best {session.stopper.metric})"
    return TrainResult(run.path, config, model, session.history, summary,
                       session.epochs_done - epochs_before, kept)


def _resume(run: RunDir, session: Fit, config: RunConfig) -> TrainResult | None:
    """Load the run's last checkpoint into ``session`` and apply what the new config
    changes; a result (nothing trained) when there is nothing left to do."""
    state = load_checkpoint(run.last_checkpoint, resumable=True)
    # the checkpoint's own config: config.yaml may already hold changes a crash never applied
    saved = validate(state["config"]) if isinstance(state.get("config"), dict) else run.read_config()
    changes = changed_keys(saved.to_dict(), config.to_dict())
    _check_resume_changes(run, changes)
    try:
        session.load_state_dict(state["fit"])
    except (KeyError, RuntimeError, ValueError, TypeError) as err:
        detail = " ".join(str(err).split())[:300]
        raise CheckpointError(f"{run.last_checkpoint}: cannot resume from it ({type(err).__name__}: "
                              f"{detail})") from None
    if session.state.stopped_at is not None:
        kept = session.keep_best()
        return TrainResult(run.path, config, session.model.eval(), session.history,
                           f"{run.path} was stopped early after epoch {session.state.stopped_at}; "
                           "nothing to do", epochs_trained=0, kept_epoch=kept)
    if session.done() and not changes:
        kept = session.keep_best()
        return TrainResult(run.path, config, session.model.eval(), session.history,
                           f"{run.path} already finished its {session.epochs_done} epochs; nothing "
                           "to do (to train longer: --resume --set train.epochs=N)", epochs_trained=0,
                           kept_epoch=kept)
    if "train.optimizer.lr" in changes:  # the checkpoint restored the old rate: rescale it
        step = session.train_step()
        if not isinstance(step, GradientStep):
            raise ConfigError(f"--resume cannot change train.optimizer.lr for model.type "
                              f"{config.model.type!r}: its train step keeps its own rates")
        old, new = changes["train.optimizer.lr"]
        step.schedule.scale(new / old)
    _record_resume(run, session, saved, config, changes)
    return None


def changed_keys(old: Mapping[str, Any], new: Mapping[str, Any], prefix: str = "") -> dict[str, list]:
    """``{"train.epochs": [3, 6], ...}``: the dotted keys whose values differ."""
    changes: dict[str, list] = {}
    for key in sorted(set(old) | set(new)):
        a, b, name = old.get(key), new.get(key), f"{prefix}{key}"
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            changes.update(changed_keys(a, b, name + "."))
        elif a != b:
            changes[name] = [a, b]
    return changes


RESUMABLE_CHANGES = ("name", "threads", "device", "train.epochs", "train.optimizer.lr", "train.schedule.",
                     "train.checkpoint_", "train.metrics_examples", "train.backoff",
                     "train.tensorboard", "train.log_grad_norms", "train.clip_grad_", "eval.", "tune.")
"""Keys a resumed run may change: what it trains further, how it reports, how fast. The
rest (model, data, sampler, optimizer settings held in the checkpoint) would be ignored or
mix two runs, so they are refused."""


def _check_resume_changes(run: RunDir, changes: dict[str, list]) -> None:
    refused = [key for key in changes if not key.startswith(RESUMABLE_CHANGES)]
    if "train.schedule.unit" in changes:  # the saved step counter would be read in the other unit
        refused.append("train.schedule.unit")
    if "train.schedule.name" in changes and any(name in REACTIVE for name in changes["train.schedule.name"]):
        refused.append("train.schedule.name")
    if refused:
        shown = ", ".join(f"{k}: {a} -> {b}" for k, (a, b) in ((k, changes[k]) for k in refused))
        raise ConfigError(f"--resume cannot change {shown}: the checkpoint in {run.path} was trained "
                          "with the old value; resume with the saved config or start a new run "
                          "(--overwrite or another --out). A resumed run may change train.epochs, "
                          "train.optimizer.lr, train.schedule, reporting and eval/tune settings")


def _record_resume(run: RunDir, session: Fit, saved: RunConfig, config: RunConfig,
                   changes: dict[str, list]) -> None:
    """Check and record what a resume changes: ``config.yaml`` is rewritten and every
    resume is appended to ``resumes.jsonl`` (the epoch it started from and the changes)."""
    done = session.epochs_done
    if config.train.epochs < done and "train.epochs" in changes:
        raise ConfigError(f"train.epochs={config.train.epochs}, but {run.path} has already trained "
                          f"{done} epochs; accepted: train.epochs >= {done}")
    notes = []
    if "train.epochs" in changes and config.train.schedule.name != "constant" and session.history:
        before, after = session.history[-1]["lr"], session.train_step().lr
        notes.append(f"the {config.train.schedule.name} schedule now spans {config.train.epochs} epochs "
                     f"instead of {saved.train.epochs}: the rate moves from {before:.3g} (last epoch) "
                     f"to {after:.3g}")
    if changes:
        run.write_config(config)
        shown = ", ".join(f"{k}: {a} -> {b}" for k, (a, b) in changes.items())
        print(f"resuming after epoch {done} with {shown}" + "".join(f"; {n}" for n in notes))
    with open(run.file("resumes.jsonl"), "a") as handle:
        handle.write(json.dumps({"time": time.strftime("%Y-%m-%dT%H:%M:%S"), "after_epoch": done,
                                 "step": session.state.step, "changes": changes, "notes": notes}) + "\n")


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
