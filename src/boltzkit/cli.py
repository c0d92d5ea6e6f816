"""The ``boltzkit`` command.

Exit status: 0 on success, 2 on bad input (config, data, checkpoint, output path, memory;
printed as one line), 1 when training diverges, a tuning worker is lost or something
unexpected fails (one line; ``--debug`` shows the traceback), 130 when interrupted with
Ctrl-C.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

from . import __version__
from .errors import BoltzkitError, DivergenceError, RunFailed

EXIT_USAGE = 2
EXIT_DIVERGED = 1
EXIT_INTERRUPTED = 130


def _config_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", nargs="?", default=None,
                        help="YAML file or preset name (default: rbm-digits)")
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override a config key, e.g. --set train.epochs=5 (repeatable; values are YAML)",
    )
    parser.add_argument("--data-dir", help="folder with data files (sets data.dir)")
    parser.add_argument("--device", help="auto, cpu, cuda or cuda:N (sets device)")
    _threads_argument(parser, "sets threads")


def _threads_argument(parser: argparse.ArgumentParser, default: str) -> None:
    parser.add_argument("--threads", type=int, metavar="N",
                        help=f"CPU threads for PyTorch ({default}; on a busy machine 1 can be far "
                             "faster than the default)")


def _shortcuts(args: argparse.Namespace) -> list[str]:
    extra = []
    if getattr(args, "data_dir", None):
        extra.append(f"data.dir={args.data_dir}")
    if getattr(args, "device", None):
        extra.append(f"device={args.device}")
    if getattr(args, "threads", None) is not None:
        extra.append(f"threads={args.threads}")
    return [*args.overrides, *extra]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="boltzkit",
        description="Train, sample and inspect Boltzmann machines and other generative models.",
    )
    parser.add_argument("--version", action="version", version=f"boltzkit {__version__}")
    parser.add_argument("--debug", action="store_true",
                        help="show the traceback of an unexpected error (also BOLTZKIT_DEBUG=1)")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    train = commands.add_parser("train", help="train a model and write a run directory")
    _config_arguments(train)
    train.add_argument("--out", help="run directory (default: runs/<name>-<time>)")
    train.add_argument("--resume", action="store_true",
                       help="continue the run in --out from its last checkpoint")
    train.add_argument("--overwrite", action="store_true",
                       help="delete the run in --out and start it over")
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    train.set_defaults(handler=_train)

    sample = commands.add_parser("sample", help="draw samples from a trained run")
    sample.add_argument("run", help="run directory written by boltzkit train")
    sample.add_argument("--n", type=int, default=100, help="number of samples (default 100)")
    sample.add_argument("--steps", type=int, default=1000,
                        help="Gibbs sweeps per chain (default 1000; a VAE or GAN samples in one pass)")
    sample.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    sample.add_argument("--pt", type=int, default=0, metavar="M",
                        help="sample with parallel tempering over M temperatures (default: plain Gibbs)")
    sample.add_argument("--min-beta", type=float, default=0.5,
                        help="inverse temperature of the hottest replica (default 0.5)")
    sample.add_argument("--label", type=int, metavar="Y",
                        help="draw class Y only: a DBN or GAN trained with model.labels=true (a DBN "
                             "clamps its label units, a GAN feeds the class to its generator)")
    sample.add_argument("--out", help="output file stem (default: RUN/samples-n<N>-k<K>-s<S>)")
    sample.add_argument("--device", help="auto, cpu, cuda or cuda:N")
    _threads_argument(sample, "default: the run's threads")
    sample.set_defaults(handler=_sample)

    evaluate = commands.add_parser(
        "evaluate", help="evaluate a run: likelihoods (AIS, reverse AIS, exact when small) or accuracy")
    evaluate.add_argument("run", help="run directory written by boltzkit train")
    evaluate.add_argument("--split", default="test", choices=["train", "validation", "test"])
    evaluate.add_argument("--ais-runs", type=int, help="AIS chains (default: eval.ais.runs)")
    evaluate.add_argument("--ais-betas", type=int,
                          help="inverse temperatures (default: eval.ais.betas, 14501)")
    evaluate.add_argument("--reverse-examples", type=int,
                          help="examples for reverse AIS (default: eval.reverse_ais.examples, 0 = skip)")
    evaluate.add_argument("--reverse-runs", type=int, help="reverse AIS chains per example")
    evaluate.add_argument("--k", type=int, help="importance samples of a VAE's IWAE bound (default 5000)")
    evaluate.add_argument("--samples", type=int,
                          help="importance draws per example of a DBN's likelihood bound (default 100)")
    evaluate.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    evaluate.add_argument("--data-dir", help="folder with the run's data files")
    evaluate.add_argument("--data", metavar="FILE",
                          help="evaluate on this .npz or .csv file (runs trained on arrays given in Python)")
    evaluate.add_argument("--device", help="auto, cpu, cuda or cuda:N")
    evaluate.add_argument("--product-kernel", choices=["auto", "torch", "onednn"],
                          help="who multiplies in AIS and mean field (default: the run's "
                               "eval.product_kernel; auto: oneDNN for large products on AMD CPUs)")
    _threads_argument(evaluate, "default: the run's threads")
    evaluate.add_argument("--sample-quality", type=int, nargs="?", const=1000, default=0, metavar="N",
                          help="also draw N samples (default 1000) and compare them with the test split "
                               "(whatever --split says: the quality classifier's reference): "
                               "FID on the quality classifier's features (not Inception), class coverage, "
                               "Inception-style score (needs boltzkit[quality])")
    evaluate.add_argument("--sample-steps", type=int, default=1000,
                          help="sampling steps (Gibbs sweeps) per sample for --sample-quality (default 1000)")
    evaluate.add_argument("--quiet", action="store_true", help="no progress bar")
    evaluate.set_defaults(handler=_evaluate)

    quality = commands.add_parser(
        "quality-classifier", help="train the classifier that judges sample quality, cached beside the data")
    quality.add_argument("--data", default="digits", metavar="NAME|FILE.npz",
                         help="digits, mnist, fashion-mnist, or an .npz with x_train, y_train, x_test, "
                              "y_test (default digits)")
    quality.add_argument("--data-dir", help="folder with the data files, where the weights are cached too")
    quality.add_argument("--out", help="weights file (default: DATA_DIR/boltzkit-quality-classifier-<data>"
                                       ".safetensors)")
    quality.add_argument("--retrain", action="store_true", help="train again and replace the file")
    quality.add_argument("--device", help="auto, cpu, cuda or cuda:N")
    _threads_argument(quality, "default: PyTorch's")
    quality.add_argument("--quiet", action="store_true", help="no per-epoch lines")
    quality.set_defaults(handler=_quality_classifier)

    lr_find = commands.add_parser(
        "lr-find", help="learning-rate range test: suggest a rate for a config")
    _config_arguments(lr_find)
    lr_find.add_argument("--low", type=float, default=1e-6, help="first rate (default 1e-6)")
    lr_find.add_argument("--high", type=float, default=1.0, help="last rate (default 1)")
    lr_find.add_argument("--iterations", type=int,
                         help="updates (default 100; 300 for RBMs, whose proxy moves slowly)")
    lr_find.add_argument("--rule", default="steepest", choices=["steepest", "valley", "minimum"],
                         help="suggestion rule (default steepest)")
    lr_find.add_argument("--probe", type=int, default=512,
                         help="held-out examples whose loss is recorded (0: the training batch)")
    lr_find.add_argument("--verify", action="store_true",
                         help="train every rule's rate briefly (successive halving) and keep the best "
                              "on the validation metric")
    lr_find.add_argument("--verify-epochs", type=int, metavar="E",
                         help="epochs of the verification's final round (default: train.epochs)")
    lr_find.add_argument("--apply", action="store_true",
                         help="write the config with the suggested rate to OUT/config-lr.yaml")
    lr_find.add_argument("--out", help="output folder (default runs/<name>-lr-find)")
    lr_find.add_argument("--quiet", action="store_true", help="no progress bar")
    lr_find.set_defaults(handler=_lr_find)

    schedule = commands.add_parser("schedule", help="plot a config's learning-rate schedule")
    _config_arguments(schedule)
    schedule.add_argument("--steps-per-epoch", type=int,
                          help="updates per epoch (default: from the data set and batch size)")
    schedule.add_argument("--out", help="PNG file (default runs/<name>-schedule.png)")
    schedule.set_defaults(handler=_schedule)

    tune = commands.add_parser("tune", help="hyperparameter search over tune.space (Optuna)")
    _config_arguments(tune)
    tune.add_argument("--out", help="study directory (default runs/<name>-tune); again to resume")
    tune.add_argument("--workers", type=int, default=1, help="worker processes on this machine")
    tune.add_argument("--storage", help="Optuna storage URL, e.g. postgresql://user@host/db "
                      "(default: tune.storage, else OUT/study.db)")
    tune.add_argument("--n-trials", type=int, help="total trials of the study (sets tune.n_trials)")
    tune.add_argument("--report", metavar="DIR", help="only rebuild the reports of the study in DIR")
    tune.set_defaults(handler=_tune)

    config = commands.add_parser("config", help="print the resolved config as YAML")
    _config_arguments(config)
    config.set_defaults(handler=_show_config)

    presets = commands.add_parser("presets", help="list the built-in presets")
    presets.set_defaults(handler=_presets)
    return parser


def _train(args: argparse.Namespace) -> int:
    from .config import load_config, parse_overrides
    from .train.run_dir import RunDir
    from .train.trainer import TrainingInterrupted, train

    if args.resume and args.overwrite:
        raise BoltzkitError("--resume continues a run and --overwrite starts it over: choose one")
    if args.resume:
        if not args.out:
            raise BoltzkitError("--resume needs --out RUN_DIR, the run to continue")
        if args.config:
            raise BoltzkitError(
                "--resume continues a run with its saved config; drop CONFIG "
                "(use --set to change keys such as train.epochs)"
            )
        saved = RunDir(args.out).read_config()
        config = saved.with_overrides(parse_overrides(_shortcuts(args)))
        out = Path(args.out)
    else:
        config = load_config(args.config, _shortcuts(args))
        out = Path(args.out or f"runs/{config.name}-{time.strftime('%Y%m%d-%H%M%S')}")
    if not args.resume:  # a resumed run restores the global generator from its checkpoint
        _seed_globally(config.seed)
    started = time.perf_counter()
    try:
        result = train(config, out, resume=args.resume, overwrite=args.overwrite, progress=not args.quiet)
    except TrainingInterrupted as stop:
        print(f"{stop}\nresume with: boltzkit train --out {out} --resume", file=sys.stderr)
        return EXIT_INTERRUPTED
    if args.resume and result.epochs_trained == 0:
        print(result.summary)
        return 0
    print(f"done in {time.perf_counter() - started:.1f} s: {result.summary}")
    files = sorted(p.name + ("/" if p.is_dir() else "") for p in out.iterdir())
    print(f"wrote {out}/: {', '.join(files)}")
    return 0


def _sample_label(args: argparse.Namespace, family, model) -> int:
    """``--label``, checked against what the run can do: a family that samples by label, a
    model trained with label units, a class it knows."""
    if not family.capabilities.sample_labels:
        raise BoltzkitError(f"--label: {args.run} holds a model.type {family.name!r}, which cannot be "
                            "sampled by label (a DBN or GAN trained with model.labels=true can)")
    classes = getattr(model, "classes", 0)
    if not classes:
        raise BoltzkitError(f"--label: {args.run} was trained without labels (model.labels: false); "
                            "train with model.labels=true to sample a chosen class")
    if not 0 <= args.label < classes:
        raise BoltzkitError(f"--label: {args.label} is not a class of {args.run}; accepted: 0 to "
                            f"{classes - 1}")
    return args.label


def _sample(args: argparse.Namespace) -> int:
    import numpy as np

    from . import plots
    from .families import family_names, get_family
    from .seeding import make_generator
    from .train.device import resolve_device
    from .train.run_dir import RunDir, load_run_model
    from .train.threads import choose_threads, using_threads

    _check_threads(args)
    _in_range("--n", args.n, 1, 1_000_000)
    _in_range("--steps", args.steps, 1, 10_000_000)
    _in_range("--pt", args.pt, 0, 1_000)
    if args.pt == 1 or args.pt < 0 or not 0 < args.min_beta < 1:
        raise BoltzkitError(f"--pt needs at least 2 temperatures and 0 < --min-beta < 1, "
                            f"got --pt {args.pt} --min-beta {args.min_beta}")
    device = resolve_device(args.device or "auto")
    trained = load_run_model(args.run, device)
    family = get_family(trained.config.model.type)
    if not family.capabilities.sample:
        able = [name for name in family_names() if get_family(name).capabilities.sample]
        raise BoltzkitError(f"boltzkit sample: {args.run} holds a model.type {family.name!r}, which "
                            f"cannot be sampled (families that can: {', '.join(able)})")
    options = {} if args.label is None else {"label": _sample_label(args, family, trained.model)}
    generator = make_generator(args.seed, "sample", device)
    threads = choose_threads(trained.config.threads if args.threads is None else args.threads,
                             trained.model, args.n * max(1, args.pt), device)
    try:
        with using_threads(threads.threads):
            states, means = family.sample(trained.model, args.n, args.steps, generator, args.pt,
                                          args.min_beta, **options)
    except ValueError as err:
        raise BoltzkitError(f"boltzkit sample: {err}") from None
    stem = (Path(args.out) if args.out
            else RunDir(args.run).samples_stem(args.n, args.steps, args.seed, args.pt, args.label))
    stem.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(stem.with_suffix(".npz"), samples=states.cpu().numpy(),
                        means=means.cpu().numpy())
    if family.capabilities.one_pass:
        title = f"{args.n} samples" + ("" if args.label is None else f" of class {args.label}")
        arrays = "samples = draws, means = their expected values (a GAN's two are the same images)"
    else:
        title = (f"{args.n} samples after {args.steps} "
                 + (f"tempered sweeps ({args.pt} temperatures)" if args.pt else "Gibbs sweeps")
                 + ("" if args.label is None else f", label {args.label} clamped"))
        arrays = "samples = binary states, means = E[v|h]"
    plots.save_samples(trained.model, states, means, stem.with_suffix(".png"), title,
                       trained.image_shape, trained.feature_mean, trained.feature_std)
    print(f"wrote {stem.with_suffix('.png')} and {stem.with_suffix('.npz')} (arrays: {arrays})")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from .train.evaluate_run import evaluate_run

    for name, low, high in (("ais_runs", 1, 1_000_000), ("ais_betas", 2, 10_000_000),
                            ("reverse_runs", 1, 10_000), ("reverse_examples", 0, 1_000_000),
                            ("k", 1, 1_000_000), ("samples", 1, 1_000_000)):
        if getattr(args, name) is not None:
            _in_range(f"--{name.replace('_', '-')}", getattr(args, name), low, high)
    if args.sample_quality:
        _in_range("--sample-quality", args.sample_quality, 2, 1_000_000)
        _in_range("--sample-steps", args.sample_steps, 1, 10_000_000)
    _check_threads(args)
    results = evaluate_run(
        args.run, args.split, ais_runs=args.ais_runs, ais_betas=args.ais_betas,
        reverse_examples=args.reverse_examples, reverse_runs=args.reverse_runs, k=args.k,
        samples=args.samples, seed=args.seed, data_dir=args.data_dir, data_file=args.data,
        device=args.device, threads=args.threads, product_kernel=args.product_kernel,
        progress=not args.quiet, sample_quality=args.sample_quality, sample_steps=args.sample_steps)
    print(results["report"])
    if "ais_reliable" in results and not results["ais_reliable"]:  # a bool, or 0.0 / 1.0
        print(f"boltzkit: warning: the AIS likelihood is not to be trusted: {results['ais_verdict']}",
              file=sys.stderr)
    if results.get("reverse_ais_reliable") is False:
        print(f"boltzkit: warning: reverse AIS: {results['reverse_ais_verdict']}", file=sys.stderr)
    if results.get("sample_quality", {}).get("caveat"):
        print(f"boltzkit: warning: sample quality: {results['sample_quality']['caveat']}", file=sys.stderr)
    print(f"wrote {Path(args.run) / 'evaluation.json'}")
    return 0


def _quality_classifier(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from .config import DataConfig
    from .train.device import resolve_device
    from .train.quality_classifier import load_or_train_quality_classifier
    from .train.threads import using_threads

    _check_threads(args)
    try:
        data = (DataConfig(name="npz", path=args.data, dir=args.data_dir) if args.data.endswith(".npz")
                else DataConfig(name=args.data, dir=args.data_dir))
    except ValidationError:
        raise BoltzkitError(f"--data {args.data}: accepted digits, mnist, fashion-mnist or an .npz "
                            "file") from None
    with using_threads(args.threads):
        classifier, _ = load_or_train_quality_classifier(
            data, resolve_device(args.device or "auto"), path=args.out, retrain=args.retrain,
            progress=not args.quiet)
    info = classifier.info
    how = (f"trained in {info['train_seconds']:.1f} s" if classifier.trained_now
           else "already there, same data (--retrain to train again)")
    print(f"quality classifier of {info['source']}: test accuracy {100 * info['test_accuracy']:.2f} % on "
          f"{info['test_examples']} images, {classifier.spec.n_features} features; {how}")
    print(f"{'wrote' if classifier.trained_now else 'at'} {classifier.path}")
    return 0


def _lr_find(args: argparse.Namespace) -> int:
    from .config import load_config
    from .train.lr_find_run import find_lr

    if not (math.isfinite(args.low) and math.isfinite(args.high) and 0 < args.low < args.high):
        raise BoltzkitError(f"--low and --high must satisfy 0 < low < high, got {args.low} and {args.high}")
    if args.iterations is not None:
        _in_range("--iterations", args.iterations, 5, 1_000_000)
    if args.probe < 0:
        raise BoltzkitError(f"--probe must be >= 0, got {args.probe}")
    config = load_config(args.config, _shortcuts(args))
    _seed_globally(config.seed)
    out = Path(args.out or f"runs/{config.name}-lr-find")
    if args.verify_epochs is not None:
        _in_range("--verify-epochs", args.verify_epochs, 1, 100_000)
    result, applied = find_lr(config, out, low=args.low, high=args.high, iterations=args.iterations,
                              rule=args.rule, probe=args.probe, apply=args.apply, verify=args.verify,
                              verify_epochs=args.verify_epochs, progress=not args.quiet)
    print(f"range test over {len(result.lrs)} updates ({result.loss_name})"
          + (", stopped early: the loss diverged" if result.stopped_early else ""))
    for name, lr in result.suggestions.items():
        print(f"  {name:9s} {lr:.3g}" + ("   <- suggested" if name == result.rule else ""))
    print(f"confidence: {result.confidence} (rules spread over {result.spread_decades:.2f} decades, "
          f"noise {result.noise:.2f})" + (f"; {result.caveat}" if result.caveat else ""))
    if result.verification:
        from .train.lr_verify import Verification

        check = Verification(**result.verification)
        print(f"verified on {check.metric} ({check.epochs_spent:g} epochs of training):\n{check.table()}")
        print(f"wrote {out / 'lr_verify.png'}")
    print(f"wrote {out / 'lr_find.png'} and {out / 'lr_find.json'}")
    if applied:
        print(f"wrote {applied}; train with: boltzkit train {applied}")
    else:
        print(f"use it with: --set train.optimizer.lr={result.suggestion:.3g}")
    return 0


def _schedule(args: argparse.Namespace) -> int:
    import math

    from .config import load_config
    from .optim.schedules import cycled_momenta, learning_rates
    from .plots import save_schedule

    config = load_config(args.config, _shortcuts(args))
    train = config.train
    steps = args.steps_per_epoch
    if steps is None:
        from .data import load_dataset

        data = load_dataset(config.data, config.seed, unit_interval=False)
        steps = math.ceil(len(data.train) / train.batch_size)
    if steps < 1:
        raise BoltzkitError(f"--steps-per-epoch must be >= 1, got {steps}")
    name, params = train.schedule.name, train.schedule.params()
    try:
        rates = learning_rates(name, params, train.optimizer.lr, train.epochs, steps, train.schedule.unit)
    except ValueError as err:
        raise BoltzkitError(f"train.schedule: {err}") from None
    out = Path(args.out or f"runs/{config.name}-schedule.png")
    out.parent.mkdir(parents=True, exist_ok=True)
    detail = ", ".join(f"{k}={v}" for k, v in params.items())
    momenta = cycled_momenta(name, params, train.optimizer.lr, rates)
    save_schedule(rates, steps, out, f"{name} ({detail or 'default parameters'}), stepped per "
                  f"{train.schedule.unit}; {train.epochs} epochs x {steps} updates", momenta)
    marks = sorted({0, len(rates) // 4, len(rates) // 2, 3 * len(rates) // 4, len(rates) - 1})
    print("  ".join(f"step {t}: {rates[t]:.3g}" for t in marks))
    print(f"wrote {out}")
    return 0


def _tune(args: argparse.Namespace) -> int:
    from .config import load_config

    try:
        from .tune import study as tuning
    except ImportError as err:
        raise BoltzkitError(f"boltzkit tune needs Optuna: pip install 'boltzkit[tune]' ({err})") from None
    if args.report:
        tuning.report(args.report, args.storage)
        return 0
    _in_range("--workers", args.workers, 1, 1_024)
    overrides = _shortcuts(args) + ([f"tune.n_trials={args.n_trials}"] if args.n_trials is not None else [])
    config = load_config(args.config, overrides)
    _seed_globally(config.seed)
    out = Path(args.out or f"runs/{config.name}-tune")
    from .train.trainer import TrainingInterrupted

    try:
        tuning.run(config, out, workers=args.workers, storage=args.storage)
    except TrainingInterrupted:
        print(f"tuning interrupted; the study in {out} keeps its finished trials. Resume with the "
              "same command", file=sys.stderr)
        return EXIT_INTERRUPTED
    return 0


def _show_config(args: argparse.Namespace) -> int:
    from .config import load_config

    print(load_config(args.config, _shortcuts(args)).to_yaml(), end="")
    return 0


def _presets(args: argparse.Namespace) -> int:
    from .config import preset_names
    from .families import family_names, get_family

    owner = {preset: name for name in family_names() for preset in get_family(name).presets}
    width = max(len(name) for name in preset_names())
    for name in preset_names():
        family = owner.get(name)
        print(f"{name:<{width}}  {family + ': ' + get_family(family).description if family else ''}")
    return 0


def _in_range(flag: str, value: int, low: int, high: int) -> None:
    if not low <= value <= high:
        raise BoltzkitError(f"{flag} must be from {low:,} to {high:,}, got {value:,}")


def _check_threads(args: argparse.Namespace) -> None:
    """``--threads`` of evaluate and sample, with the bounds the config's ``threads`` has."""
    from .config import MAX_THREADS

    if args.threads is not None:
        _in_range("--threads", args.threads, 1, MAX_THREADS)


def _seed_globally(seed: int) -> None:
    """The library passes generators explicitly; layers that cannot take one (dropout)
    draw from PyTorch's global generator, which the command line seeds from the config."""
    import torch

    torch.manual_seed(seed)


def _show_warning(message, category, filename, lineno, file=None, line=None):
    """Config warnings as ``boltzkit: warning: ...`` lines, like the errors."""
    from .errors import ConfigWarning

    if issubclass(category, ConfigWarning):
        print(f"boltzkit: warning: {message}", file=sys.stderr)
    else:
        print(warnings.formatwarning(message, category, filename, lineno, line), file=sys.stderr, end="")


def _one_line(text: object) -> str:
    return " ".join(str(text).split())[:500]


def _out_of_memory(err: BaseException) -> str | None:
    """The one-line reason when ``err`` is an allocation failure, else None."""
    text = str(err)
    if isinstance(err, MemoryError) or "alloc" in text.lower() and "memory" in text.lower():
        from .train.memory import format_bytes

        asked = re.search(r"allocate (\d+) bytes", text)
        size = f" (asked for {format_bytes(int(asked.group(1)))})" if asked else ""
        return (f"out of memory{size}: lower the sizes in the config (model widths, "
                "train.batch_size, train.n_chains, eval runs) or --n")
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command. Every failure ends as one line on stderr: 2 for bad input (config,
    data, checkpoints, output paths, memory), 1 for a diverged run or an unexpected error
    (``--debug`` or ``BOLTZKIT_DEBUG=1`` re-raises those with their traceback), 130 for
    Ctrl-C."""
    args = build_parser().parse_args(argv)
    debug = args.debug or os.environ.get("BOLTZKIT_DEBUG", "") not in ("", "0")
    with warnings.catch_warnings():  # restores the caller's warning display afterwards
        warnings.showwarning = _show_warning
        return _run(args, debug)


def _run(args: argparse.Namespace, debug: bool) -> int:
    try:
        return args.handler(args)
    except DivergenceError as err:
        print(f"boltzkit: training diverged: {err}", file=sys.stderr)
        return EXIT_DIVERGED
    except RunFailed as err:
        print(f"boltzkit: error: {err}", file=sys.stderr)
        return EXIT_DIVERGED
    except BoltzkitError as err:
        print(f"boltzkit: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("boltzkit: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (MemoryError, RuntimeError) as err:
        reason = _out_of_memory(err)
        if reason is None:
            return _unexpected(err, debug)
        print(f"boltzkit: error: {reason}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as err:  # an output path that is a file, read-only, on a full disk, ...
        if err.filename is None:
            return _unexpected(err, debug)
        print(f"boltzkit: error: {err.filename}: {err.strerror or _one_line(err)}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as err:  # noqa: BLE001 (the last-resort boundary)
        return _unexpected(err, debug)


def _unexpected(err: Exception, debug: bool) -> int:
    if debug:
        raise err
    print(f"boltzkit: internal error: {type(err).__name__}: {_one_line(err)} (a bug or an unchecked "
          "input; rerun with --debug for the traceback and report it)", file=sys.stderr)
    return EXIT_DIVERGED


if __name__ == "__main__":
    sys.exit(main())
