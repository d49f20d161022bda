"""Reading and writing the IDX format (the file format of MNIST and Fashion-MNIST).

An IDX file is a header followed by the raw array, every number big-endian:

    bytes 0-1   0x00 0x00
    byte  2     dtype code: 0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32,
                            0x0D float32, 0x0E float64
    byte  3     number of dimensions d
    4*d bytes   the size of each dimension, as big-endian uint32
    the data    prod(sizes) items of that dtype, row-major (C order), big-endian

Files may be gzip-compressed; compression is detected by the gzip magic bytes ``1f 8b``,
not by the file name.
"""
from __future__ import annotations

import gzip
import os
import struct
import zlib
from pathlib import Path

import numpy as np

__all__ = [
    "IDX_DTYPES", "IDXFormatError", "decompress_if_gzip", "load_idx", "parse_idx",
    "read_file_bytes", "save_idx",
]

#: IDX dtype code -> big-endian NumPy dtype (code 0x0A is unassigned in the format).
IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

_GZIP_MAGIC = b"\x1f\x8b"


class IDXFormatError(ValueError):
    """A file that is not a well-formed IDX file (bad magic, truncated, trailing data, bad gzip)."""


def _hex(data: bytes) -> str:
    return " ".join(f"{b:02x}" for b in data)


def read_file_bytes(path: str | os.PathLike) -> bytes:
    """Return the content of ``path``, decompressed when it starts with the gzip magic ``1f 8b``.

    Raises:
        FileNotFoundError: the file does not exist (the message names it and says how to point
            the dataset classes at local files with ``data_dir=``).
        IDXFormatError: the gzip stream is truncated or corrupt.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"IDX file not found: {path}. If you already have the dataset files, pass the folder "
            f"that holds them as data_dir= (e.g. MNIST(data_dir='path/to/mnist'))"
        )
    return decompress_if_gzip(path.read_bytes(), str(path))


def decompress_if_gzip(raw: bytes, name: str = "<bytes>") -> bytes:
    """``raw`` decompressed if it starts with the gzip magic bytes ``1f 8b``, else ``raw``.

    Raises:
        IDXFormatError: the gzip stream is truncated or corrupt (the message names ``name``).
    """
    if raw[:2] != _GZIP_MAGIC:
        return raw
    try:
        return gzip.decompress(raw)
    except (EOFError, OSError, zlib.error) as exc:
        raise IDXFormatError(
            f"{name}: starts with the gzip magic bytes 1f 8b but is not a complete gzip stream "
            f"({exc}); the file is probably truncated or corrupt: delete it and get it again"
        ) from exc


def parse_idx(data: bytes, name: str = "<bytes>") -> np.ndarray:
    """Decode the (already decompressed) bytes of an IDX file into a native-endian array.

    Args:
        data: the file content.
        name: how to name the source in error messages (usually the path).
    """
    if len(data) < 4:
        raise IDXFormatError(
            f"{name}: truncated: an IDX file starts with a 4-byte magic number, "
            f"found only {len(data)} byte(s) ({_hex(data) or 'empty file'})"
        )
    magic = data[:4]
    zero0, zero1, code, ndim = magic
    if zero0 != 0 or zero1 != 0 or code not in IDX_DTYPES:
        codes = ", ".join(f"{c:02x}" for c in IDX_DTYPES)
        raise IDXFormatError(
            f"{name}: wrong magic number: found bytes {_hex(magic)}, expected 00 00 <dtype code, "
            f"one of {codes}> <number of dimensions>; this is not an IDX file"
        )
    header_len = 4 + 4 * ndim
    if len(data) < header_len:
        raise IDXFormatError(
            f"{name}: truncated header: {ndim} dimension(s) need {4 * ndim} bytes of sizes after "
            f"the magic number, found {len(data) - 4}"
        )
    shape = struct.unpack(f">{ndim}I", data[4:header_len])
    dtype = IDX_DTYPES[code]
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    found = len(data) - header_len
    if found < expected:
        raise IDXFormatError(
            f"{name}: truncated: the header says shape {tuple(shape)} of {dtype.name}, so "
            f"expected {expected} bytes of data, found {found}"
        )
    if found > expected:
        raise IDXFormatError(
            f"{name}: trailing garbage: the header says shape {tuple(shape)} of {dtype.name}, so "
            f"expected {expected} bytes of data, found {found} ({found - expected} extra byte(s))"
        )
    array = np.frombuffer(data, dtype=dtype, count=expected // dtype.itemsize, offset=header_len)
    # astype copies into a writable, native-endian array.
    return array.astype(dtype.newbyteorder("="), copy=True).reshape(shape)


def load_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (raw or gzip-compressed) into a NumPy array of its shape and dtype.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        IDXFormatError: wrong magic number, truncated header or data, trailing bytes, bad gzip.
    """
    return parse_idx(read_file_bytes(path), str(path))


def save_idx(path: str | os.PathLike, array: np.ndarray, compress: bool | None = None) -> None:
    """Write ``array`` as an IDX file, gzip-compressed when ``compress`` (default: ``.gz`` name).

    The array's dtype must be one the format knows: uint8, int8, int16, int32, float32, float64.
    """
    array = np.asarray(array)
    codes = {dt.newbyteorder("="): code for code, dt in IDX_DTYPES.items()}
    native = array.dtype.newbyteorder("=")
    if native not in codes:
        raise TypeError(
            f"IDX cannot store dtype {array.dtype}: use one of uint8, int8, int16, int32, "
            f"float32, float64"
        )
    if array.ndim > 255:
        raise ValueError(f"IDX stores at most 255 dimensions, the array has {array.ndim}")
    code = codes[native]
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + np.ascontiguousarray(array, dtype=IDX_DTYPES[code]).tobytes()
    path = Path(path)
    if compress is None:
        compress = path.suffix == ".gz"
    if compress:
        payload = gzip.compress(payload, mtime=0)
    path.write_bytes(payload)
