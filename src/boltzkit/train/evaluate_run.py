"""``boltzkit evaluate``: every likelihood estimate for a trained run, into evaluation.json."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from ..data import load_dataset
from ..estimate.evaluate import binary_view, evaluate_rbm, format_report
from ..seeding import make_generator
from .build import resolve_device
from .run_dir import RunDir, load_run_model

SPLITS = ("train", "validation", "test")


def evaluate_run(
    run: str | Path,
    split: str = "test",
    *,
    ais_runs: int | None = None,
    ais_betas: int | None = None,
    reverse_examples: int | None = None,
    reverse_runs: int | None = None,
    seed: int = 0,
    data_dir: str | None = None,
    device: str | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Evaluate the run's model on ``split`` and write ``evaluation.json`` in the run.

    Settings not given come from the run config's ``eval`` section. The data set is
    rebuilt from the run config (same seed, so the same split and binarization).
    """
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; accepted: {', '.join(SPLITS)}")
    run_dir = RunDir(run)
    trained = load_run_model(run_dir.path, resolve_device(device or "auto"))
    config = trained.config
    if config.model.type != "rbm":
        from ..errors import BoltzkitError

        raise BoltzkitError(f"boltzkit evaluate estimates RBM likelihoods; {run} holds a model.type "
                            f"{config.model.type!r} (its metrics.csv has the per-epoch values)")
    if data_dir is not None:
        config.data.dir = data_dir
    data = load_dataset(config.data, config.seed, unit_interval=config.model.visible != "gaussian")
    try:
        values = data.split(split)
    except ValueError as err:
        from ..errors import DataError

        raise DataError(f"{err}; choose another --split") from None
    evaluation = config.eval
    generator = make_generator(seed, "evaluate.binarize")
    if config.model.visible == "bernoulli":
        values = binary_view(values, generator)
    results = evaluate_rbm(
        trained.model,
        values,
        data.train,
        ais_runs=ais_runs or evaluation.ais.runs,
        ais_betas=ais_betas or evaluation.ais.betas,
        pseudocount=evaluation.ais.pseudocount,
        reverse_examples=evaluation.reverse_ais.examples if reverse_examples is None else reverse_examples,
        reverse_runs=reverse_runs or evaluation.reverse_ais.runs,
        exact_max_units=evaluation.exact_max_units,
        seed=seed,
        progress=progress,
    )
    results = {"run": str(run_dir.path), "split": split, "seed": seed, **results}
    path = run_dir.file("evaluation.json")
    path.write_text(json.dumps(_finite(results), indent=2))
    results["report"] = format_report(results, f"{run_dir.path.name}: {split} split, "
                                               f"{results['examples']} examples")
    return results


def _finite(results: dict[str, Any]) -> dict[str, Any]:
    """JSON has no infinities: write them as null."""
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
            for k, v in results.items()}
