import gzip
import hashlib
import io
import struct

import numpy as np
import pytest
import torch

from boltzkit.config import DataConfig
from boltzkit.data import load_dataset, sources
from boltzkit.data.idx import parse_idx, read_idx
from boltzkit.errors import ConfigError, DataError


def idx_bytes(array: np.ndarray) -> bytes:
    code = {np.dtype("uint8"): 0x08, np.dtype(">f4"): 0x0D}[array.dtype]
    header = struct.pack(">BBBB", 0, 0, code, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.tobytes()


def write_idx_set(folder, n_train=30, n_test=10, gz=True, seed=0):
    rng = np.random.default_rng(seed)
    arrays = {
        "x_train": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "y_train": rng.integers(0, 10, n_train, dtype=np.uint8),
        "x_test": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "y_test": rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    folder.mkdir(parents=True, exist_ok=True)
    for key, stem in sources.IDX_FILES.items():
        raw = idx_bytes(arrays[key])
        if gz:
            (folder / f"{stem}.gz").write_bytes(gzip.compress(raw))
        else:
            (folder / stem).write_bytes(raw)
    return arrays


def cfg(**kwargs):
    return DataConfig(**kwargs)


def rows(features, labels=None):
    """The examples as a sorted list of (label, pixels) tuples: a multiset to compare splits."""
    labels = [None] * len(features) if labels is None else labels.tolist()
    return sorted(zip(labels, map(tuple, features.tolist()), strict=True),
                  key=lambda r: (r[0] is None, r[0] or 0, r[1]))


def is_subsequence(part, whole):
    """Whether the rows of ``part`` occur in ``whole`` in the same order."""
    remaining = iter(map(tuple, whole.tolist()))
    return all(row in remaining for row in map(tuple, part.tolist()))


def digits_images():
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return torch.from_numpy((bunch.images / 16.0).astype(np.float32)).reshape(-1, 64), torch.from_numpy(
        bunch.target)


# --------------------------------------------------------------------------- digits


def test_digits_split_shapes_and_range():
    data = load_dataset(cfg(name="digits", validation=0.1))
    assert data.train.shape == (1350, 64) and data.validation.shape == (150, 64)
    assert data.test.shape == (297, 64) and data.image_shape == (8, 8)
    assert data.train.dtype == torch.float32
    assert len(data.train_labels) == 1350 and len(data.validation_labels) == 150
    # scikit-learn's images / 16: the first 1,500 split into train and validation, the last
    # 297 the test set, each example with its own label
    images, labels = digits_images()
    assert torch.equal(data.test, images[1500:]) and torch.equal(data.test_labels, labels[1500:])
    assert rows(torch.cat([data.train, data.validation]), torch.cat([data.train_labels, data.validation_labels])) == (
        rows(images[:1500], labels[:1500]))
    assert data.train.min() == 0.0 and data.train.max() == 1.0


def test_validation_split_is_seeded_and_disjoint():
    a = load_dataset(cfg(name="digits"), seed=1)
    b = load_dataset(cfg(name="digits"), seed=1)
    c = load_dataset(cfg(name="digits"), seed=2)
    assert torch.equal(a.validation, b.validation) and torch.equal(a.train, b.train)
    assert not torch.equal(a.validation, c.validation)
    # a partition of the training file: together exactly its examples, each once, in file order
    full = load_dataset(cfg(name="digits", validation=0.0), seed=1)
    assert len(a.validation) == 150
    assert rows(torch.cat([a.train, a.validation]), torch.cat([a.train_labels, a.validation_labels])) == (
        rows(full.train, full.train_labels))
    assert is_subsequence(a.train, full.train) and is_subsequence(a.validation, full.train)


@pytest.mark.parametrize("mode", ["threshold", "stochastic", "dynamic"])
def test_binarization_modes(mode):
    data = load_dataset(cfg(name="digits", binarize=mode), seed=0)
    is_binary = lambda t: bool(((t == 0) | (t == 1)).all())  # noqa: E731
    assert is_binary(data.validation) and is_binary(data.test)
    assert is_binary(data.train) == (mode != "dynamic")
    batch = data.train[:50]
    drawn = data.binarize_batch(batch, torch.Generator().manual_seed(0))
    assert is_binary(drawn)
    if mode == "dynamic":
        again = data.binarize_batch(batch, torch.Generator().manual_seed(1))
        assert not torch.equal(drawn, again)  # resampled, not fixed
    else:
        assert drawn is batch


def test_stochastic_binarization_is_seeded_and_unbiased():
    grey = load_dataset(cfg(name="digits"), seed=0).train
    a = load_dataset(cfg(name="digits", binarize="stochastic"), seed=0).train
    b = load_dataset(cfg(name="digits", binarize="stochastic"), seed=0).train
    c = load_dataset(cfg(name="digits", binarize="stochastic"), seed=1).train
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert bool(((a == 0) | (a == 1)).all())
    assert torch.equal(a[grey == 0], grey[grey == 0]) and torch.equal(a[grey == 1], grey[grey == 1])
    # P(pixel = 1) = its grey level: the mean of N Bernoulli draws, within 5 standard errors
    se = (grey * (1 - grey)).sum().sqrt().item() / grey.numel()
    assert abs(a.mean().item() - grey.mean().item()) < 5 * se


def test_threshold_binarization():
    grey = load_dataset(cfg(name="digits"), seed=0).train
    binary = load_dataset(cfg(name="digits", binarize="threshold", threshold=0.3), seed=0).train
    assert torch.equal(binary, (grey > 0.3).float())


def test_limit_keeps_the_first_examples():
    data = load_dataset(cfg(name="digits", limit=100, validation=0.2))
    assert len(data.train) == 80 and len(data.validation) == 20
    images, labels = digits_images()
    assert rows(torch.cat([data.train, data.validation]), torch.cat([data.train_labels, data.validation_labels])) == (
        rows(images[:100], labels[:100]))


# --------------------------------------------------------------------------- IDX / MNIST


def test_idx_round_trip_and_errors(tmp_path):
    array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    assert np.array_equal(parse_idx(idx_bytes(array), "x"), array)
    floats = np.linspace(0, 1, 6).astype(">f4").reshape(2, 3)
    assert np.allclose(parse_idx(idx_bytes(floats), "x"), floats)
    path = tmp_path / "a-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(idx_bytes(array)))
    assert np.array_equal(read_idx(path), array)
    with pytest.raises(DataError, match="not an IDX file \\(bad magic number\\)"):
        parse_idx(b"\x01\x02\x08\x01abcd", "f")
    with pytest.raises(DataError, match="announces shape \\(2, 3, 4\\) \\(40 bytes\\) but the file holds 30"):
        parse_idx(idx_bytes(array)[:30], "f")
    broken = tmp_path / "broken.gz"
    broken.write_bytes(b"not gzip at all")
    with pytest.raises(DataError, match="broken.gz: cannot read IDX file"):
        read_idx(broken)


@pytest.mark.parametrize("gz", [True, False])
def test_mnist_from_idx_files_in_data_dir(tmp_path, gz):
    arrays = write_idx_set(tmp_path / "mnist", gz=gz)
    data = load_dataset(cfg(name="mnist", dir=str(tmp_path), validation=0.0))
    assert data.train.shape == (30, 784) and data.test.shape == (10, 784)
    assert data.image_shape == (28, 28)
    # pixel for pixel, in file order (no validation split), labels alongside
    for split in ("train", "test"):
        expected = arrays[f"x_{split}"].reshape(-1, 784).astype(np.float32) / 255.0
        assert np.array_equal(getattr(data, split).numpy(), expected)
        assert getattr(data, f"{split}_labels").tolist() == arrays[f"y_{split}"].tolist()


def test_mnist_from_npz_and_environment_variable(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    arrays = {"x_train": rng.integers(0, 256, (20, 28, 28), dtype=np.uint8),
              "y_train": rng.integers(0, 10, 20, dtype=np.uint8),
              "x_test": rng.integers(0, 256, (5, 28, 28), dtype=np.uint8),
              "y_test": rng.integers(0, 10, 5, dtype=np.uint8)}
    np.savez(tmp_path / "mnist.npz", **arrays)
    monkeypatch.setenv("BOLTZKIT_DATA_DIR", str(tmp_path))
    data = load_dataset(cfg(name="mnist", validation=0.0))
    assert data.train.shape == (20, 784) and data.test.shape == (5, 784)
    for split in ("train", "test"):
        expected = arrays[f"x_{split}"].reshape(-1, 784).astype(np.float32) / 255.0
        assert np.array_equal(getattr(data, split).numpy(), expected)
        assert getattr(data, f"{split}_labels").tolist() == arrays[f"y_{split}"].tolist()


def test_missing_mnist_names_files_and_folders(tmp_path, monkeypatch):
    monkeypatch.delenv("BOLTZKIT_DATA_DIR", raising=False)
    monkeypatch.setattr(sources, "DEFAULT_CACHE", tmp_path / "cache")
    with pytest.raises(DataError) as info:
        load_dataset(cfg(name="mnist", dir=str(tmp_path / "data")))
    text = str(info.value)
    for part in ["MNIST not found", "mnist.npz", "train-images-idx3-ubyte[.gz]",
                 "t10k-labels-idx1-ubyte[.gz]", str(tmp_path / "data"), "--data-dir",
                 "BOLTZKIT_DATA_DIR", "data.download=true"]:
        assert part in text


def test_incomplete_idx_set_names_the_missing_file(tmp_path):
    write_idx_set(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match="incomplete: missing t10k-labels-idx1-ubyte\\[.gz\\]"):
        load_dataset(cfg(name="mnist", dir=str(tmp_path)))


def test_shared_mnist_loads_with_known_facts(mnist_path):
    raw = sources.load_npz(mnist_path)
    assert raw.x_train.shape == (60000, 28, 28) and raw.x_test.shape == (10000, 28, 28)
    assert raw.y_train[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert abs(raw.x_train.mean() / 255 - 0.1307) < 1e-3
    # the SHA-256 of each array's IDX encoding matches the table used to verify downloads
    expected = sources.IMAGE_SETS["mnist"].idx_sha256
    for key in ("x_test", "y_test"):
        assert hashlib.sha256(idx_bytes(raw.__dict__[key])).hexdigest() == expected[key]


def test_fashion_mnist_from_debian_package(monkeypatch, tmp_path):
    from pathlib import Path

    folder = Path("/usr/share/datasets/fashion-mnist")
    if not (folder / "t10k-images-idx3-ubyte.gz").is_file():
        pytest.skip("Debian's dataset-fashion-mnist is not installed")
    monkeypatch.delenv("BOLTZKIT_DATA_DIR", raising=False)
    monkeypatch.setattr(sources, "DEFAULT_CACHE", tmp_path)
    data = load_dataset(cfg(name="fashion-mnist", validation=0.0, limit=100))
    assert data.train.shape == (100, 784) and data.test.shape == (10000, 784)


def test_download_verifies_sha256(tmp_path, monkeypatch):
    arrays = {key: np.full((3, 28, 28) if key.startswith("x") else (3,), 7, np.uint8)
              for key in sources.IDX_FILES}
    payloads = {stem: gzip.compress(idx_bytes(arrays[key])) for key, stem in sources.IDX_FILES.items()}
    good = {key: hashlib.sha256(idx_bytes(a)).hexdigest() for key, a in arrays.items()}

    def fake_urlopen(url, timeout):
        return io.BytesIO(payloads[url.rsplit("/", 1)[1][:-3]])

    monkeypatch.setattr(sources.urllib.request, "urlopen", fake_urlopen)
    spec = sources.IMAGE_SETS["mnist"]
    monkeypatch.setitem(sources.IMAGE_SETS, "mnist", sources.ImageSet(
        spec.title, spec.npz_names, (), ("https://example.invalid/",), good))
    raw = sources.download_image_set("mnist", tmp_path / "ok")
    assert raw.x_train.shape == (3, 28, 28)
    for key in sources.IDX_FILES:  # the decoded payloads, byte for byte
        assert np.array_equal(raw.__dict__[key], arrays[key])
    assert (tmp_path / "ok" / "train-images-idx3-ubyte.gz").is_file()

    bad = dict(good, x_train="0" * 64)
    monkeypatch.setitem(sources.IMAGE_SETS, "mnist", sources.ImageSet(
        spec.title, spec.npz_names, (), ("https://example.invalid/",), bad))
    with pytest.raises(DataError, match="could not download MNIST file train-images-idx3-ubyte.gz.*does not match"):
        sources.download_image_set("mnist", tmp_path / "bad")
    assert not (tmp_path / "bad" / "train-images-idx3-ubyte.gz").exists()


# --------------------------------------------------------------------------- user files


def test_npz_user_file_single_array_and_split(tmp_path):
    x = np.random.default_rng(0).random((40, 6)).astype(np.float32)
    np.savez(tmp_path / "a.npz", x=x)
    data = load_dataset(cfg(name="npz", path=str(tmp_path / "a.npz"), validation=0.25))
    assert data.train.shape == (30, 6) and data.test is None and data.image_shape is None
    assert rows(torch.cat([data.train, data.validation])) == rows(torch.from_numpy(x))
    np.savez(tmp_path / "b.npz", feats_train=x, feats_test=x[:5])
    data = load_dataset(cfg(name="npz", path=str(tmp_path / "b.npz"), key="feats",
                            image_shape=[2, 3]))
    assert data.test.shape == (5, 6) and data.image_shape == (2, 3)
    assert np.array_equal(data.test.numpy(), x[:5])


def test_csv_user_file_with_columns_and_labels(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("a,b,label,c\n0,1,3,0.5\n1,0,4,0.25\n0.5,0.5,1,1\n1,1,0,0\n")
    data = load_dataset(cfg(name="csv", path=str(path), label_column="label", validation=0.0))
    assert data.train.shape == (4, 3)
    assert data.train_labels.tolist() == [3, 4, 1, 0]
    data = load_dataset(cfg(name="csv", path=str(path), columns=["c", "a"], validation=0.0))
    assert data.train[:, 0].tolist() == [0.5, 0.25, 1.0, 0.0]


def _write_npz(tmp_path, x, name="f.npz"):
    np.savez(tmp_path / name, x=x)
    return str(tmp_path / name)


@pytest.mark.parametrize(
    "array, message",
    [
        (np.array([[0.1, np.nan], [0.2, 0.3]]), "1 non-finite value\\(s\\) \\(NaN or inf\\), first at example 0, feature 1"),
        (np.array([[0.1, 0.2], [np.inf, -np.inf]]), "2 non-finite value\\(s\\)"),
        (np.zeros(5), "expected a 2-d \\(examples, features\\) or 3-d .* got shape \\(5,\\)"),
        (np.zeros((2, 2, 2, 2)), "got shape \\(2, 2, 2, 2\\)"),
        (np.zeros((0, 4)), "the data set is empty \\(shape \\(0, 4\\)\\)"),
        (np.array([[0.0, 2.5], [0.1, 0.2]]), "values must lie in \\[0, 1\\] for Bernoulli visible units, found min 0 and max 2.5"),
        (np.array([[-0.5, 0.5], [0.1, 0.2]]), "found min -0.5 and max 0.5"),
        (np.array([["a", "b"]]), "expected numeric data, got dtype <U1"),
    ],
)
def test_bad_data_files_give_clear_errors(tmp_path, array, message):
    path = _write_npz(tmp_path, array)
    with pytest.raises(DataError, match=message) as info:
        load_dataset(cfg(name="npz", path=path, validation=0.0))
    assert str(info.value).startswith(path)


def test_bad_user_files(tmp_path):
    with pytest.raises(DataError, match="missing.npz: file not found"):
        load_dataset(cfg(name="npz", path=str(tmp_path / "missing.npz")))
    path = _write_npz(tmp_path, np.zeros((3, 2)))
    with pytest.raises(DataError, match="no array 'pixels' or 'pixels_train'; arrays in the file: x"):
        load_dataset(cfg(name="npz", path=path, key="pixels"))
    garbage = tmp_path / "g.npz"
    garbage.write_bytes(b"garbage")
    with pytest.raises(DataError, match="g.npz: not a readable .npz file"):
        load_dataset(cfg(name="npz", path=str(garbage)))
    csv_path = tmp_path / "t.csv"
    csv_path.write_text("a,b\n0,1\nx,0\n")
    with pytest.raises(DataError, match="t.csv: could not convert string 'x' to float64"):
        load_dataset(cfg(name="csv", path=str(csv_path)))
    with pytest.raises(DataError, match="t.csv: no column 'z'; columns: a, b"):
        load_dataset(cfg(name="csv", path=str(csv_path), columns=["z"]))
    empty = tmp_path / "e.csv"
    empty.write_text("")
    with pytest.raises(DataError, match="e.csv: empty file"):
        load_dataset(cfg(name="csv", path=str(empty)))


def test_train_test_width_mismatch_and_image_shape_mismatch(tmp_path):
    np.savez(tmp_path / "w.npz", x_train=np.zeros((4, 6)), x_test=np.zeros((2, 5)))
    with pytest.raises(DataError, match="the test data have 5 features but the training data have 6"):
        load_dataset(cfg(name="npz", path=str(tmp_path / "w.npz")))
    path = _write_npz(tmp_path, np.zeros((4, 6)))
    with pytest.raises(ConfigError, match="data.image_shape \\[2, 2\\] has 4 pixels but the data have 6"):
        load_dataset(cfg(name="npz", path=path, image_shape=[2, 2]))


def test_unit_interval_check_can_be_skipped_for_real_valued_models(tmp_path):
    path = _write_npz(tmp_path, np.array([[0.0, 2.5], [0.1, 0.2], [3.0, 1.0]]))
    data = load_dataset(cfg(name="npz", path=path, validation=0.0), unit_interval=False)
    assert data.train.max() == 3.0
