"""Data sets: embedded digits, MNIST / Fashion-MNIST files, user ``.npz`` / ``.csv`` files."""

from .dataset import Dataset, load_dataset
from .sources import DATA_DIR_ENV, IMAGE_SETS, RawData

__all__ = ["DATA_DIR_ENV", "IMAGE_SETS", "Dataset", "RawData", "load_dataset"]
