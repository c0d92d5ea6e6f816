"""The training loop: config -> data -> model -> objective -> optimizer + schedule -> run dir.

Read top to bottom, :func:`train` is the whole story. Everything that decides the next
update (parameters, optimizer and schedule state, sampler chains, generator states, the
epoch's shuffling order and the position in it) is in the checkpoint, so a resumed run
ends with exactly the weights of an uninterrupted one.
"""

from __future__ import annotations

import math
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from ..config import RunConfig
from ..data import Dataset, load_dataset
from ..errors import CheckpointError, ConfigError, DivergenceError
from ..seeding import global_rng_state, make_generator, set_global_rng_state
from .build import resolve_device
from .checkpoint import load_checkpoint, load_state_into, save_checkpoint, save_weights
from .optim import clip_gradients, make_optimizer
from .run_dir import RunDir
from .schedules import Schedule
from .tasks import Task, make_task, needs_unit_interval

EpochCallback = Callable[[int, dict[str, float]], None]


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


@dataclass
class Setup:
    """Everything a run trains with, freshly built from a config."""

    task: Task
    model: nn.Module
    objective: Any
    optimizer: torch.optim.Optimizer
    schedule: Schedule
    data_rng: torch.Generator
    steps_per_epoch: int
    device: torch.device

    def batches(self, batch_size: int) -> Iterator[Any]:
        """Shuffled training batches, epoch after epoch, drawn with ``data_rng``."""
        n = self.task.n_examples()
        while True:
            order = torch.randperm(n, generator=self.data_rng, device=self.device)
            for start in range(0, n, batch_size):
                yield self.task.batch(order[start : start + batch_size], self.data_rng)


def prepare(config: RunConfig, dataset: Dataset | None = None) -> Setup:
    """Data, model, objective, optimizer (with parameter groups) and schedule for ``config``."""
    cfg = config.train
    device = resolve_device(config.device)
    data = dataset or load_dataset(config.data, config.seed, unit_interval=needs_unit_interval(config))
    task = make_task(config, data, device)
    model = task.build_model()
    optimizer = make_optimizer(model, cfg.optimizer)
    steps_per_epoch = math.ceil(task.n_examples() / cfg.batch_size)
    total = cfg.epochs if cfg.schedule.unit == "epoch" else cfg.epochs * steps_per_epoch
    schedule = Schedule(optimizer, cfg.schedule.name, total, cfg.schedule.unit, **cfg.schedule.params())
    return Setup(task, model, task.build_objective(), optimizer, schedule,
                 make_generator(config.seed, "train.data", device), steps_per_epoch, device)


@dataclass
class Position:
    """Where the run is: epochs done, batches done in the current epoch, updates done."""

    epoch: int = 0
    batch: int = 0
    step: int = 0
    order: Tensor | None = None  # the current epoch's shuffling order
    loss_sum: float = 0.0  # sum of batch losses so far in the current epoch
    seconds: float = 0.0  # training seconds so far in the current epoch


def train(
    config: RunConfig,
    out: str | Path,
    *,
    resume: bool = False,
    progress: bool = True,
    on_epoch_end: EpochCallback | None = None,
    dataset: Dataset | None = None,
) -> TrainResult:
    """Train the model ``config`` describes and write a run directory at ``out``.

    Args:
        config: validated run configuration.
        out: run directory; must not hold a run unless ``resume``.
        resume: continue the run in ``out`` from ``checkpoints/last.pt``.
        progress: show a progress bar and per-epoch lines.
        on_epoch_end: called as ``f(epoch, metrics)`` after each epoch (tuning reports
            and pruning use it; an exception it raises stops training).
        dataset: an already loaded data set (tuning reuses one across trials).

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

    cfg = config.train
    setup = prepare(config, dataset)
    task, model, objective = setup.task, setup.model, setup.objective
    optimizer, schedule, data_rng = setup.optimizer, setup.schedule, setup.data_rng
    steps_per_epoch, device, data = setup.steps_per_epoch, setup.device, setup.task.data
    if progress:
        print(f"{'resuming' if resume else 'training'} {config.name} -> {run.path} "
              f"({task.n_examples()} train / {len(data.validation)} validation examples, "
              f"{data.n_features} features, {model.__class__.__name__}, device {device})")

    data_info = task.data_info
    pos = Position()
    history: list[dict[str, float]] = []
    if resume:
        state = load_checkpoint(run.last_checkpoint)
        load_state_into(model, state["model"], str(run.last_checkpoint))
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        objective.load_state_dict(_to_device(state["objective"], device))
        data_rng.set_state(state["data_rng"])
        set_global_rng_state(state["global_rng"])
        pos = Position(**state["position"])
        pos.order = None if pos.order is None else pos.order.to(device)
        history = list(state["history"])
    else:
        run.write_config(config)

    def checkpoint(path: Path) -> None:
        save_checkpoint(path, {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "schedule": schedule.state_dict(),
            "objective": objective.state_dict(),
            "data_rng": data_rng.get_state(),
            "global_rng": global_rng_state(),
            "position": vars(pos),
            "history": history,
            "config": config.to_dict(),
            "data_info": data_info,
        })

    bar = tqdm(total=cfg.epochs * steps_per_epoch, initial=pos.step, disable=not progress,
               desc=config.name, unit="batch", dynamic_ncols=True, leave=False)
    with _StopOnCtrlC() as stop:
        while pos.epoch < cfg.epochs:
            if pos.order is None:
                pos.order = torch.randperm(task.n_examples(), generator=data_rng, device=device)
            started = time.perf_counter()
            model.train()
            for b in range(pos.batch, steps_per_epoch):
                rows = pos.order[b * cfg.batch_size : (b + 1) * cfg.batch_size]
                batch = task.batch(rows, data_rng)
                loss = objective.loss(model, batch)
                value = loss.item()
                if not math.isfinite(value):
                    bar.close()
                    raise DivergenceError(
                        f"the loss became {value} at epoch {pos.epoch + 1}, step {pos.step + 1} "
                        f"(learning rate {schedule.lrs[0]:.3g}); lower train.optimizer.lr or set "
                        f"train.clip_grad_norm. The last good checkpoint is {run.last_checkpoint}"
                    )
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                clip_gradients(model, cfg)
                optimizer.step()
                if cfg.schedule.unit == "step":
                    schedule.step()
                pos.batch, pos.step, pos.loss_sum = b + 1, pos.step + 1, pos.loss_sum + value
                bar.update(1)
                if stop.requested:
                    pos.seconds += time.perf_counter() - started
                    checkpoint(run.last_checkpoint)
                    bar.close()
                    raise TrainingInterrupted(run.last_checkpoint, pos.epoch, pos.step)
            pos.seconds += time.perf_counter() - started

            model.eval()
            metrics = {
                "epoch": pos.epoch + 1,
                "step": pos.step,
                "lr": schedule.lrs[0],
                "loss": pos.loss_sum / steps_per_epoch,
                "seconds": pos.seconds,
                **task.epoch_metrics(model, pos.epoch + 1),
                **(objective.epoch_metrics() if hasattr(objective, "epoch_metrics") else {}),
            }
            history.append(metrics)
            run.write_metrics(history)
            if cfg.schedule.unit == "epoch":
                schedule.step(metrics)
            pos = Position(epoch=pos.epoch + 1, step=pos.step)
            if progress:
                bar.write(_summary(metrics, task.summary_keys))
                bar.set_postfix(loss=f"{metrics['loss']:.3g}", lr=f"{schedule.lrs[0]:.3g}")
            if cfg.checkpoint_every and pos.epoch % cfg.checkpoint_every == 0:
                checkpoint(run.epoch_checkpoint(pos.epoch))
                checkpoint(run.last_checkpoint)
            if on_epoch_end is not None:
                on_epoch_end(pos.epoch - 1, metrics)
    bar.close()

    checkpoint(run.last_checkpoint)
    save_weights(run.weights, model, config.to_dict(), data_info)
    task.write_figures(run, model.eval(), history)
    return TrainResult(run.path, config, model, history)


def _to_device(state: Any, device: torch.device) -> Any:
    """Move tensors in a nested state to ``device`` (generator states stay on the CPU)."""
    if isinstance(state, dict):
        return {k: (v if k == "generator" else _to_device(v, device)) for k, v in state.items()}
    if isinstance(state, Tensor):
        return state.to(device)
    return state


def _summary(metrics: dict[str, float], keys: tuple[str, ...]) -> str:
    parts = [f"{k} {metrics[k]:.4g}" for k in keys if k in metrics]
    return f"epoch {metrics['epoch']:>3}: " + ", ".join(parts)


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
