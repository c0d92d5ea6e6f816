"""Sample quality of a trained model: its family draws images, the quality classifier judges
them against the real test split (``boltzkit evaluate --sample-quality``, the zoo benchmark)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..errors import BoltzkitError
from ..estimate.sample_quality import QualityJudge, SampleQuality
from ..families import Family, family_names, get_family
from ..seeding import make_generator
from .quality_classifier import load_or_train_quality_classifier


def sample_images(family: Family, model: nn.Module, n: int, steps: int, generator: torch.Generator,
                  feature_mean=None, feature_std=None) -> Tensor:
    """``n`` samples of ``model`` as pixels in [0, 1], ``(n, D)`` on the CPU: the family's
    sample means (``E[v | h]`` for an RBM, as ``samples.png`` shows them) with
    ``data.standardize`` undone."""
    from ..plots import to_pixels

    if not family.capabilities.sample:
        able = [name for name in family_names() if get_family(name).capabilities.sample]
        raise BoltzkitError(f"sample quality: model.type {family.name!r} cannot be sampled (families "
                            f"that can: {', '.join(able)})")
    _, means = family.sample(model, n, steps, generator, 0, 0.5)
    return to_pixels(means.detach().cpu().float(), feature_mean, feature_std)


def judge_model(family: Family, model: nn.Module, data_config, *, n: int, steps: int, seed: int,
                device: torch.device, feature_mean=None, feature_std=None,
                progress: bool = False) -> SampleQuality:
    """Draw ``n`` images (``steps`` sampling steps where the family has them) and compare them
    with the test split of ``data_config``'s data set, through the cached quality classifier
    of that set (trained there on first use)."""
    classifier, data = load_or_train_quality_classifier(data_config, device, progress=progress)
    generator = make_generator(seed, "evaluate.samples", device)
    images = sample_images(family, model, n, steps, generator, feature_mean, feature_std)
    if images.shape[1] != data.n_features:
        raise BoltzkitError(f"sample quality: the model draws {images.shape[1]} values per sample but "
                            f"the {data.source or data.name} images have {data.n_features} pixels")
    return QualityJudge(classifier.model, data.test)(images)
