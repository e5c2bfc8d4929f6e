"""A reader of the IDX files of (Fashion-)MNIST, with clear errors for bad files."""

import gzip
import os

import numpy as np

IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


class IDXError(ValueError):
    """An IDX file is missing, truncated or not an IDX file."""


def read_idx(path):
    """The array stored in an IDX file (gzipped or not).

    The header is two zero bytes, a dtype code, the number of dimensions, then
    one big-endian uint32 per dimension (LeCun et al., the MNIST file format).
    """
    if not os.path.exists(path):
        raise IDXError(f"IDX file not found: {path}")
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as e:
        raise IDXError(f"cannot read IDX file {path}: {e}") from e
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in IDX_DTYPES:
        raise IDXError(
            f"{path} is not an IDX file: expected the magic bytes 00 00 <dtype> <ndim>, "
            f"got {raw[:4].hex(' ') or 'an empty file'}"
        )
    dtype = np.dtype(IDX_DTYPES[raw[2]])
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise IDXError(f"{path} is truncated: its header needs {header} bytes, got {len(raw)}")
    dims = tuple(int(d) for d in np.frombuffer(raw[4:header], ">u4"))
    expected = int(np.prod(dims)) * dtype.itemsize
    if len(raw) - header != expected:
        raise IDXError(
            f"{path} is corrupt: dims {dims} need {expected} data bytes, got {len(raw) - header}"
        )
    return np.frombuffer(raw[header:], dtype).reshape(dims)
