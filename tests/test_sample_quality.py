"""Sample quality: the quality classifier, the Frechet distance on its features, class
coverage and the Inception-style score, on the embedded 8x8 digits."""

import dataclasses
import json
import math
import re
import sys

import numpy as np
import pytest
import torch

from boltzkit.cli import main
from boltzkit.config import DataConfig
from boltzkit.errors import BoltzkitError, CheckpointError, DataError
from boltzkit.estimate.sample_quality import QualityJudge, class_coverage, inception_score
from boltzkit.models import SmallCNN
from boltzkit.train.quality_classifier import (
    ClassifierSpec,
    classifier_path,
    load_or_train_quality_classifier,
    load_quality_classifier,
    quality_data,
    save_quality_classifier,
    train_quality_classifier,
)

needs_torchmetrics = pytest.mark.skipif(
    __import__("importlib").util.find_spec("torchmetrics") is None,
    reason="the Frechet distance needs torchmetrics (pip install 'boltzkit[quality]')")


@pytest.fixture(scope="session")
def digits_classifier(tmp_path_factory):
    """The digits' quality classifier (trained once, about 3 s) and its labelled data."""
    folder = tmp_path_factory.mktemp("quality")
    return load_or_train_quality_classifier(DataConfig(name="digits", dir=str(folder)))


@pytest.fixture(scope="session")
def judge(digits_classifier):
    pytest.importorskip("torchmetrics")
    classifier, data = digits_classifier
    return QualityJudge(classifier.model, data.test)


# ----------------------------------------------------------------- Frechet distance


@needs_torchmetrics
def test_fid_of_the_test_set_with_itself_is_zero(judge, digits_classifier):
    _, data = digits_classifier
    assert abs(judge.frechet_distance(data.test)) < 1e-6


def _features(model, x):
    with torch.no_grad():
        return model.features(x).double().numpy()


@needs_torchmetrics
@pytest.mark.filterwarnings("ignore:Matrix is singular")  # dead ReLU features: zero-variance rows
def test_fid_equals_the_closed_form_on_the_classifier_features(judge, digits_classifier):
    """|mu_r - mu_g|^2 + Tr(S_r + S_g - 2 (S_r S_g)^(1/2)) with scipy's matrix square root, on
    the penultimate features: torchmetrics gets our features and unbiased covariances."""
    scipy_linalg = pytest.importorskip("scipy.linalg")
    classifier, data = digits_classifier
    real, fake = _features(classifier.model, data.test), _features(classifier.model, data.train)
    mu_r, mu_g = real.mean(0), fake.mean(0)
    s_r, s_g = np.cov(real, rowvar=False), np.cov(fake, rowvar=False)
    root = scipy_linalg.sqrtm(s_r @ s_g).real
    expected = float(((mu_r - mu_g) ** 2).sum() + np.trace(s_r + s_g - 2 * root))
    assert judge.frechet_distance(data.train) == pytest.approx(expected, rel=1e-4)


@needs_torchmetrics
def test_fid_is_small_for_real_images_and_large_for_noise_and_for_one_class(judge, digits_classifier):
    """Independent real images (the 1,500 training images) score far below uniform noise and
    below a single digit. On a classifier's features a single class lies further from the
    data than noise does (the features separate the classes; noise lands between them), so
    the two are not ordered against each other; coverage and score tell them apart."""
    _, data = digits_classifier
    real = judge.frechet_distance(data.train)
    noise = torch.rand(len(data.test), data.n_features, generator=torch.Generator().manual_seed(0))
    zeros = data.test[data.test_labels == 0]
    assert real < 20
    assert judge.frechet_distance(noise) > 5 * real
    assert judge.frechet_distance(zeros) > 5 * real
    assert judge(noise).class_coverage < 1 and judge(zeros).class_coverage == pytest.approx(0.1)


class _Projection(torch.nn.Module):
    """A stand-in classifier: fixed random projections of 16 pixels to 4 features and 10 logits."""

    num_features = 4

    def __init__(self):
        super().__init__()
        generator = torch.Generator().manual_seed(1)
        self.features_map = torch.nn.Linear(16, 4)
        self.logits_map = torch.nn.Linear(16, 10)
        for weight in (self.features_map.weight, self.logits_map.weight):
            weight.data = torch.randn(weight.shape, generator=generator)

    def features(self, x):
        return self.features_map(x)

    def forward(self, x):
        return self.logits_map(x)


@needs_torchmetrics
def test_fid_standard_error_matches_the_spread_over_independent_sample_sets():
    """40 independent sets of 1,000 samples against one fixed reference: the standard
    deviation of their distances is what the stated standard error claims. With 40 sets
    that deviation is known to about 11 %, so the two agree within a factor of 1.4; a
    stated error without the 1 / sqrt(splits) would be 2.2 times too large."""
    generator = torch.Generator().manual_seed(0)
    judge = QualityJudge(_Projection(), torch.rand(2000, 16, generator=generator))
    fids, stated = [], []
    for _ in range(40):
        samples = torch.rand(1000, 16, generator=generator) ** 1.5  # darker than the reference
        fids.append(judge.frechet_distance(samples))
        stated.append(judge.frechet_distance_stderr(samples))
    observed = torch.tensor(fids).std().item()
    assert min(fids) > 10 * observed  # a distance clearly above 0, where the 1/N scaling holds
    assert 1 / 1.4 < torch.tensor(stated).mean().item() / observed < 1.4
    assert math.isnan(judge.frechet_distance_stderr(torch.rand(9, 16)))
    with pytest.raises(ValueError, match="Invalid number of FID splits: 1"):
        judge.frechet_distance_stderr(torch.rand(100, 16), splits=1)


@needs_torchmetrics
def test_judge_reports_every_number_and_needs_two_images(judge, digits_classifier):
    _, data = digits_classifier
    quality = judge(data.test)
    record = quality.to_dict()
    assert record["class_coverage"] == 1.0 and record["samples"] == record["reference"] == len(data.test)
    assert record["features"] == 64 and "not Inception" in record["feature_extractor"]
    assert sum(record["class_histogram"]) == pytest.approx(1.0)
    assert json.loads(json.dumps(record)) == record
    assert quality.report().startswith(f"FID {quality.fid:.3f} +- {quality.fid_stderr:.3f} ")
    assert record["fid_stderr"] == quality.fid_stderr > 0
    # 297 images for 64 features: fewer than 10 per feature
    assert quality.caveat == ("only 297 images for 64 features (fewer than 10 per feature): the FID is "
                              "biased upward; compare only at the same number of samples")
    with pytest.raises(ValueError, match="the Frechet distance needs at least 2 images, got 1"):
        judge.frechet_distance(data.test[:1])


def test_missing_torchmetrics_names_the_extra(monkeypatch, digits_classifier):
    classifier, data = digits_classifier
    monkeypatch.setitem(sys.modules, "torchmetrics.image.fid", None)  # import fails
    with pytest.raises(BoltzkitError, match=r"needs torchmetrics: pip install 'boltzkit\[quality\]'"):
        QualityJudge(classifier.model, data.test)


# ----------------------------------------------------------------- coverage and score


def test_class_coverage_of_one_class_is_one_tenth_and_of_the_real_labels_one(digits_classifier):
    _, data = digits_classifier
    coverage, histogram = class_coverage(torch.full((50,), 3), 10)
    assert coverage == 0.1 and histogram == [0, 0, 0, 1, 0, 0, 0, 0, 0, 0]
    assert class_coverage(data.test_labels, 10)[0] == 1.0


def test_class_coverage_threshold_is_seventy_percent_of_uniform():
    # 100 samples over 10 classes: 7 of a class reach (1 - 0.3) / 10, 6 do not
    labels = torch.tensor([0] * 7 + [1] * 6 + [2] * 87)
    coverage, histogram = class_coverage(labels, 10)
    assert coverage == pytest.approx(2 / 10) and histogram[:3] == [0.07, 0.06, 0.87]
    with pytest.raises(ValueError, match=r"Invalid coverage tolerance: 1.0 \(expected 0 <= tolerance < 1\)"):
        class_coverage(labels, 10, tolerance=1.0)


def test_inception_score_of_confident_even_predictions_is_the_class_count():
    logits = 60.0 * torch.eye(10).repeat(7, 1)  # every class 7 times, each prediction certain
    assert inception_score(logits) == pytest.approx(10.0, rel=1e-12)


def test_inception_score_of_constant_predictions_is_one():
    logits = torch.randn(1, 10, generator=torch.Generator().manual_seed(0)).expand(40, 10)
    assert inception_score(logits) == pytest.approx(1.0, abs=1e-12)


def test_inception_score_matches_the_direct_formula():
    logits = 3 * torch.randn(30, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    p = torch.softmax(logits, 1).numpy()
    marginal = p.mean(0)
    expected = math.exp(np.mean([sum(q * math.log(q / m) for q, m in zip(row, marginal, strict=True)) for row in p]))
    assert inception_score(logits) == pytest.approx(expected, rel=1e-10)


# ----------------------------------------------------------------- the classifier


def test_classifier_learns_the_digits_and_records_its_data(digits_classifier):
    classifier, data = digits_classifier
    assert classifier.trained_now and classifier.path.name == "boltzkit-quality-classifier-digits.safetensors"
    info = classifier.info
    assert info["test_accuracy"] > 0.9  # chance is 0.1; measured 0.943
    assert info["train_examples"] == 1500 and info["test_examples"] == 297 and info["image_shape"] == [8, 8]


def test_save_load_round_trip_gives_the_same_features(digits_classifier, tmp_path):
    classifier, data = digits_classifier
    again = load_quality_classifier(save_quality_classifier(tmp_path / "c.safetensors", classifier), data)
    assert again.spec == classifier.spec and again.info == classifier.info
    with torch.no_grad():
        assert torch.equal(again.model.features(data.test), classifier.model.features(data.test))


def test_load_or_train_reuses_the_cached_file(digits_classifier):
    classifier, _ = digits_classifier
    again, _ = load_or_train_quality_classifier(DataConfig(name="digits", dir=str(classifier.path.parent)))
    assert not again.trained_now and again.path == classifier.path


def test_training_is_reproducible_from_the_seed_whatever_the_global_generator(digits_classifier):
    _, data = digits_classifier
    spec = ClassifierSpec(n_features=8, epochs=1, seed=5)
    states = []
    with torch.random.fork_rng():
        for global_seed in (1, 2):
            torch.manual_seed(global_seed)
            states.append(train_quality_classifier(data, spec).model.state_dict())
    first, second = states
    assert all(torch.equal(first[k], second[k]) for k in first)
    other = train_quality_classifier(data, dataclasses.replace(spec, seed=6)).model.state_dict()
    assert not torch.equal(first["conv1.weight"], other["conv1.weight"])


def test_a_corrupted_file_is_refused(digits_classifier, tmp_path):
    classifier, data = digits_classifier
    path = save_quality_classifier(tmp_path / "c.safetensors", classifier)
    raw = bytearray(path.read_bytes())
    raw[-3] ^= 0xFF  # a weight's byte
    path.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="checksum mismatch: the weights were altered or damaged"):
        load_quality_classifier(path, data)
    path.write_bytes(bytes(raw[:100]))
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        load_quality_classifier(path, data)


def test_a_classifier_of_other_data_is_refused(digits_classifier, tmp_path):
    classifier, data = digits_classifier
    path = save_quality_classifier(tmp_path / "c.safetensors", classifier)
    other = dataclasses.replace(data, train=data.train[:1000], train_labels=data.train_labels[:1000])
    with pytest.raises(CheckpointError, match=r"trained on other data \(1500 training images of "
                                              r"'scikit-learn digits'.*rebuild it with: boltzkit "
                                              r"quality-classifier --retrain"):
        load_quality_classifier(path, other)


def test_a_run_weights_file_is_not_a_classifier(tmp_path):
    from boltzkit.train.checkpoint import save_weights

    path = save_weights(tmp_path / "model.safetensors", torch.nn.Linear(2, 2), {"seed": 0}, {"n_features": 2})
    with pytest.raises(CheckpointError, match="not a boltzkit quality classifier"):
        load_quality_classifier(path)


def test_unlabelled_data_cannot_be_judged():
    with pytest.raises(DataError, match="sample quality needs labelled images with a test split; this data "
                                        "set has no training labels, test labels, an image shape"):
        quality_data(DataConfig(name="potts"))


def test_the_classifier_is_cached_in_the_data_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("BOLTZKIT_DATA_DIR", str(tmp_path / "env"))
    assert classifier_path(DataConfig(name="mnist", dir="/data")).as_posix() == \
        "/data/boltzkit-quality-classifier-mnist.safetensors"
    assert classifier_path(DataConfig(name="mnist")) == tmp_path / "env/boltzkit-quality-classifier-mnist.safetensors"
    assert classifier_path(DataConfig(name="npz", path="/x/my.npz")).as_posix() == \
        "/x/boltzkit-quality-classifier-npz-my.safetensors"


def test_small_cnn_logits_are_the_output_layer_of_the_features():
    model = SmallCNN((28, 28), generator=torch.Generator().manual_seed(0))
    x = torch.rand(3, 784, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.equal(model(x), model.output(model.features(x)))
    assert model.num_features == 128 and model.hidden.in_features == 32 * 7 * 7
    with pytest.raises(ValueError, match="SmallCNN needs images of at least 4x4 pixels, got 3x8"):
        SmallCNN((3, 8))


# ----------------------------------------------------------------- command line


def test_quality_classifier_command(tmp_path, capsys):
    out = tmp_path / "clf.safetensors"
    assert main(["quality-classifier", "--data", "digits", "--out", str(out), "--quiet", "--threads", "1"]) == 0
    said = capsys.readouterr().out
    assert re.search(r"quality classifier of scikit-learn digits: test accuracy \d+\.\d\d % on 297 "
                     r"images, 64 features; trained in", said)
    assert f"wrote {out}" in said
    assert main(["quality-classifier", "--data", "digits", "--out", str(out), "--quiet"]) == 0
    assert "already there, same data" in capsys.readouterr().out
    assert main(["quality-classifier", "--data", "cifar"]) == 2
    assert "--data cifar: accepted digits, mnist, fashion-mnist or an .npz file" in capsys.readouterr().err


@needs_torchmetrics
def test_evaluate_sample_quality_of_an_rbm_run(tmp_path, capsys, digits_classifier):
    classifier, _ = digits_classifier
    out = tmp_path / "run"
    assert main(["train", "--out", str(out), "--set", "train.epochs=2", "--set", "model.n_hidden=16",
                 "--set", "train.metrics_examples=50", "--set", f"data.dir={classifier.path.parent}",
                 "--quiet"]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(out), "--ais-runs", "4", "--ais-betas", "50", "--sample-quality", "60",
                 "--sample-steps", "20", "--quiet"]) == 0
    said, warned = capsys.readouterr()
    assert "sample quality against the test split: FID " in said and "60 samples vs 297 real images" in said
    assert "boltzkit: warning: sample quality: only 60 images for 64 features" in warned
    quality = json.loads((out / "evaluation.json").read_text())["sample_quality"]
    assert quality["samples"] == 60 and quality["sample_steps"] == 20 and quality["fid"] > 0
    assert "log_likelihood_ais" in json.loads((out / "evaluation.json").read_text())
    assert main(["evaluate", str(out), "--sample-quality", "1"]) == 2
    assert "--sample-quality must be from 2 to 1,000,000, got 1" in capsys.readouterr().err


def test_evaluate_sample_quality_needs_a_family_that_samples(tmp_path, capsys):
    out = tmp_path / "mlp"
    assert main(["train", "mlp-digits", "--out", str(out), "--set", "train.epochs=1", "--quiet"]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(out), "--sample-quality", "10"]) == 2
    assert "--sample-quality: model.type 'mlp' cannot be sampled (families that can: " in capsys.readouterr().err
