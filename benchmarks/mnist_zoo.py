"""Every generative family on the same MNIST at an equal wall-clock budget, in one table.

For each family of :data:`ZOO` that this checkout registers (rbm, dbn, dbm, autoencoder,
vae, gan; the others are listed as absent), train from its MNIST preset (``<family>-mnist``,
else its first preset, else its section's defaults, with the data switched to MNIST) plus
the entry's overrides, for ``--minutes`` of wall clock, then measure on the 10,000 test
images:

- **test log-likelihood**, or the bound the family reports instead, from the family's own
  evaluation (``task.evaluate``; an RBM's is AIS with a reliability verdict);
- **FID** of ``--samples`` samples on the quality classifier's features (a small CNN
  trained by ``boltzkit quality-classifier``, *not* Inception v3: compare only within this
  table), **class coverage** and the **Inception-style score** (``boltzkit.estimate.sample_quality``);
- **linear probe**: test accuracy of a logistic regression on the learned features of
  ``--probe-examples`` training images (hidden means up the stack for RBM/DBN/DBM, the
  encoder's code for autoencoders and VAEs, the discriminator's penultimate layer for GANs);
- **seconds** of training.

Equal budgets: a family first trains ``--calibrate`` seconds (shared among its stages, for
a stacked one) to measure its seconds per epoch, then gets the ``train.epochs`` that fill the
budget, so that every learning-rate schedule spans the whole run (see :func:`calibrated`).
Training stops when the budget is spent (after a complete update) in any case, and the
table says how far it got.

Writes the markdown table (printed, and into docs/RESULTS.md between the ``mnist_zoo``
markers), ``benchmarks/results/mnist_zoo.json`` and the samples side by side,
``benchmarks/results/zoo_samples.png``.

    python benchmarks/mnist_zoo.py --mnist ../shared/data/mnist.npz --minutes 20
    python benchmarks/mnist_zoo.py --smoke        # seconds: the RBM on the 8x8 digits, docs untouched
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from _machine import cpu_name
from torch import Tensor, nn

from boltzkit import plots
from boltzkit.config import DataConfig, RunConfig, load_config, preset_names
from boltzkit.estimate.sample_quality import QualityJudge
from boltzkit.families import Family, family_names, get_family
from boltzkit.families.contract import reported_likelihood
from boltzkit.seeding import make_generator
from boltzkit.train.device import resolve_device
from boltzkit.train.fit import Fit, FitInterrupted
from boltzkit.train.quality_classifier import load_or_train_quality_classifier
from boltzkit.train.quality_run import sample_images

RESULTS = Path(__file__).parent / "results"
RESULTS_MD = Path(__file__).parents[1] / "docs" / "RESULTS.md"
BEGIN, END = "<!-- mnist_zoo table: begin -->", "<!-- mnist_zoo table: end -->"
FAR_AWAY = 100_000
"""``train.epochs`` of a run that only the clock stops."""

Features = Callable[[nn.Module, Tensor], Tensor]


def stack_features(model: nn.Module, x: Tensor) -> Tensor:
    """Hidden means up a stack of Bernoulli layers: ``h_l = sigmoid(h_{l-1} A_l + c_l)`` from
    ``hidden_affines()`` (the ``seeds_mlp`` contract of RBMs, DBNs and DBMs)."""
    h = x
    for weight, bias in model.hidden_affines():
        h = torch.sigmoid(h @ weight + bias)
    return h


def encoder_code(model: nn.Module, x: Tensor) -> Tensor:
    """An autoencoder's code, a VAE's posterior mean: ``model.encode(x)`` (its first element
    when it returns ``(mean, log variance)``), flattened to ``(B, features)`` (a convolutional
    autoencoder's code is ``(B, C, h, w)`` maps)."""
    code = model.encode(x)
    return (code[0] if isinstance(code, tuple | list) else code).flatten(1)


def discriminator_features(model: nn.Module, x: Tensor) -> Tensor:
    """A GAN discriminator's penultimate activations: ``model.discriminator.features(x)``."""
    return model.discriminator.features(x)


@dataclass(frozen=True)
class ZooEntry:
    """One family of the comparison and what the script needs to know about it."""

    name: str
    features: Features | None = None
    """Learned features for the linear probe (``None``: ``stack_features`` where the family
    seeds MLPs, else no probe)."""
    overrides: tuple[str, ...] = ()
    """Config overrides on top of the preset (e.g. per-stage epochs of a stacked family)."""


ZOO = (
    ZooEntry("rbm"),
    ZooEntry("dbn"),
    ZooEntry("dbm"),
    ZooEntry("autoencoder", encoder_code),
    ZooEntry("vae", encoder_code),
    ZooEntry("gan", discriminator_features),
)


# ----------------------------------------------------------------------------- configs


def zoo_config(entry: ZooEntry, dataset: str, data: list[str], extra: list[str]) -> RunConfig:
    """The family's first preset for ``dataset`` (its ``data.name``; else its first preset,
    else its defaults) with ``data`` and the overrides. The data set, not the preset's name,
    decides: the autoencoder's MNIST preset is ``sda-mnist``."""
    presets = [p for p in get_family(entry.name).presets if p in preset_names()]
    preset = next((p for p in presets if load_config(p).data.name == dataset), None)
    preset = preset or (presets[0] if presets else None)
    base = [] if preset else [f"model={{type: {entry.name}}}"]
    config = load_config(preset, [*base, *data, "eval.every=0", "train.checkpoint_every=0",
                                  *entry.overrides, *extra])
    return config.with_overrides({"name": f"zoo-{entry.name}"})


def calibrated(config: RunConfig, seconds: float, calibrate: float) -> tuple[RunConfig, dict[str, Any]]:
    """``config`` with the ``train.epochs`` that fill ``seconds``, from update rates measured
    over ``calibrate`` seconds shared among the stages.

    Each stage trains for its share of ``calibrate`` (a stacked family's upper stages on the
    untrained layers below: the cost is the same); its seconds per epoch are timed from its
    first update to its last, so that one-off work at a stage's start (e.g. centering
    offsets) does not count. ``train.epochs`` then becomes ``floor(0.95 * seconds / sum of
    the stages' seconds per epoch)``: every stage gets that many epochs, so that every
    learning-rate schedule spans the whole run. A family whose stages are not all set by
    ``train.epochs`` (e.g. DBM pretraining with its own ``model.pretrain_epochs``) keeps
    its preset's epochs.
    """
    session = Fit(config.with_overrides({"train.epochs": FAR_AWAY}))
    if any(stage.epochs != FAR_AWAY for stage in session.stages):
        return config, {"calibration": f"{len(session.stages)} stages, not all set by train.epochs: "
                                      "preset epochs kept"}
    share = calibrate / len(session.stages)
    per_epoch = [stage_seconds_per_epoch(session, index, share) for index in range(len(session.stages))]
    # 95 %: the per-epoch metrics are not in the measured rates
    epochs = max(1, math.floor(0.95 * seconds / sum(per_epoch)))
    return config.with_overrides({"train.epochs": epochs}), {
        "seconds_per_epoch": dict(zip([s.name for s in session.stages], per_epoch, strict=True)),
        "epochs": epochs}


def stage_seconds_per_epoch(session: Fit, index: int, seconds: float) -> float:
    """Seconds per epoch of stage ``index``, timed over ``seconds`` of its updates from the
    first update's end to the last's."""
    session.skip_to_stage(index)
    marks: list[float] = []

    def stop() -> bool:
        marks.append(time.perf_counter())
        return marks[-1] - marks[0] >= seconds

    try:
        session.run(should_stop=stop)
    except FitInterrupted:
        pass
    return session.batches.per_epoch * (marks[-1] - marks[0]) / (len(marks) - 1)


def train_within(config: RunConfig, seconds: float) -> tuple[Fit, float]:
    """Train until the run ends or ``seconds`` of wall clock are spent."""
    torch.manual_seed(config.seed)  # as the command line does: dropout draws from the global generator
    session = Fit(config)
    started = time.perf_counter()
    try:
        session.run(should_stop=lambda: time.perf_counter() - started >= seconds)
    except FitInterrupted:
        pass
    return session, time.perf_counter() - started


# ----------------------------------------------------------------------------- measures


def likelihood(family: Family, session: Fit) -> dict[str, Any]:
    """The test log-likelihood (or bound) from the family's evaluation, with its kind."""
    if not family.capabilities.evaluate:
        return {}
    started = time.perf_counter()
    results, _ = session.task.evaluate(session.model, "test", seed=0)
    record = {"seconds": time.perf_counter() - started, "keys": sorted(results)}
    reported = reported_likelihood(results)  # the keys of families.contract.LIKELIHOOD_KEYS
    if reported is not None:
        record.update(reported, verdict=results.get("ais_verdict"))
    return record


@torch.no_grad()
def probe_accuracy(entry: ZooEntry, family: Family, session: Fit, examples: int) -> float | None:
    """Test accuracy of a logistic regression on the model's features of ``examples``
    training images (the run's own inputs: binarized where it trained on binary data)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    features = entry.features or (stack_features if family.capabilities.seeds_mlp else None)
    data = session.task.data
    if features is None or data.train_labels is None or data.test_labels is None:
        return None
    model, device = session.model.eval(), session.device
    binarize = make_generator(0, "zoo.probe", device)

    def embed(x: Tensor) -> np.ndarray:
        chunks = [features(model, data.binarize_batch(c.to(device), binarize)) for c in x.split(1000)]
        return torch.cat(chunks).double().cpu().numpy()

    try:
        train_x, test_x = embed(data.train[:examples]), embed(data.test)
    except AttributeError as err:  # the family's model lacks the hook's method: say so, go on
        print(f"  linear probe skipped: {err}")
        return None
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    probe.fit(train_x, data.train_labels[:examples].numpy())
    return float(probe.score(test_x, data.test_labels.numpy()))


# ----------------------------------------------------------------------------- outputs


def balanced_classes(quality: dict[str, Any]) -> str:
    """How many classes get a share within +-``tolerance`` of uniform (issue 12's GAN
    target: all 10 within +-30 %); coverage checks only the lower side."""
    histogram, tolerance = quality["class_histogram"], quality["tolerance"]
    uniform = 1 / len(histogram)
    within = sum(abs(share - uniform) <= tolerance * uniform for share in histogram)
    return f"{within} / {len(histogram)}"


def table(rows: list[dict[str, Any]]) -> str:
    """The markdown table of the records."""
    def number(value: float | None, digits: int) -> str:
        return "n/a" if value is None else f"{value:.{digits}f}"

    def fid(quality: dict) -> str:
        # older records have no standard error
        spread = quality.get("fid_stderr")
        return number(quality.get("fid"), 1) + ("" if spread is None else f" +- {spread:.1f}")

    lines = ["| family | test log-likelihood (nats) | FID (classifier features) | class coverage | "
             "classes within +-30 % of uniform | Inception-style score | linear probe accuracy | "
             "training seconds | trained |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for row in rows:
        if row.get("absent"):
            lines.append(f"| {row['family']} | not in this checkout | | | | | | | |")
            continue
        if row.get("reference"):
            q = row["quality"]
            lines.append(f"| {row['family']} | | {fid(q)} | {q['class_coverage']:.2f} | "
                         f"{balanced_classes(q)} | {q['inception_score']:.2f} | | | |")
            continue
        ll = row["likelihood"]
        ll_text = "n/a" if "value" not in ll else f"{ll['value']:.2f} ({ll['kind']}" + (
            ", unreliable" if ll.get("reliable") is False else "") + ")"
        quality = row.get("quality") or {}
        lines.append(
            f"| {row['family']} | {ll_text} | {fid(quality) if quality else 'n/a'} | "
            f"{number(quality.get('class_coverage'), 2)} | "
            f"{balanced_classes(quality) if quality else 'n/a'} | "
            f"{number(quality.get('inception_score'), 2)} | "
            f"{number(row['probe_accuracy'], 4)} | {row['train_seconds']:.0f} | {row['trained']} |")
    return "\n".join(lines)


def samples_figure(panels: list[tuple[str, Tensor]], shape: tuple[int, int], path: Path) -> Path:
    """The first 64 images of each panel as 8 x 8 grids, side by side."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(2.6 * len(panels), 3.0), squeeze=False)
    for ax, (title, images) in zip(axes[0], panels, strict=True):
        ax.imshow(plots.tile_images(images[:64].numpy(), shape, columns=8), cmap="gray", vmin=0, vmax=1,
                  interpolation="nearest")
        ax.set_title(title, fontsize=9)
        ax.set_axis_off()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def write_docs(markdown: str, command: str) -> None:
    """Replace the table between the markers of docs/RESULTS.md."""
    text = RESULTS_MD.read_text()
    if BEGIN not in text or END not in text:
        raise SystemExit(f"{RESULTS_MD}: no {BEGIN} ... {END} markers; add them where the table goes")
    block = f"{BEGIN}\n`{command}`\n\n{markdown}\n{END}"
    pattern = re.escape(BEGIN) + ".*?" + re.escape(END)
    RESULTS_MD.write_text(re.sub(pattern, lambda _: block, text, flags=re.S))


# ----------------------------------------------------------------------------- main


def run_family(entry: ZooEntry, args: argparse.Namespace, data: list[str], judge: QualityJudge,
               dataset: str) -> tuple[dict[str, Any], Tensor | None]:
    """Train one family within the budget and measure it; returns its row and its samples."""
    family = get_family(entry.name)
    budget = 60 * args.minutes
    config = zoo_config(entry, dataset, data, args.extra)
    config, calibration = calibrated(config, budget, args.calibrate)
    print(f"{entry.name}: {calibration}; training for {budget:.0f} s", flush=True)
    session, seconds = train_within(config, budget)
    stages = f", stage {session.state.stage + 1} of {len(session.stages)}" if len(session.stages) > 1 else ""
    row: dict[str, Any] = {
        "family": entry.name, "config": json.loads(config.model_dump_json()), "calibration": calibration,
        # the count training used ("auto" picks per model; None left PyTorch's setting)
        "train_seconds": seconds, "threads": session.threads.threads or torch.get_num_threads(),
        "trained": f"{session.epochs_done} epochs{stages}",
        "last_epoch": session.history[-1] if session.history else None,
        "likelihood": likelihood(family, session),
    }
    images = None
    if family.capabilities.sample:
        generator = make_generator(config.seed, "zoo.samples", session.device)
        images = sample_images(family, session.model, args.samples, args.sample_steps, generator,
                               session.task.data.feature_mean, session.task.data.feature_std)
        row["quality"] = judge(images).to_dict()
    row["probe_accuracy"] = probe_accuracy(entry, family, session, args.probe_examples)
    return row, images


def reference_rows(judge: QualityJudge, train: Tensor, n: int, dataset: str) -> list[dict[str, Any]]:
    """What real images and noise score against the same reference: the table's scale."""
    noise = torch.rand(n, train.shape[1], generator=make_generator(0, "zoo.noise"))
    return [{"family": f"*{dataset} training images*", "reference": True,
             "quality": judge(train[:n]).to_dict()},
            {"family": "*uniform noise*", "reference": True, "quality": judge(noise).to_dict()}]


OPTIONS_RECORDED = ("calibrate", "samples", "sample_steps", "probe_examples")
"""Options written into the table's command when they differ from their defaults."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mnist", default="../shared/data/mnist.npz", help="path to mnist.npz")
    parser.add_argument("--minutes", type=float, default=20.0, help="training budget per family")
    parser.add_argument("--calibrate", type=float, default=30.0, help="seconds that measure the update rate")
    parser.add_argument("--samples", type=int, default=10_000, help="samples per family for FID")
    parser.add_argument("--sample-steps", type=int, default=1000,
                        help="Gibbs sweeps for Markov-chain samplers")
    parser.add_argument("--probe-examples", type=int, default=10_000)
    parser.add_argument("--families", nargs="+", choices=[e.name for e in ZOO],
                        help="default: all, or the RBM with --smoke (docs/RESULTS.md: written for all only)")
    parser.add_argument("--threads", type=int, help="CPU threads (default: each config's threads: auto)")
    parser.add_argument("--name", default="mnist_zoo",
                        help="results name: benchmarks/results/NAME.json (and NAME_samples.png unless the "
                             "default's zoo_samples.png); a subset run keeps the full zoo's files")
    parser.add_argument("--set", dest="extra", action="append", default=[], help="override for every family")
    parser.add_argument("--smoke", action="store_true",
                        help="seconds: the RBM on the 8x8 digits, tiny settings, docs/RESULTS.md untouched")
    args = parser.parse_args()
    if args.smoke:
        args.minutes, args.calibrate, args.samples, args.sample_steps = 0.05, 1.0, 200, 50
        args.probe_examples, args.families = 1000, args.families or ["rbm"]
        args.extra = ["eval.ais={runs: 8, betas: 200}", "train.metrics_examples=100", *args.extra]
        dataset, data_config = "digits", DataConfig(name="digits")
        data = ["data.name=digits", "data.binarize=dynamic"]
    else:
        mnist = Path(args.mnist).resolve()
        if not mnist.is_file() or mnist.name != "mnist.npz":
            raise SystemExit(f"MNIST not found at {mnist}; pass --mnist PATH/TO/mnist.npz")
        dataset, data_config = "mnist", DataConfig(name="mnist", dir=str(mnist.parent))
        data = ["data.name=mnist", f"data.dir={mnist.parent}"]
    args.families = args.families or [e.name for e in ZOO]
    if args.threads:
        torch.set_num_threads(args.threads)
        args.extra = [f"threads={args.threads}", *args.extra]
    suffix = "-smoke" if args.smoke else ""
    RESULTS.mkdir(exist_ok=True)

    device = resolve_device("auto")
    classifier, labelled = load_or_train_quality_classifier(data_config, device, progress=True)
    print(f"quality classifier: {classifier.path}, test accuracy {classifier.info['test_accuracy']:.4f}")
    judge = QualityJudge(classifier.model, labelled.test)
    command = "python benchmarks/mnist_zoo.py " + ("--smoke" if args.smoke else " ".join(
        [f"--mnist {args.mnist} --minutes {args.minutes:g}"]
        + [f"--{key.replace('_', '-')} {getattr(args, key):g}" for key in OPTIONS_RECORDED
           if getattr(args, key) != parser.get_default(key)]
        + ([f"--threads {args.threads}"] if args.threads else [])
        + ([f"--families {' '.join(args.families)}"] if set(args.families) != {e.name for e in ZOO} else [])
        + ([f"--name {args.name}"] if args.name != parser.get_default("name") else [])
        + [f"--set {e}" for e in args.extra if not e.startswith("threads=")]))
    path = RESULTS / f"{args.name}{suffix}.json"
    figure_name = "zoo_samples" if args.name == parser.get_default("name") else f"{args.name}_samples"

    def save(rows: list[dict[str, Any]], complete: bool) -> None:
        """The JSON record; written after every family, so that a run cut short keeps its rows."""
        record = {"command": command, "complete": complete,
                  "machine": {"cpu": cpu_name(), "platform": platform.platform(),
                              "torch": torch.__version__},  # threads: each row's own
                  "settings": vars(args), "classifier": {"path": str(classifier.path), **classifier.info},
                  "rows": rows,
                  "feature_extractor": "boltzkit quality classifier (SmallCNN), not Inception v3"}
        path.write_text(json.dumps(record, indent=2, default=float))

    rows: list[dict[str, Any]] = []
    panels: list[tuple[str, Tensor]] = [(f"{dataset} test", labelled.test[:64])]
    for entry in (e for e in ZOO if e.name in args.families):
        if entry.name not in family_names():
            rows.append({"family": entry.name, "absent": True})
            continue
        row, images = run_family(entry, args, data, judge, dataset)
        rows.append(row)
        if images is not None:
            panels.append((entry.name, images[:64]))
        print(table([row]).splitlines()[-1], flush=True)
        save(rows, complete=False)
    rows += reference_rows(judge, labelled.train, min(args.samples, len(labelled.train)), dataset)
    markdown = table(rows)
    print(markdown)
    save(rows, complete=True)
    figure = samples_figure(panels, labelled.image_shape, RESULTS / f"{figure_name}{suffix}.png")
    print(f"wrote {path} and {figure}")
    if not args.smoke and set(args.families) == {e.name for e in ZOO}:
        write_docs(markdown, command)
        print(f"wrote the table into {RESULTS_MD}")


if __name__ == "__main__":
    main()
