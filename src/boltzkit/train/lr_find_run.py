"""``boltzkit lr-find``: the range test on the model and data a config describes."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from ..config import RunConfig
from ..errors import ConfigError
from ..families import GradientStep
from ..optim.lr_finder import LRFindResult, lr_range_test
from .fit import Fit
from .lr_verify import candidate_rates, verify_rates
from .threads import using_threads


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
    verify: bool = False,
    verify_epochs: int | None = None,
    progress: bool = True,
) -> tuple[LRFindResult, Path | None]:
    """Run the range test, write ``lr_find.json`` and ``lr_find.png`` into ``out`` and,
    with ``apply``, ``config-lr.yaml``: the config with ``train.optimizer.lr`` set to the
    suggestion. Returns the result and the path of that config (or ``None``).
    ``iterations`` defaults to the task's (100; 300 for RBMs).

    The curve records the task's proxy loss (for RBMs, the negative pseudo-log-likelihood;
    for classifiers, the cross-entropy) on a fixed probe batch of ``probe`` held-out
    examples before each update, which removes the batch-to-batch noise of recording
    training batches; ``probe=0`` records the training batch instead, as in Smith's
    original test.
    """
    from ..plots import save_range_test, save_verification

    session = Fit(config)
    task, model, step = session.task, session.model, session.train_step()
    if not session.family.capabilities.lr_find or not isinstance(step, GradientStep):
        raise ConfigError(f"lr-find needs a family trained by one optimizer; model.type "
                          f"{config.model.type!r} takes over its updates")
    iterations = iterations or task.range_test_iterations
    probe_batch = task.probe(probe) if probe else None

    def record(batch, loss) -> float:
        if probe == 0:
            return loss.item() if task.proxy_name == "loss" else task.proxy_loss(model, batch).item()
        model.eval()
        with torch.no_grad():
            value = task.proxy_loss(model, probe_batch).item()
        model.train()
        return value

    batches = (task.batch(rows, session.data_rng) for rows in session.batches.endless())
    with using_threads(session.threads.threads):
        result = lr_range_test(
            model,
            step.optimizer,
            batches,
            step_loss=lambda batch: step.objective.loss(model, batch),
            record=record,
            low=low,
            high=high,
            iterations=iterations,
            rule=rule,
            beta=0.9 if probe else 0.98,  # a probe has no batch-to-batch noise: smooth lightly
            stateful=[step.schedule, step.objective, session.data_rng, session.batches],
            clip=lambda: step.clip(model),
            loss_name=f"{task.proxy_name} ({'probe of ' + str(probe) if probe else 'training batch'})",
            progress=progress,
        )
    if task.range_test_caveat:  # the curve can look clean and still mislead
        result.confidence, result.caveat = "low", task.range_test_caveat
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if verify:  # the rules' candidates trained briefly, judged on the validation metric
        minimum = result.lrs[min(range(len(result.smoothed)), key=result.smoothed.__getitem__)]
        check = verify_rates(config, candidate_rates(result.suggestions, minimum), verify_epochs, progress)
        result.verification = check.to_dict()
        result.suggestion, result.rule = check.best_lr, "verified"
        save_verification(check, out / "lr_verify.png")
    (out / "lr_find.json").write_text(json.dumps(
        {"config": config.to_dict(), "low": low, "high": high, "iterations": iterations, "probe": probe,
         **result.to_dict()}, indent=2))
    save_range_test(result, out / "lr_find.png")
    applied = None
    if apply:
        applied = out / "config-lr.yaml"
        applied.write_text(config.with_overrides({"train.optimizer.lr": float(f"{result.suggestion:.6g}")})
                           .to_yaml())
    return result, applied
