"""Sample quality of an image model, judged by a classifier trained on the same data set.

Three numbers compare generated images with real ones (the test split):

- **Frechet distance** between Gaussians fitted to the classifier's penultimate features of
  the real and the generated images (Heusel et al., 2017, "GANs trained by a two time-scale
  update rule converge to a local Nash equilibrium"):
  ``FD = |mu_r - mu_g|^2 + Tr(S_r + S_g - 2 (S_r S_g)^(1/2))``, computed by torchmetrics'
  ``FrechetInceptionDistance`` with the classifier as its feature extractor. These are
  **not Inception v3 features**: values compare only under the same classifier file and
  the same number of samples (the estimate is biased upward at small N), never with
  published FIDs. Its standard error over draws of the generated images (the reference
  held fixed, as it is for every model compared) comes from ``FID_SPLITS`` disjoint parts
  of the samples: :meth:`QualityJudge.frechet_distance_stderr`.
- **Class coverage**: the fraction of the ``K`` classes that receive at least
  ``(1 - tolerance) / K`` of the samples (the classifier's predicted labels), beside the
  histogram of those labels. A model that draws one digit covers ``1 / K``.
- **Inception-style score** (Salimans et al., 2016, "Improved techniques for training
  GANs") on the classifier's predictions: ``exp(E_x KL(p(y|x) || p(y)))`` with
  ``p(y) = E_x p(y|x)``; from 1 (every image gets the same prediction) to ``K``
  (confident predictions spread evenly over the classes).

torchmetrics is an optional dependency (``pip install 'boltzkit[quality]'``), imported
only when a Frechet distance is computed.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor, nn

from ..errors import BoltzkitError
from .exact import log_mean_exp

COVERAGE_TOLERANCE = 0.3
"""A class is covered when its share of the samples is at least ``(1 - 0.3) / K``."""
FID_SPLITS = 5
"""Disjoint parts of the samples whose Frechet distances give the standard error."""
SAMPLES_PER_FEATURE = 10
"""Below this many images per feature on either side, the covariances are poorly
estimated and the Frechet distance is biased upward: the result carries a caveat."""


@dataclass
class SampleQuality:
    """What :class:`QualityJudge` reports on a set of generated images."""

    fid: float
    """Frechet distance on the classifier's features (not Inception's)."""
    fid_stderr: float
    """Its standard error over draws of the samples (nan below ``2 * FID_SPLITS`` samples)."""
    class_coverage: float
    """Fraction of classes with at least ``(1 - tolerance) / K`` of the samples."""
    class_histogram: list[float]
    """Share of the samples predicted as each class (sums to 1)."""
    inception_score: float
    """``exp(E_x KL(p(y|x) || p(y)))`` on the classifier's predictions, in ``[1, K]``."""
    samples: int
    reference: int
    """Real images the Frechet distance compares with."""
    features: int
    """Width of the classifier's feature layer."""
    tolerance: float = COVERAGE_TOLERANCE
    caveat: str = ""
    """Why not to trust the Frechet distance much (empty: no known reason)."""

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "feature_extractor": "boltzkit quality classifier (not Inception v3)"}

    def report(self) -> str:
        """One line for tables and logs."""
        line = (f"FID {self.fid:.3f} +- {self.fid_stderr:.3f} (classifier features, not Inception; "
                f"{self.samples} samples vs {self.reference} real images), "
                f"class coverage {self.class_coverage:.2f}, Inception-style score {self.inception_score:.3f}")
        return f"{line}; {self.caveat}" if self.caveat else line


def inception_score(logits: Tensor) -> float:
    """``exp(mean_x KL(p(y|x) || p(y)))`` from logits ``(N, K)``, in float64 log space:
    ``log p(y) = log mean_x p(y|x)`` by log-sum-exp."""
    log_p = torch.log_softmax(logits.to(torch.float64), dim=1)
    log_marginal = log_mean_exp(log_p, dim=0)  # (K,)
    kl = (log_p.exp() * (log_p - log_marginal)).sum(dim=1)  # (N,)
    return math.exp(kl.mean().item())


def class_coverage(labels: Tensor, n_classes: int,
                   tolerance: float = COVERAGE_TOLERANCE) -> tuple[float, list[float]]:
    """``(coverage, histogram)`` of predicted ``labels`` ``(N,)``: the histogram holds each
    class's share of the samples; coverage is the fraction of classes whose share is at
    least ``(1 - tolerance) / n_classes``."""
    if not 0 <= tolerance < 1:
        raise ValueError(f"Invalid coverage tolerance: {tolerance} (expected 0 <= tolerance < 1)")
    if len(labels) == 0:
        raise ValueError("class coverage needs at least one sample")
    shares = torch.bincount(labels.cpu(), minlength=n_classes).double() / len(labels)
    covered = shares >= (1 - tolerance) / n_classes
    return covered.double().mean().item(), shares.tolist()


class _Features(nn.Module):
    """The classifier's penultimate layer as a feature extractor for torchmetrics."""

    def __init__(self, classifier: nn.Module):
        super().__init__()
        self.classifier = classifier
        self.num_features = classifier.num_features  # spares torchmetrics a probe with a dummy image

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier.features(x)


def _frechet_metric(classifier: nn.Module) -> nn.Module:
    try:
        from torchmetrics.image.fid import FrechetInceptionDistance
    except ImportError as err:
        raise BoltzkitError(f"the Frechet distance needs torchmetrics: pip install 'boltzkit[quality]' "
                            f"({err})") from None
    # with a custom extractor torchmetrics passes the float images through unchanged
    # (normalize only matters for its own Inception network); the real statistics are
    # kept across resets, so that one reference serves every sample set
    metric = FrechetInceptionDistance(feature=_Features(classifier), normalize=True,
                                      reset_real_features=False)
    return metric.to(next(classifier.parameters()).device)


class QualityJudge:
    """Judges sets of generated images against a fixed set of real ones.

    Args:
        classifier: a trained classifier with ``features(x) -> (B, F)``, ``num_features``
            and ``forward(x) -> logits`` (a :class:`~boltzkit.models.cnn.SmallCNN`); its
            device is where the work happens.
        reference: real images ``(M, D)`` in [0, 1], e.g. the test split.
        batch_size: images per forward pass.
        tolerance: of the class coverage.
    """

    def __init__(self, classifier: nn.Module, reference: Tensor, batch_size: int = 1000,
                 tolerance: float = COVERAGE_TOLERANCE):
        if len(reference) < 2:
            raise ValueError(f"the reference needs at least 2 images, got {len(reference)}")
        self.classifier = classifier.eval()
        self.device = next(classifier.parameters()).device
        self.batch_size, self.tolerance = batch_size, tolerance
        self.reference = len(reference)
        self._metric = _frechet_metric(self.classifier)
        with torch.no_grad():
            for chunk in reference.split(batch_size):
                self._metric.update(self._input(chunk), real=True)

    def _input(self, images: Tensor) -> Tensor:
        return images.to(self.device, torch.float32).clamp(0, 1)

    @torch.no_grad()
    def frechet_distance(self, images: Tensor) -> float:
        """The Frechet distance of ``images`` ``(N, D)`` (``N >= 2``) to the reference."""
        if len(images) < 2:
            raise ValueError(f"the Frechet distance needs at least 2 images, got {len(images)}")
        self._metric.reset()  # generated statistics only (reset_real_features=False)
        for chunk in images.split(self.batch_size):
            self._metric.update(self._input(chunk), real=False)
        return float(self._metric.compute())

    @torch.no_grad()
    def frechet_distance_stderr(self, images: Tensor, splits: int = FID_SPLITS) -> float:
        """Standard error of :meth:`frechet_distance` of ``images`` over draws of the images
        (the reference held fixed).

        The distances of ``splits`` disjoint parts (every ``splits``-th image, so that an
        ordered set splits evenly) spread with a standard deviation ``s``; with the
        estimator's variance falling as ``1 / N`` (delta method, for a distance above 0),
        the whole set's standard error is ``s / sqrt(splits)``. The parts' small-sample
        bias shifts them alike and does not enter ``s``. nan with fewer than 2 images per part.
        """
        if splits < 2:
            raise ValueError(f"Invalid number of FID splits: {splits} (expected >= 2)")
        if len(images) < 2 * splits:
            return math.nan
        parts = torch.tensor([self.frechet_distance(images[i::splits]) for i in range(splits)])
        return (parts.std() / math.sqrt(splits)).item()

    @torch.no_grad()
    def logits(self, images: Tensor) -> Tensor:
        """The classifier's logits ``(N, K)`` (on the CPU)."""
        chunks = images.split(self.batch_size)
        return torch.cat([self.classifier(self._input(chunk)).cpu() for chunk in chunks])

    def __call__(self, images: Tensor) -> SampleQuality:
        """Every number for ``images`` ``(N, D)`` in [0, 1] (values outside are clipped)."""
        logits = self.logits(images)
        coverage, histogram = class_coverage(logits.argmax(dim=1), logits.shape[1], self.tolerance)
        features = int(self.classifier.num_features)
        fewest = min(len(images), self.reference)
        caveat = (f"only {fewest} images for {features} features (fewer than {SAMPLES_PER_FEATURE} per "
                  "feature): the FID is biased upward; compare only at the same number of samples"
                  if fewest < SAMPLES_PER_FEATURE * features else "")
        return SampleQuality(
            fid=self.frechet_distance(images), fid_stderr=self.frechet_distance_stderr(images),
            class_coverage=coverage, class_histogram=histogram,
            inception_score=inception_score(logits), samples=len(images), reference=self.reference,
            features=features, tolerance=self.tolerance, caveat=caveat)
