"""``boltzkit evaluate``: the family's evaluation of a trained run, into evaluation.json."""

from __future__ import annotations

import inspect
import json
import math
from pathlib import Path
from typing import Any

from ..data import DataLike, as_dataset, load_dataset
from ..errors import BoltzkitError
from ..families import family_names, get_family
from ..families.task import check_pretrained_unchanged
from .device import resolve_device
from .run_dir import RunDir, load_run_model
from .threads import choose_threads, using_threads

SPLITS = ("train", "validation", "test")


def evaluate_run(
    run: str | Path,
    split: str = "test",
    *,
    seed: int = 0,
    data_dir: str | None = None,
    data: DataLike | None = None,
    data_file: str | None = None,
    device: str | None = None,
    threads: int | str | None = None,
    product_kernel: str | None = None,
    progress: bool = True,
    sample_quality: int = 0,
    sample_steps: int = 1000,
    **options: Any,
) -> dict[str, Any]:
    """Evaluate the run's model on ``split`` and write ``evaluation.json`` in the run.

    The data set is rebuilt from the run config (same seed, so the same split and
    binarization), or taken from ``data`` (a Dataset, ``X`` or ``(X, y)``, needed by runs
    trained on arrays given in Python) or ``data_file`` (an ``.npz`` or ``.csv`` file read
    with the run's ``data`` settings). ``threads``: a count, ``auto`` or ``None`` (the
    run's ``threads``). ``product_kernel``: ``eval.product_kernel`` (``auto``, ``torch``,
    ``onednn``; ``None``: the run's). ``options`` go to the family's evaluation (for RBMs ``ais_runs``,
    ``ais_betas``, ``reverse_examples``, ``reverse_runs``; unset ones come from the run
    config's ``eval`` section; for VAEs ``k``, the importance samples); an option the
    family does not take is a :class:`BoltzkitError`. ``sample_quality``: also judge that
    many samples (after ``sample_steps`` sampling steps) against the test split (see
    :mod:`boltzkit.train.quality_run`; families that sample but have no evaluation get
    only this). The result holds ``report``, a printable table.
    """
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; accepted: {', '.join(SPLITS)}")
    run_dir = RunDir(run)
    where = resolve_device(device or "auto")
    trained = load_run_model(run_dir.path, where)
    config = trained.config
    family = get_family(config.model.type)
    if sample_quality and not family.capabilities.sample:
        able = [name for name in family_names() if get_family(name).capabilities.sample]
        raise BoltzkitError(f"boltzkit evaluate --sample-quality: model.type {family.name!r} cannot be "
                            f"sampled (families that can: {', '.join(able)})")
    if not family.capabilities.evaluate and not sample_quality:
        able = [name for name in family_names() if get_family(name).capabilities.evaluate]
        raise BoltzkitError(f"boltzkit evaluate: not available for model.type {family.name!r} "
                            f"(families with an evaluation: {', '.join(able)}); {run} has its "
                            "per-epoch values in metrics.csv")
    if data_dir is not None:
        config.data.dir = data_dir
    if product_kernel is not None:
        config = config.with_overrides({"eval.product_kernel": product_kernel})
    if data_file is not None:
        kind = Path(data_file).suffix.lstrip(".").lower()
        if kind not in ("npz", "csv"):
            raise BoltzkitError(f"--data {data_file}: expected an .npz or .csv file")
        config = config.with_overrides({"data.name": kind, "data.path": data_file})
    unit_interval = family.unit_interval(config.model)
    dataset = (load_dataset(config.data, config.seed, unit_interval=unit_interval) if data is None
               else as_dataset(data, config.data, config.seed, unit_interval))
    task = family.task(config, dataset, where)
    if "pretrained_sha256" in trained.data_info:  # its inputs come from another run's model
        check_pretrained_unchanged(trained.data_info, task.data_info.get("pretrained_sha256"),
                                   str(config.model.pretrained))
    options = {k: v for k, v in options.items() if v is not None}
    _check_options(family.name, task.evaluate, options)
    rows = max(config.train.batch_size, config.eval.ais.runs)
    choice = choose_threads(config.threads if threads is None else threads, trained.model, rows, where)
    results, report = {}, f"{split} split"
    with using_threads(choice.threads):
        if family.capabilities.evaluate:
            results, report = task.evaluate(trained.model, split, seed=seed, progress=progress, **options)
        if sample_quality:
            from .quality_run import judge_model

            quality = judge_model(family, trained.model, config.data, n=sample_quality, steps=sample_steps,
                                  seed=seed, device=where, feature_mean=trained.feature_mean,
                                  feature_std=trained.feature_std, progress=progress)
            results["sample_quality"] = {**quality.to_dict(), "sample_steps": sample_steps}
            report += f"\nsample quality against the test split: {quality.report()}"
    results = {"run": str(run_dir.path), "split": split, "seed": seed, "model_type": family.name, **results}
    path = run_dir.file("evaluation.json")
    path.write_text(json.dumps(_finite(results), indent=2))
    results["report"] = f"{run_dir.path.name}: {report}"
    return results


def _check_options(family: str, evaluate, options: dict[str, Any]) -> None:
    """Refuse an option the family's evaluation does not take (``--k`` for an RBM) with a
    one-line error instead of a TypeError."""
    parameters = inspect.signature(evaluate).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return
    unknown = sorted(name for name in options if name not in parameters)
    if unknown:
        taken = sorted(name for name, p in parameters.items() if p.kind is inspect.Parameter.KEYWORD_ONLY
                       and name not in ("seed", "progress"))
        raise BoltzkitError(f"boltzkit evaluate: {', '.join('--' + n.replace('_', '-') for n in unknown)} "
                            f"does not apply to model.type {family!r} (its options: "
                            f"{', '.join('--' + n.replace('_', '-') for n in taken) or 'none'})")


def _finite(results: Any) -> Any:
    """JSON has no infinities: write them as null, in nested results too."""
    if isinstance(results, dict):
        return {k: _finite(v) for k, v in results.items()}
    if isinstance(results, list):
        return [_finite(v) for v in results]
    return None if isinstance(results, float) and not math.isfinite(results) else results
