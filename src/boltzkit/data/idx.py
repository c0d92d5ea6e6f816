"""Reader for the IDX format of MNIST and Fashion-MNIST (optionally gzipped).

Layout (LeCun et al., http://yann.lecun.com/exdb/mnist/): two zero bytes, a type byte
(0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32, 0x0D float32, 0x0E float64), the number
of dimensions, then each dimension as a big-endian uint32, then the data, big-endian.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from ..errors import DataError

_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx_bytes(path: Path) -> bytes:
    """The raw (decompressed) bytes of an IDX file."""
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as handle:
                return handle.read()
        return path.read_bytes()
    except (OSError, EOFError) as err:
        raise DataError(f"{path}: cannot read IDX file: {err}") from None


def parse_idx(raw: bytes, source: str) -> np.ndarray:
    """Decode IDX bytes into an array; errors name ``source``."""
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _TYPES:
        raise DataError(f"{source}: not an IDX file (bad magic number)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{source}: truncated IDX header")
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_TYPES[raw[2]])
    expected = header + int(np.prod(shape)) * dtype.itemsize
    if len(raw) != expected:
        raise DataError(
            f"{source}: IDX header announces shape {shape} ({expected} bytes) "
            f"but the file holds {len(raw)} bytes"
        )
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def read_idx(path: Path) -> np.ndarray:
    return parse_idx(read_idx_bytes(path), str(path))
