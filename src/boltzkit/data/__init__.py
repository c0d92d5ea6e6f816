"""Data sets: embedded digits, MNIST / Fashion-MNIST files, user ``.npz`` / ``.csv`` files."""

from .dataset import DataLike, Dataset, as_dataset, load_dataset
from .sources import DATA_DIR_ENV, IMAGE_SETS, RawData

__all__ = ["DATA_DIR_ENV", "IMAGE_SETS", "DataLike", "Dataset", "RawData", "as_dataset", "load_dataset"]
