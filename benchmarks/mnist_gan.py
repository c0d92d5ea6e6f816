"""A DCGAN on MNIST under a wall-clock budget: classifier-feature FID and the class histogram.

Trains the ``gan-mnist`` preset (spectrally normalised DCGAN, non-saturating loss, moving
average of the generator) for as many epochs as the budget allows: the seconds per update
are measured on 30 updates first, and the run gets ``floor(budget / seconds per epoch)``
epochs. Then ``--samples`` images of the generator's moving average are judged against the
10,000 test images:

- FID on the features of boltzkit's MNIST quality classifier (``boltzkit.estimate.
  sample_quality``: not Inception v3, so not comparable with published Inception FIDs),
  its class histogram, class coverage and Inception-style score. Where that module is not
  in this checkout (or its interface differs), FID is skipped with a note and the class
  histogram comes from a logistic-regression classifier on 10,000 training images
  (its test accuracy is printed beside it);
- the in-training, classifier-free metrics of the last epoch (pixel MMD^2, diversity,
  the collapse and divergence verdicts).

Target (issue 12): the best classifier-feature FID of the zoo, and every class within
+-30 % of uniform (a share between 0.07 and 0.13).

    python benchmarks/mnist_gan.py --mnist ../shared/data/mnist.npz --minutes 30
    python benchmarks/mnist_gan.py --mnist ../shared/data/mnist.npz --smoke   # seconds, to check the script
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import time
from pathlib import Path

import numpy as np
import torch
from _machine import cpu_name

from boltzkit.config import load_config
from boltzkit.families.gan import sample_gan
from boltzkit.seeding import make_generator
from boltzkit.train import Fit, train
from boltzkit.train.fit import FitInterrupted

RESULTS = Path(__file__).parent / "results"
RUNS = Path(__file__).parent / "runs"
TOLERANCE = 0.3  # a class's share must lie within +-30 % of 1/10
SMOKE = ["data.limit=600", "train.metrics_examples=100", "model.generator_layers=[16, 8]",
         "model.discriminator_layers=[8, 16]", "train.checkpoint_every=0"]
CALIBRATION_UPDATES = 30


def config_for(mnist: Path, epochs: int, extra: list[str]):
    return load_config("gan-mnist", ["data.name=npz", f"data.path={mnist}", "data.image_shape=[28, 28]",
                                     f"train.epochs={epochs}", *extra])


def seconds_per_epoch(mnist: Path, extra: list[str]) -> float:
    """Seconds per epoch from the time of :data:`CALIBRATION_UPDATES` updates (after 5 of
    warm-up), plus the epoch's metrics."""
    session = Fit(config_for(mnist, 1, extra))
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


def load_test(mnist: Path) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    with np.load(mnist) as arrays:
        def images(key: str) -> torch.Tensor:
            return torch.from_numpy(arrays[key].reshape(len(arrays[key]), -1).astype(np.float32) / 255.0)

        return (images("x_train"), torch.from_numpy(arrays["y_train"]).long(), images("x_test"),
                torch.from_numpy(arrays["y_test"]).long())


def judged_by_quality_module(samples: torch.Tensor, run_config,
                             x_test: torch.Tensor) -> tuple[dict | None, str]:
    """FID and classes from ``boltzkit.estimate.sample_quality`` (built in parallel with
    this family): ``(results, note)``, results None when the module cannot judge."""
    try:
        from boltzkit.estimate import sample_quality
    except ImportError:
        return None, "boltzkit.estimate.sample_quality is not in this checkout: FID skipped"
    try:
        from boltzkit.data import load_dataset

        data = load_dataset(run_config.data, run_config.seed)
        classifier = sample_quality.load_or_train_quality_classifier(data)
        judge = sample_quality.QualityJudge(classifier, x_test)
        return judge(samples).to_dict(), "FID on the quality classifier's features (not Inception v3)"
    except (AttributeError, TypeError) as err:
        return None, (f"boltzkit.estimate.sample_quality is here but not with the interface this script "
                      f"expects ({type(err).__name__}: {err}): FID skipped")


def judged_by_logistic_regression(samples: torch.Tensor, x_train, y_train, x_test, y_test) -> dict:
    """The class histogram from a logistic-regression classifier on 10,000 training images."""
    from sklearn.linear_model import LogisticRegression

    classifier = LogisticRegression(max_iter=300)
    classifier.fit(x_train[:10_000].numpy(), y_train[:10_000].numpy())
    accuracy = float(classifier.score(x_test.numpy(), y_test.numpy()))
    predicted = classifier.predict(samples.cpu().numpy())
    histogram = (np.bincount(predicted, minlength=10) / len(predicted)).tolist()
    return {"classifier": "logistic regression on 10,000 training images",
            "classifier_test_accuracy": accuracy, "class_histogram": histogram}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mnist", default=os.environ.get("BOLTZKIT_MNIST", "../shared/data/mnist.npz"))
    parser.add_argument("--minutes", type=float, default=30.0, help="training budget (wall clock)")
    parser.add_argument("--epochs", type=int, help="fix the epochs instead of calibrating to --minutes")
    parser.add_argument("--samples", type=int, default=10_000, help="generated images judged")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--smoke", action="store_true", help="a tiny run (seconds) to check the script")
    parser.add_argument("--set", dest="extra", action="append", default=[], help="more config overrides")
    parser.add_argument("--out", help="run directory (default benchmarks/runs/mnist_gan)")
    args = parser.parse_args()
    mnist = Path(args.mnist).resolve()
    if not mnist.is_file():
        raise SystemExit(f"MNIST not found at {mnist}; pass --mnist PATH/TO/mnist.npz")
    extra = [f"device={args.device}", *(SMOKE if args.smoke else []), *args.extra]
    samples_wanted = 500 if args.smoke else args.samples

    per_epoch = None
    if args.epochs or args.smoke:
        epochs = args.epochs or 1
    else:
        per_epoch = seconds_per_epoch(mnist, extra)
        epochs = max(1, math.floor(0.97 * args.minutes * 60 / per_epoch))  # 3 %: checkpoints, figures
        print(f"calibration: {per_epoch:.1f} s per epoch -> {epochs} epochs in {args.minutes:g} minutes")
    out = Path(args.out or RUNS / ("mnist_gan-smoke" if args.smoke else "mnist_gan"))
    if out.exists():
        shutil.rmtree(out)
    config = config_for(mnist, epochs, extra)
    started = time.perf_counter()
    result = train(config, out, progress=False)
    train_seconds = time.perf_counter() - started
    print(f"trained {epochs} epochs in {train_seconds / 60:.1f} minutes", flush=True)

    device = next(result.model.parameters()).device
    samples, _ = sample_gan(result.model, samples_wanted, 1, make_generator(config.seed, "benchmark.samples",
                                                                             device))
    samples = samples.float().cpu()
    x_train, y_train, x_test, y_test = load_test(mnist)
    quality, note = judged_by_quality_module(samples, config, x_test)
    fallback = None if quality is not None else judged_by_logistic_regression(samples, x_train, y_train,
                                                                              x_test, y_test)
    histogram = (quality or fallback)["class_histogram"]
    within = [abs(share - 0.1) <= TOLERANCE * 0.1 for share in histogram]
    last = result.history[-1]

    print(f"\nDCGAN on MNIST, {epochs} epochs, {train_seconds / 60:.1f} min on {cpu_name()} "
          f"(device {config.device}); {len(samples)} samples of the generator's moving average")
    print(f"note: {note}")
    print("| metric | value |\n| --- | --- |")
    if quality is not None:
        print(f"| FID (quality-classifier features) | {quality['fid']:.3f} |")
        print(f"| class coverage | {quality['class_coverage']:.2f} |")
        print(f"| Inception-style score | {quality['inception_score']:.3f} |")
    else:
        print(f"| class histogram classifier's test accuracy | {fallback['classifier_test_accuracy']:.4f} |")
    print(f"| classes within +-{TOLERANCE:.0%} of uniform | {sum(within)} / 10 |")
    print(f"| val MMD^2 (pixels), diversity | {last.get('val_mmd', float('nan')):.4f}, "
          f"{last.get('diversity', float('nan')):.3f} |")
    print(f"| collapse / divergence verdicts (last epoch) | {last.get('mode_collapse', 0):.0f} / "
          f"{last.get('divergence', 0):.0f} |")
    print("| class shares 0..9 | " + " ".join(f"{share:.3f}" for share in histogram) + " |")

    RESULTS.mkdir(exist_ok=True)
    record = {
        "command": ("python benchmarks/mnist_gan.py --mnist ../shared/data/mnist.npz "
                    + ("--smoke" if args.smoke else f"--epochs {args.epochs}" if args.epochs
                       else f"--minutes {args.minutes:g}")
                    + f" --samples {args.samples} --device {args.device}"
                    + "".join(f" --set {e}" for e in args.extra)),
        "machine": {"platform": platform.platform(), "cpu": cpu_name(), "threads": torch.get_num_threads(),
                    "torch": torch.__version__,
                    "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None},
        "epochs": epochs, "calibrated_seconds_per_epoch": per_epoch, "train_minutes": train_seconds / 60,
        "run_dir": str(out), "samples": len(samples), "note": note, "quality": quality,
        "fallback_classifier": fallback, "classes_within_tolerance": sum(within), "tolerance": TOLERANCE,
        "last_epoch": last,
    }
    path = RESULTS / ("mnist_gan-smoke.json" if args.smoke else "mnist_gan.json")
    path.write_text(json.dumps(record, indent=2, default=float))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
