"""Where raw arrays come from: embedded digits, MNIST-like IDX/npz sets, user files.

Each loader returns :class:`RawData` with uint8 or float arrays as found in the files;
:mod:`boltzkit.data.dataset` turns them into checked, split, binarized tensors.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import os
import tempfile
import urllib.request
import warnings
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DataError
from .idx import parse_idx, read_idx, read_idx_bytes

DATA_DIR_ENV = "BOLTZKIT_DATA_DIR"
DEFAULT_CACHE = Path.home() / ".cache" / "boltzkit"


@dataclass
class RawData:
    x_train: np.ndarray
    x_test: np.ndarray | None
    y_train: np.ndarray | None = None
    y_test: np.ndarray | None = None
    source: str = ""
    """Where the data came from (a file or folder), for error messages and logs."""


def load_digits_raw() -> RawData:
    """scikit-learn's 8x8 digits (1,797 images, values 0..16) scaled to [0, 1].

    The first 1,500 images are the training set and the last 297 the test set; the
    order is scikit-learn's, so the split is the same on every machine.
    """
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = (bunch.images / 16.0).astype(np.float32)
    return RawData(images[:1500], images[1500:], bunch.target[:1500], bunch.target[1500:],
                   source="scikit-learn digits")


def load_potts_raw(length: int, states: int, coupling: float, field: float, examples: int,
                   seed: int) -> RawData:
    """Exact samples of a Potts chain (:mod:`boltzkit.data.potts`), one-hot encoded; the test
    set (a fifth of ``examples``) is drawn with another seed."""
    from .potts import PottsChain, one_hot

    chain = PottsChain(length, states, coupling, field)
    train = one_hot(chain.sample(examples, seed), states).numpy()
    test = one_hot(chain.sample(max(1, examples // 5), seed + 1), states).numpy()
    return RawData(train, test, source=f"Potts chain (L={length}, k={states}, J={coupling}, h={field})")


# --------------------------------------------------------------------------- MNIST-like

IDX_FILES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}


@dataclass(frozen=True)
class ImageSet:
    """A 60,000/10,000 28x28 image set distributed as four IDX files."""

    title: str
    npz_names: tuple[str, ...]
    system_dirs: tuple[str, ...]
    mirrors: tuple[str, ...]
    idx_sha256: dict[str, str]
    """SHA-256 of each *decompressed* IDX file, so any re-compression still verifies."""


IMAGE_SETS = {
    "mnist": ImageSet(
        title="MNIST",
        npz_names=("mnist.npz",),
        system_dirs=(),
        mirrors=(
            "https://ossci-datasets.s3.amazonaws.com/mnist/",
            "https://storage.googleapis.com/cvdf-datasets/mnist/",
        ),
        idx_sha256={
            "x_train": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
            "y_train": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
            "x_test": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
            "y_test": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
        },
    ),
    "fashion-mnist": ImageSet(
        title="Fashion-MNIST",
        npz_names=("fashion-mnist.npz", "fashion_mnist.npz"),
        system_dirs=("/usr/share/datasets/fashion-mnist",),
        mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
        idx_sha256={
            "x_train": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
            "y_train": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
            "x_test": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
            "y_test": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
        },
    ),
}


def data_dirs(name: str, data_dir: str | None) -> list[Path]:
    """Folders searched for ``name``, in order: ``data.dir`` (or ``--data-dir``), then
    ``$BOLTZKIT_DATA_DIR``, then ``~/.cache/boltzkit``, each also with a ``name``
    subfolder, then system folders (Debian's dataset packages)."""
    roots = [Path(d).expanduser() for d in (data_dir, os.environ.get(DATA_DIR_ENV)) if d]
    roots.append(DEFAULT_CACHE)
    dirs: list[Path] = []
    for root in roots:
        dirs += [root, root / name]
    dirs += [Path(d) for d in IMAGE_SETS[name].system_dirs]
    return list(dict.fromkeys(dirs))


def _idx_path(folder: Path, stem: str) -> Path | None:
    for candidate in (folder / stem, folder / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    return None


def load_image_set(name: str, data_dir: str | None, download: bool = False) -> RawData:
    """Load MNIST or Fashion-MNIST from an ``.npz`` or the four IDX files."""
    spec = IMAGE_SETS[name]
    folders = data_dirs(name, data_dir)
    for folder in folders:
        for npz_name in spec.npz_names:
            if (folder / npz_name).is_file():
                return load_npz(folder / npz_name)
        found = {key: _idx_path(folder, stem) for key, stem in IDX_FILES.items()}
        if all(found.values()):
            arrays = {key: read_idx(path) for key, path in found.items()}
            return RawData(arrays["x_train"], arrays["x_test"], arrays["y_train"],
                           arrays["y_test"], source=str(folder))
        if any(found.values()):
            missing = [IDX_FILES[k] + "[.gz]" for k, p in found.items() if p is None]
            raise DataError(f"{spec.title} in {folder} is incomplete: missing {', '.join(missing)}")
    if download:
        target = Path(data_dir or os.environ.get(DATA_DIR_ENV) or DEFAULT_CACHE).expanduser()
        return download_image_set(name, target / name)
    files = ", ".join(f"{stem}[.gz]" for stem in IDX_FILES.values())
    raise DataError(
        f"{spec.title} not found. Looked for {' or '.join(spec.npz_names)} or the IDX files "
        f"({files}) in: {', '.join(str(f) for f in folders)}. Put the files in one of these "
        f"folders, point --data-dir or {DATA_DIR_ENV} at them, or set data.download=true "
        f"when online."
    )


def download_image_set(name: str, folder: Path) -> RawData:
    """Fetch the four gzipped IDX files into ``folder``, verifying each SHA-256."""
    spec = IMAGE_SETS[name]
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for key, stem in IDX_FILES.items():
        path = folder / f"{stem}.gz"
        if not path.is_file():
            _download_verified(spec, key, stem, path)
        raw = read_idx_bytes(path)
        _verify(raw, spec.idx_sha256[key], path)
        arrays[key] = parse_idx(raw, str(path))
    return RawData(arrays["x_train"], arrays["x_test"], arrays["y_train"], arrays["y_test"],
                   source=str(folder))


def _download_verified(spec: ImageSet, key: str, stem: str, path: Path) -> None:
    errors = []
    for mirror in spec.mirrors:
        url = f"{mirror}{stem}.gz"
        try:
            print(f"downloading {url}")
            with urllib.request.urlopen(url, timeout=60) as response:
                payload = response.read()
            _verify(gzip.decompress(payload), spec.idx_sha256[key], url)
        except (OSError, DataError, EOFError) as err:
            errors.append(f"{url}: {err}")
            continue
        with tempfile.NamedTemporaryFile(dir=path.parent, delete=False) as tmp:
            tmp.write(payload)
        os.replace(tmp.name, path)
        return
    raise DataError(
        f"could not download {spec.title} file {stem}.gz ({'; '.join(errors)}); "
        f"put it in {path.parent} by hand"
    )


def _verify(raw: bytes, expected: str, source: object) -> None:
    digest = hashlib.sha256(raw).hexdigest()
    if digest != expected:
        raise DataError(f"{source}: SHA-256 {digest} does not match the expected {expected}")


# --------------------------------------------------------------------------- user files


def _open_npz(path: Path):
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise DataError(f"{path}: not a readable .npz file: {err}") from None


def load_npz(path: Path, key: str = "x") -> RawData:
    """An ``.npz`` holding ``key`` (all training data) or ``key_train`` and ``key_test``."""
    try:
        return _read_npz(path, key)
    except (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile, zlib.error) as err:
        if isinstance(err, DataError):
            raise
        # truncated or corrupted archives, bad headers, pickled object arrays, ...
        detail = " ".join(str(err).split())[:200] or type(err).__name__
        raise DataError(f"{path}: not a readable .npz file ({detail}); boltzkit reads numeric "
                        "arrays saved with numpy.savez, never pickled objects") from None


def _read_npz(path: Path, key: str) -> RawData:
    with _open_npz(path) as archive:
        names = list(archive.files)
        label = "y" if key == "x" else f"{key}_labels"
        if f"{key}_train" in names:
            x_train = archive[f"{key}_train"]
            x_test = archive[f"{key}_test"] if f"{key}_test" in names else None
            y_train = archive["y_train"] if label == "y" and "y_train" in names else None
            y_test = archive["y_test"] if label == "y" and "y_test" in names else None
        elif key in names:
            x_train, x_test = archive[key], None
            y_train, y_test = (archive[label] if label in names else None), None
        else:
            raise DataError(
                f"{path}: no array {key!r} or {key + '_train'!r}; arrays in the file: "
                f"{', '.join(names) or 'none'} (choose one with data.key)"
            )
    return RawData(x_train, x_test, y_train, y_test, source=str(path))


def load_csv(
    path: Path, columns: list[str] | None = None, label_column: str | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """Numeric columns of a CSV file with a header row; returns ``(features, labels)``."""
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            header = next(csv.reader(handle), None)
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: not UTF-8 text (byte {err.start}); save the CSV as UTF-8") from None
    except csv.Error as err:
        raise DataError(f"{path}: not a readable CSV file ({err})") from None
    if not header:
        raise DataError(f"{path}: empty file (expected a header row of column names)")
    header = [h.strip() for h in header]
    repeated = sorted({h for h in header if header.count(h) > 1})
    if repeated:
        raise DataError(f"{path}: column names appear more than once: {', '.join(repeated)}; "
                        "each column needs its own name")
    wanted = columns if columns is not None else [h for h in header if h != label_column]
    for name in [*wanted, *([label_column] if label_column else [])]:
        if name not in header:
            raise DataError(f"{path}: no column {name!r}; columns: {', '.join(header)}")
    if not wanted:
        raise DataError(f"{path}: no feature columns selected")
    index = [header.index(name) for name in wanted]
    try:
        with warnings.catch_warnings():  # an empty table is reported below, as an error
            warnings.simplefilter("ignore", UserWarning)
            table = np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2, encoding="utf-8",
                               usecols=index + ([header.index(label_column)] if label_column else []))
    except (ValueError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: {' '.join(str(err).split())[:200]}") from None
    if len(table) == 0:
        raise DataError(f"{path}: no data rows below the header")
    if label_column:
        return table[:, :-1], table[:, -1]
    return table, None


def load_user_file(
    path: str, kind: str, key: str, columns: list[str] | None, label_column: str | None
) -> RawData:
    file = Path(path).expanduser()
    if kind == "npz":
        return load_npz(file, key)
    x, y = load_csv(file, columns, label_column)
    return RawData(x, None, y, None, source=str(file))
