"""``boltzkit lr-find``: the range test on the model and data a config describes."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from ..config import RunConfig, apply_overrides, validate
from .lr_finder import LRFindResult, lr_range_test, plot_range_test
from .optim import clip_gradients
from .trainer import prepare


def find_lr(
    config: RunConfig,
    out: str | Path,
    *,
    low: float = 1e-6,
    high: float = 1.0,
    iterations: int | None = None,
    rule: str = "steepest",
    probe: int = 512,
    apply: bool = False,
    progress: bool = True,
) -> tuple[LRFindResult, Path | None]:
    """Run the range test, write ``lr_find.json`` and ``lr_find.png`` into ``out`` and,
    with ``apply``, ``config-lr.yaml``: the config with ``train.optimizer.lr`` set to the
    suggestion. Returns the result and the path of that config (or ``None``).
    ``iterations`` defaults to the task's (100; 300 for RBMs).

    The curve records the task's loss (for RBMs, the reconstruction error) on a fixed
    probe batch of ``probe`` held-out examples before each update, which removes the
    batch-to-batch noise of recording training batches; ``probe=0`` records the
    training batch instead, as in Smith's original test.
    """
    setup = prepare(config)
    task, model = setup.task, setup.model
    iterations = iterations or task.range_test_iterations

    def record(batch, loss) -> float:
        if probe == 0:
            return loss.item() if task.proxy_name == "loss" else task.proxy_loss(model, batch).item()
        model.eval()
        with torch.no_grad():
            value = task.proxy_loss(model, probe_batch).item()
        model.train()
        return value

    probe_batch = task.probe(probe) if probe else None
    result = lr_range_test(
        setup.model,
        setup.optimizer,
        setup.batches(config.train.batch_size),
        step_loss=lambda batch: setup.objective.loss(setup.model, batch),
        record=record,
        low=low,
        high=high,
        iterations=iterations,
        rule=rule,
        beta=0.9 if probe else 0.98,  # a probe has no batch-to-batch noise: smooth lightly
        stateful=[setup.schedule, setup.objective, setup.data_rng],
        clip=lambda: clip_gradients(setup.model, config.train),
        loss_name=f"{task.proxy_name} ({'probe of ' + str(probe) if probe else 'training batch'})",
        progress=progress,
    )
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "lr_find.json").write_text(json.dumps(
        {"config": config.to_dict(), "low": low, "high": high, "iterations": iterations, "probe": probe,
         **result.to_dict()}, indent=2))
    plot_range_test(result, out / "lr_find.png")
    applied = None
    if apply:
        applied = out / "config-lr.yaml"
        raw = apply_overrides(config.to_dict(), [f"train.optimizer.lr={result.suggestion:.6g}"])
        applied.write_text(validate(raw).to_yaml())
    return result, applied
