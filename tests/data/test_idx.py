"""IDX reading and writing: round trips for every dtype code, and every error path."""
from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from scratchgen.data import IDX_DTYPES, IDXFormatError, load_idx, parse_idx, save_idx

DTYPES = [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64]


def _idx_bytes(array: np.ndarray, code: int) -> bytes:
    """An IDX file written by hand (independently of save_idx)."""
    header = bytes([0, 0, code, array.ndim]) + b"".join(struct.pack(">I", d) for d in array.shape)
    return header + array.astype(IDX_DTYPES[code]).tobytes()


@pytest.mark.parametrize("code", sorted(IDX_DTYPES))
@pytest.mark.parametrize("compressed", [False, True])
def test_hand_written_file_reads_back(tmp_path, code, compressed):
    rng = np.random.default_rng(code)
    dtype = IDX_DTYPES[code].newbyteorder("=")
    if dtype.kind == "f":
        array = rng.standard_normal((3, 4, 5)).astype(dtype)
    else:
        info = np.iinfo(dtype)
        array = rng.integers(info.min, info.max, size=(3, 4, 5), endpoint=True).astype(dtype)
    blob = _idx_bytes(array, code)
    path = tmp_path / ("a.idx.gz" if compressed else "a.idx")
    path.write_bytes(gzip.compress(blob) if compressed else blob)
    out = load_idx(path)
    assert out.dtype == dtype and out.dtype.isnative
    assert out.shape == array.shape
    np.testing.assert_array_equal(out, array)
    out[0, 0, 0] = 0  # writable


def test_gzip_detected_by_magic_not_name(tmp_path):
    array = np.arange(6, dtype=np.uint8).reshape(2, 3)
    (tmp_path / "plain.gz").write_bytes(_idx_bytes(array, 0x08))  # misleading name
    (tmp_path / "packed").write_bytes(gzip.compress(_idx_bytes(array, 0x08)))
    np.testing.assert_array_equal(load_idx(tmp_path / "plain.gz"), array)
    np.testing.assert_array_equal(load_idx(tmp_path / "packed"), array)


@settings(max_examples=40, deadline=None)
@given(
    array=hnp.arrays(
        dtype=st.sampled_from(DTYPES),
        shape=hnp.array_shapes(min_dims=0, max_dims=5, min_side=0, max_side=4),
        elements={"allow_nan": False},
    ),
    compress=st.booleans(),
)
def test_round_trip_any_shape(tmp_path_factory, array, compress):
    path = tmp_path_factory.mktemp("idx") / "x.idx"
    save_idx(path, array, compress=compress)
    out = load_idx(path)
    assert out.dtype == array.dtype and out.shape == array.shape
    np.testing.assert_array_equal(out, array)


def test_save_idx_compresses_by_suffix(tmp_path):
    save_idx(tmp_path / "x.gz", np.zeros(3, np.uint8))
    assert (tmp_path / "x.gz").read_bytes()[:2] == b"\x1f\x8b"


def test_save_rejects_unknown_dtype(tmp_path):
    with pytest.raises(TypeError, match="int64"):
        save_idx(tmp_path / "x", np.zeros(3, np.int64))


def test_missing_file_names_path_and_hints_data_dir(tmp_path):
    path = tmp_path / "nope-idx1-ubyte"
    with pytest.raises(FileNotFoundError) as info:
        load_idx(path)
    assert str(path) in str(info.value) and "data_dir=" in str(info.value)


@pytest.mark.parametrize("head", [b"\x00\x00\x0a\x01", b"\x12\x34\x08\x01", b"\x00\x00\x07\x01"])
def test_wrong_magic_prints_the_bytes(tmp_path, head):
    path = tmp_path / "bad"
    path.write_bytes(head + b"\x00\x00\x00\x01" + b"\x00")
    with pytest.raises(IDXFormatError) as info:
        load_idx(path)
    message = str(info.value)
    assert str(path) in message and "wrong magic" in message
    assert " ".join(f"{b:02x}" for b in head) in message


def test_truncated_data_says_expected_and_found(tmp_path):
    blob = _idx_bytes(np.zeros((4, 5), np.int16), 0x0B)
    path = tmp_path / "short"
    path.write_bytes(blob[:-7])
    with pytest.raises(IDXFormatError) as info:
        load_idx(path)
    message = str(info.value)
    assert str(path) in message and "expected 40 bytes" in message and "found 33" in message


@pytest.mark.parametrize("n", [0, 3])
def test_truncated_header(tmp_path, n):
    path = tmp_path / "tiny"
    path.write_bytes(b"\x00\x00\x08\x03\x00\x00\x00\x02"[: n if n else 6])
    with pytest.raises(IDXFormatError, match="truncated"):
        load_idx(path)


def test_trailing_garbage(tmp_path):
    path = tmp_path / "long"
    path.write_bytes(_idx_bytes(np.ones(10, np.uint8), 0x08) + b"junk")
    with pytest.raises(IDXFormatError) as info:
        load_idx(path)
    message = str(info.value)
    assert str(path) in message and "trailing" in message and "4 extra" in message


def test_truncated_gzip_stream(tmp_path):
    blob = gzip.compress(_idx_bytes(np.arange(1000, dtype=np.int32), 0x0C))
    path = tmp_path / "cut.gz"
    path.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(IDXFormatError, match="gzip"):
        load_idx(path)


def test_parse_idx_names_the_source():
    with pytest.raises(IDXFormatError, match="my-source"):
        parse_idx(b"\x01\x02\x03\x04", "my-source")
