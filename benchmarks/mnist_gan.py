"""A DCGAN on MNIST under a wall-clock budget: classifier-feature FID and the class histogram.

Trains the ``gan-mnist`` preset (spectrally normalised DCGAN, non-saturating loss, moving
average of the generator), or its class-conditional twin ``cgan-mnist`` (``--preset``), for
as many epochs as the budget allows: the seconds per update
are measured on 30 updates first, and the run gets ``floor(budget / seconds per epoch)``
epochs. Then ``--samples`` images of the generator's moving average are judged against the
10,000 test images:

- FID on the features of boltzkit's MNIST quality classifier (``boltzkit.estimate.
  sample_quality``; the classifier of the zoo benchmark, cached beside mnist.npz: not
  Inception v3, so not comparable with published Inception FIDs), its class histogram,
  class coverage and Inception-style score;
- for a class-conditional GAN, how often the classifier agrees with the class asked for
  (``--samples / 10`` images per class; the generator heeds its class input when this is
  near the classifier's own test accuracy);
- the in-training, classifier-free metrics of the last epoch (pixel MMD^2, diversity,
  the collapse and divergence verdicts).

Target (issue 12): the best classifier-feature FID of the zoo, and every class within
+-30 % of uniform (a share between 0.07 and 0.13).

    python benchmarks/mnist_gan.py --mnist ../shared/data/mnist.npz --minutes 30
    python benchmarks/mnist_gan.py --mnist ../shared/data/mnist.npz --epochs 40 --preset cgan-mnist
    python benchmarks/mnist_gan.py --mnist ../shared/data/mnist.npz --smoke   # seconds, to check the script
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import platform
import shutil
import time
from pathlib import Path

import torch
from _machine import cpu_name, mnist_file

from boltzkit.config import DataConfig, load_config
from boltzkit.estimate.sample_quality import QualityJudge
from boltzkit.families.gan import sample_gan
from boltzkit.seeding import make_generator
from boltzkit.train import Fit, train
from boltzkit.train.fit import FitInterrupted
from boltzkit.train.quality_classifier import (
    ClassifierSpec,
    load_or_train_quality_classifier,
    quality_data,
    train_quality_classifier,
)

RESULTS = Path(__file__).parent / "results"
RUNS = Path(__file__).parent / "runs"
TOLERANCE = 0.3  # a class's share must lie within +-30 % of 1/10
SMOKE = ["data.limit=600", "train.metrics_examples=100", "model.generator_layers=[16, 8]",
         "model.discriminator_layers=[8, 16]", "train.checkpoint_every=0"]
CALIBRATION_UPDATES = 30
NOTE = "FID on the quality classifier's features (not Inception v3: compare only within boltzkit)"


PRESETS = ("gan-mnist", "cgan-mnist")


def config_for(mnist: Path, epochs: int, extra: list[str], preset: str = "gan-mnist"):
    return load_config(preset, ["data.name=npz", f"data.path={mnist}", "data.image_shape=[28, 28]",
                                     f"train.epochs={epochs}", *extra])


def seconds_per_epoch(mnist: Path, extra: list[str], preset: str) -> float:
    """Seconds per epoch from the time of :data:`CALIBRATION_UPDATES` updates (after 5 of
    warm-up), plus the epoch's metrics."""
    session = Fit(config_for(mnist, 1, extra, preset))
    marks: dict[int, float] = {}

    def stop() -> bool:
        marks[session.state.step] = time.perf_counter()
        return session.state.step >= 5 + CALIBRATION_UPDATES

    try:
        session.run(should_stop=stop)
    except FitInterrupted:
        pass
    last = max(marks)
    per_update = (marks[last] - marks[min(5, last)]) / max(1, last - min(5, last))
    started = time.perf_counter()
    session.task.measure(session.model)
    return per_update * session.batches.per_epoch + time.perf_counter() - started


def quality_judge(mnist: Path, device: torch.device, smoke: bool) -> tuple[QualityJudge, dict]:
    """The judge of samples: boltzkit's MNIST quality classifier (the zoo's, cached beside
    ``mnist.npz``; trained there on first use) against the 10,000 test images, and the
    classifier's description. ``smoke``: a throw-away classifier of one epoch on 2,000
    training images (seconds; its numbers mean nothing)."""
    data_config = DataConfig(name="mnist", dir=str(mnist.parent))  # the zoo's cache, not the npz one
    if not smoke:
        classifier, labelled = load_or_train_quality_classifier(data_config, device, progress=True)
        return QualityJudge(classifier.model, labelled.test), {"path": str(classifier.path),
                                                                **classifier.info}
    labelled = quality_data(data_config)
    small = dataclasses.replace(labelled, train=labelled.train[:2000],
                                train_labels=labelled.train_labels[:2000])
    classifier = train_quality_classifier(small, ClassifierSpec(epochs=1), device=device)
    return QualityJudge(classifier.model, labelled.test), {"path": None, **classifier.info}


@torch.no_grad()
def label_accuracy(model, judge: QualityJudge, per_class: int, seed: int, device: torch.device) -> dict:
    """For a class-conditional GAN: ``per_class`` samples of each class; the share the
    quality classifier assigns to the class asked for, overall and per class."""
    generator = make_generator(seed, "benchmark.label_samples", device)
    shares = []
    for label in range(model.classes):
        samples, _ = sample_gan(model, per_class, 1, generator, label=label)
        predicted = judge.logits(samples.float().cpu()).argmax(dim=1)
        shares.append((predicted == label).double().mean().item())
    return {"overall": sum(shares) / len(shares), "per_class": shares, "per_class_samples": per_class}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mnist", default=os.environ.get("BOLTZKIT_MNIST", "../shared/data/mnist.npz"))
    parser.add_argument("--minutes", type=float, default=30.0, help="training budget (wall clock)")
    parser.add_argument("--epochs", type=int, help="fix the epochs instead of calibrating to --minutes")
    parser.add_argument("--samples", type=int, default=10_000, help="generated images judged")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--preset", choices=PRESETS, default="gan-mnist")
    parser.add_argument("--smoke", action="store_true", help="a tiny run (seconds) to check the script")
    parser.add_argument("--set", dest="extra", action="append", default=[], help="more config overrides")
    parser.add_argument("--out", help="run directory (default benchmarks/runs/mnist_gan); "
                        "the JSON is named after its last part")
    args = parser.parse_args()
    mnist = mnist_file(args.mnist)
    extra = [f"device={args.device}", *(SMOKE if args.smoke else []), *args.extra]
    samples_wanted = 500 if args.smoke else args.samples

    per_epoch = None
    if args.epochs or args.smoke:
        epochs = args.epochs or 1
    else:
        per_epoch = seconds_per_epoch(mnist, extra, args.preset)
        epochs = max(1, math.floor(0.97 * args.minutes * 60 / per_epoch))  # 3 %: checkpoints, figures
        print(f"calibration: {per_epoch:.1f} s per epoch -> {epochs} epochs in {args.minutes:g} minutes")
    out = Path(args.out or RUNS / ("mnist_gan-smoke" if args.smoke else "mnist_gan"))
    if out.exists():
        shutil.rmtree(out)
    config = config_for(mnist, epochs, extra, args.preset)
    started = time.perf_counter()
    result = train(config, out, progress=False)
    train_seconds = time.perf_counter() - started
    print(f"trained {epochs} epochs in {train_seconds / 60:.1f} minutes", flush=True)

    device = next(result.model.parameters()).device
    samples, _ = sample_gan(result.model, samples_wanted, 1, make_generator(config.seed, "benchmark.samples",
                                                                             device))
    samples = samples.float().cpu()
    judge, classifier = quality_judge(mnist, device, args.smoke)
    quality = judge(samples).to_dict()
    histogram = quality["class_histogram"]
    within = [abs(share - 0.1) <= TOLERANCE * 0.1 for share in histogram]
    last = result.history[-1]
    heeded = (label_accuracy(result.model, judge, max(1, samples_wanted // 10), config.seed, device)
              if result.model.classes else None)

    print(f"\n{args.preset}: DCGAN on MNIST, {epochs} epochs, {train_seconds / 60:.1f} min on {cpu_name()} "
          f"(device {config.device}); {len(samples)} samples of the generator's moving average")
    print(f"note: {NOTE}")
    print("| metric | value |\n| --- | --- |")
    print(f"| FID (quality-classifier features) | {quality['fid']:.3f} +- {quality['fid_stderr']:.3f} |")
    print(f"| class coverage | {quality['class_coverage']:.2f} |")
    print(f"| Inception-style score | {quality['inception_score']:.3f} |")
    print(f"| quality classifier's test accuracy | {classifier['test_accuracy']:.4f} |")
    print(f"| classes within +-{TOLERANCE:.0%} of uniform | {sum(within)} / 10 |")
    print(f"| val MMD^2 (pixels), diversity | {last.get('val_mmd', float('nan')):.4f}, "
          f"{last.get('diversity', float('nan')):.3f} |")
    print(f"| collapse / divergence verdicts (last epoch) | {last.get('mode_collapse', 0):.0f} / "
          f"{last.get('divergence', 0):.0f} |")
    print("| class shares 0..9 | " + " ".join(f"{share:.3f}" for share in histogram) + " |")
    if heeded:
        print(f"| samples classified as the class asked for | {heeded['overall']:.4f} (per class "
              + " ".join(f"{share:.3f}" for share in heeded["per_class"]) + ") |")

    RESULTS.mkdir(exist_ok=True)
    record = {
        "command": ("python benchmarks/mnist_gan.py --mnist ../shared/data/mnist.npz "
                    + ("--smoke" if args.smoke else f"--epochs {args.epochs}" if args.epochs
                       else f"--minutes {args.minutes:g}")
                    + f" --samples {args.samples} --device {args.device}"
                    + (f" --preset {args.preset}" if args.preset != "gan-mnist" else "")
                    + "".join(f" --set {e}" for e in args.extra)
                    + (f" --out {args.out}" if args.out else "")),
        "machine": {"platform": platform.platform(), "cpu": cpu_name(), "threads": config.threads,
                    "torch": torch.__version__,
                    "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None},
        "epochs": epochs, "calibrated_seconds_per_epoch": per_epoch, "train_minutes": train_seconds / 60,
        "run_dir": str(out), "samples": len(samples), "note": NOTE, "quality": quality,
        "quality_classifier": classifier, "classes_within_tolerance": sum(within), "tolerance": TOLERANCE,
        "preset": args.preset, "label_accuracy": heeded,
        "last_epoch": last,
    }
    path = RESULTS / f"{out.name}.json"  # benchmarks/runs/NAME -> benchmarks/results/NAME.json
    path.write_text(json.dumps(record, indent=2, default=float))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
