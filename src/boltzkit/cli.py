"""The ``boltzkit`` command.

Exit status: 0 on success, 2 on a usage error (bad config, data or checkpoint, printed as
one line), 1 when training diverges, 130 when interrupted with Ctrl-C.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from . import __version__
from .errors import BoltzkitError, DivergenceError

EXIT_USAGE = 2
EXIT_DIVERGED = 1
EXIT_INTERRUPTED = 130


def _config_arguments(parser: argparse.ArgumentParser, config_help: str | None = None) -> None:
    parser.add_argument(
        "config", nargs="?", default=None,
        help=config_help or "YAML file or preset name (default: rbm-digits)",
    )
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override a config key, e.g. --set train.epochs=5 (repeatable; values are YAML)",
    )
    parser.add_argument("--data-dir", help="folder with data files (sets data.dir)")
    parser.add_argument("--device", help="auto, cpu, cuda or cuda:N (sets device)")


def _shortcuts(args: argparse.Namespace) -> list[str]:
    extra = []
    if getattr(args, "data_dir", None):
        extra.append(f"data.dir={args.data_dir}")
    if getattr(args, "device", None):
        extra.append(f"device={args.device}")
    return [*args.overrides, *extra]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="boltzkit",
        description="Train, sample and inspect Boltzmann machines and other generative models.",
    )
    parser.add_argument("--version", action="version", version=f"boltzkit {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    train = commands.add_parser("train", help="train a model and write a run directory")
    _config_arguments(train)
    train.add_argument("--out", help="run directory (default: runs/<name>-<time>)")
    train.add_argument("--resume", action="store_true",
                       help="continue the run in --out from its last checkpoint")
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    train.set_defaults(handler=_train)

    sample = commands.add_parser("sample", help="draw samples from a trained run")
    sample.add_argument("run", help="run directory written by boltzkit train")
    sample.add_argument("--n", type=int, default=100, help="number of samples (default 100)")
    sample.add_argument("--steps", type=int, default=1000,
                        help="Gibbs sweeps per chain (default 1000)")
    sample.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    sample.add_argument("--out", help="output file stem (default: RUN/samples-n<N>-k<K>-s<S>)")
    sample.add_argument("--device", help="auto, cpu, cuda or cuda:N")
    sample.set_defaults(handler=_sample)

    evaluate = commands.add_parser(
        "evaluate", help="likelihood estimates (AIS, reverse AIS, exact when small) for a run")
    evaluate.add_argument("run", help="run directory written by boltzkit train")
    evaluate.add_argument("--split", default="test", choices=["train", "validation", "test"])
    evaluate.add_argument("--ais-runs", type=int, help="AIS chains (default: eval.ais.runs)")
    evaluate.add_argument("--ais-betas", type=int,
                          help="inverse temperatures (default: eval.ais.betas, 14501)")
    evaluate.add_argument("--reverse-examples", type=int,
                          help="examples for reverse AIS, 0 to skip (default: eval.reverse_ais.examples)")
    evaluate.add_argument("--reverse-runs", type=int, help="reverse AIS chains per example")
    evaluate.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    evaluate.add_argument("--data-dir", help="folder with the run's data files")
    evaluate.add_argument("--device", help="auto, cpu, cuda or cuda:N")
    evaluate.add_argument("--quiet", action="store_true", help="no progress bar")
    evaluate.set_defaults(handler=_evaluate)

    config = commands.add_parser("config", help="print the resolved config as YAML")
    _config_arguments(config)
    config.set_defaults(handler=_show_config)

    presets = commands.add_parser("presets", help="list the built-in presets")
    presets.set_defaults(handler=_presets)
    return parser


def _train(args: argparse.Namespace) -> int:
    from .config import apply_overrides, load_config, validate
    from .train.run_dir import RunDir
    from .train.trainer import TrainingInterrupted, train

    if args.resume:
        if not args.out:
            raise BoltzkitError("--resume needs --out RUN_DIR, the run to continue")
        if args.config:
            raise BoltzkitError(
                "--resume continues a run with its saved config; drop CONFIG "
                "(use --set to change keys such as train.epochs)"
            )
        saved = RunDir(args.out).read_config()
        config = validate(apply_overrides(saved.to_dict(), _shortcuts(args)))
        out = Path(args.out)
    else:
        config = load_config(args.config, _shortcuts(args))
        out = Path(args.out or f"runs/{config.name}-{time.strftime('%Y%m%d-%H%M%S')}")
    _set_threads(config.threads)
    started = time.perf_counter()
    try:
        result = train(config, out, resume=args.resume, progress=not args.quiet)
    except TrainingInterrupted as stop:
        print(f"{stop}\nresume with: boltzkit train --out {out} --resume", file=sys.stderr)
        return EXIT_INTERRUPTED
    last = result.history[-1] if result.history else {}
    elapsed = time.perf_counter() - started
    print(f"done in {elapsed:.1f} s: " + ", ".join(
        f"{k} {last[k]:.4g}" for k in ("val_pseudo_log_likelihood", "val_recon_error") if k in last
    ))
    print(f"wrote {out}/: config.yaml, metrics.csv, model.safetensors, samples.png, "
          "filters.png, curves.png, checkpoints/")
    return 0


def _sample(args: argparse.Namespace) -> int:
    import numpy as np

    from . import plots
    from .seeding import make_generator
    from .train.build import resolve_device
    from .train.figures import draw_samples
    from .train.run_dir import RunDir, load_run_model

    if args.n < 1 or args.steps < 1:
        raise BoltzkitError(f"--n and --steps must be >= 1, got --n {args.n} --steps {args.steps}")
    device = resolve_device(args.device or "auto")
    trained = load_run_model(args.run, device)
    generator = make_generator(args.seed, "sample", device)
    states, means = draw_samples(trained.model, args.n, args.steps, generator)
    stem = Path(args.out) if args.out else RunDir(args.run).file(
        f"samples-n{args.n}-k{args.steps}-s{args.seed}")
    stem.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(stem.with_suffix(".npz"), samples=states.cpu().numpy(),
                        means=means.cpu().numpy())
    plots.save_image_grid(means.cpu().numpy(), trained.image_shape, stem.with_suffix(".png"),
                          title=f"{args.n} samples after {args.steps} Gibbs sweeps (E[v|h])")
    print(f"wrote {stem.with_suffix('.png')} and {stem.with_suffix('.npz')} "
          "(arrays: samples = binary states, means = E[v|h])")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from .train.evaluate_run import evaluate_run

    for name in ("ais_runs", "ais_betas", "reverse_runs"):
        value = getattr(args, name)
        if value is not None and value < (2 if name == "ais_betas" else 1):
            raise BoltzkitError(f"--{name.replace('_', '-')} must be >= "
                                f"{2 if name == 'ais_betas' else 1}, got {value}")
    if args.reverse_examples is not None and args.reverse_examples < 0:
        raise BoltzkitError(f"--reverse-examples must be >= 0, got {args.reverse_examples}")
    results = evaluate_run(
        args.run, args.split, ais_runs=args.ais_runs, ais_betas=args.ais_betas,
        reverse_examples=args.reverse_examples, reverse_runs=args.reverse_runs, seed=args.seed,
        data_dir=args.data_dir, device=args.device, progress=not args.quiet)
    print(results["report"])
    print(f"wrote {Path(args.run) / 'evaluation.json'}")
    return 0


def _show_config(args: argparse.Namespace) -> int:
    from .config import load_config

    print(load_config(args.config, _shortcuts(args)).to_yaml(), end="")
    return 0


def _presets(args: argparse.Namespace) -> int:
    from .config import preset_names

    print("\n".join(preset_names()))
    return 0


def _set_threads(threads: int | None) -> None:
    if threads is not None:
        import torch

        torch.set_num_threads(threads)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except DivergenceError as err:
        print(f"boltzkit: training diverged: {err}", file=sys.stderr)
        return EXIT_DIVERGED
    except BoltzkitError as err:
        print(f"boltzkit: error: {err}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
