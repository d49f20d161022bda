"""MNIST / Fashion-MNIST: local folders, cache and download (mocked: no network), checksums."""
from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import numpy as np
import pytest

import scratchgen.data.mnist as mnist_module
from scratchgen.data import MNIST, ChecksumError, DataLoader, FashionMNIST, IDXFormatError, save_idx

SHARED_MNIST = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "mnist"
STEMS = {
    "train-images": "train-images-idx3-ubyte",
    "train-labels": "train-labels-idx1-ubyte",
    "test-images": "t10k-images-idx3-ubyte",
    "test-labels": "t10k-labels-idx1-ubyte",
}


def _fake_files(folder: Path, n_train: int = 6, n_test: int = 4, gz: bool = True) -> None:
    """Tiny stand-ins of the four files (the shape check is relaxed by the caller)."""
    rng = np.random.default_rng(0)
    suffix = ".gz" if gz else ""
    for split, n in (("train", n_train), ("test", n_test)):
        save_idx(folder / (STEMS[f"{split}-images"] + suffix),
                 rng.integers(0, 256, (n, 28, 28)).astype(np.uint8))
        save_idx(folder / (STEMS[f"{split}-labels"] + suffix), (np.arange(n) % 10).astype(np.uint8))


@pytest.fixture
def small_mnist(monkeypatch):
    """MNIST with the expected shapes shrunk to the fake files' and no known checksums."""
    specs = {k: mnist_module._FileSpec(v.stem, (6 if k.startswith("train") else 4,) + v.shape[1:])
             for k, v in MNIST.files.items()}
    monkeypatch.setattr(MNIST, "files", specs)
    return specs


def test_data_dir_reads_gz_and_raw(tmp_path, small_mnist):
    for gz in (True, False):
        folder = tmp_path / f"gz{gz}"
        folder.mkdir()
        _fake_files(folder, gz=gz)
        train = MNIST(data_dir=folder)
        test = MNIST(data_dir=folder, train=False)
        assert train.images.shape == (6, 1, 28, 28) and train.images.dtype == np.uint8
        assert train.labels.dtype == np.int64 and len(test) == 4
        image, label = train[3]
        assert image.shape == (1, 28, 28) and image.dtype == np.uint8
        assert label == 3 and np.asarray(label).dtype == np.int64


def test_data_dir_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        MNIST(data_dir=tmp_path)
    assert str(tmp_path) in str(info.value) and "train-images-idx3-ubyte" in str(info.value)
    with pytest.raises(FileNotFoundError, match="not a folder"):
        MNIST(data_dir=tmp_path / "absent")


def test_cache_without_download_explains(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        MNIST(root=tmp_path, download=False)
    assert "data_dir=" in str(info.value) and str(tmp_path / "mnist") in str(info.value)


def test_env_var_sets_cache_root(tmp_path, monkeypatch, small_mnist):
    monkeypatch.setenv("SCRATCHGEN_DATA", str(tmp_path))
    (tmp_path / "mnist").mkdir()
    _fake_files(tmp_path / "mnist")
    assert MNIST(download=False).folder == tmp_path / "mnist"


def _serve(folder: Path, calls: list[str]):
    """A stand-in for the network: copies files from ``folder`` by name."""
    def fetch(url: str, dest: Path, timeout: float = 60.0) -> None:
        calls.append(url)
        name = url.rsplit("/", 1)[1]
        Path(dest).write_bytes((folder / name).read_bytes())
    return fetch


def test_download_writes_cache_atomically(tmp_path, monkeypatch, small_mnist):
    served = tmp_path / "served"
    served.mkdir()
    _fake_files(served)
    calls: list[str] = []
    monkeypatch.setattr(mnist_module, "_fetch", _serve(served, calls))
    ds = MNIST(root=tmp_path / "cache")
    assert len(ds) == 6 and len(calls) == 2
    assert calls[0] == MNIST.mirrors[0] + "train-images-idx3-ubyte.gz"
    cached = sorted(p.name for p in (tmp_path / "cache" / "mnist").iterdir())
    assert cached == ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"]  # no .part left
    MNIST(root=tmp_path / "cache")
    assert len(calls) == 2  # second time from the cache


def test_download_falls_back_to_next_mirror(tmp_path, monkeypatch, small_mnist):
    served = tmp_path / "served"
    served.mkdir()
    _fake_files(served)
    calls: list[str] = []
    good = _serve(served, calls)

    def flaky(url, dest, timeout=60.0):
        if url.startswith(MNIST.mirrors[0]):
            calls.append(url)
            Path(dest).write_bytes(b"partial")
            raise OSError("connection reset")
        good(url, dest)

    monkeypatch.setattr(mnist_module, "_fetch", flaky)
    assert len(MNIST(root=tmp_path / "cache", train=False)) == 4
    assert [u.startswith(MNIST.mirrors[1]) for u in calls] == [False, True, False, True]
    assert not list((tmp_path / "cache" / "mnist").glob("*.part"))


def test_download_all_mirrors_fail(tmp_path, monkeypatch):
    def offline(url, dest, timeout=60.0):
        raise OSError("no network")

    monkeypatch.setattr(mnist_module, "_fetch", offline)
    with pytest.raises(RuntimeError) as info:
        MNIST(root=tmp_path)
    message = str(info.value)
    assert all(m in message for m in MNIST.mirrors) and "data_dir=" in message
    assert not list((tmp_path / "mnist").iterdir())


def test_download_checksum_mismatch_names_file_and_both_sums(tmp_path, monkeypatch):
    served = tmp_path / "served"
    served.mkdir()
    _fake_files(served)  # not the real MNIST: its md5 cannot match
    monkeypatch.setattr(mnist_module, "_fetch", _serve(served, []))
    with pytest.raises(ChecksumError) as info:
        MNIST(root=tmp_path / "cache")
    message = str(info.value)
    found = hashlib.md5(gzip.decompress((served / "train-images-idx3-ubyte.gz").read_bytes()))
    assert "train-images-idx3-ubyte.gz" in message
    assert found.hexdigest() in message and "6bbc9ace898e44ae57da46a324031adb" in message
    assert not list((tmp_path / "cache" / "mnist").iterdir())  # nothing kept


def test_local_checksum_mismatch_and_verify_false(tmp_path):
    _fake_files(tmp_path)
    with pytest.raises(ChecksumError) as info:
        MNIST(data_dir=tmp_path)
    assert str(tmp_path / "train-images-idx3-ubyte.gz") in str(info.value)
    assert "verify=False" in str(info.value)
    with pytest.raises(ValueError, match="shape"):  # unchecked, but the shape is still wrong
        MNIST(data_dir=tmp_path, verify=False)


def test_corrupt_local_file(tmp_path, small_mnist):
    _fake_files(tmp_path)
    (tmp_path / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(b"\x00\x00\x08\x01\x00"))
    with pytest.raises(IDXFormatError, match="train-labels"):
        MNIST(data_dir=tmp_path)


def test_fashion_mnist_checks_gz_md5(tmp_path, monkeypatch):
    served = tmp_path / "served"
    served.mkdir()
    _fake_files(served)
    monkeypatch.setattr(mnist_module, "_fetch", _serve(served, []))
    with pytest.raises(ChecksumError, match="8d4fb7e6c68d591d4c3dfef9ec88bf0d"):
        FashionMNIST(root=tmp_path / "cache")
    assert FashionMNIST.classes[9] == "Ankle boot"


@pytest.mark.skipif(not SHARED_MNIST.is_dir(), reason=f"real MNIST not found at {SHARED_MNIST}")
def test_real_mnist_from_shared_folder():
    train = MNIST(data_dir=SHARED_MNIST)  # verify=True: md5 of every file checked
    test = MNIST(data_dir=SHARED_MNIST, train=False)
    assert train.images.shape == (60000, 1, 28, 28) and test.images.shape == (10000, 1, 28, 28)
    assert train.images.dtype == np.uint8 and train.labels.dtype == np.int64
    counts = np.bincount(train.labels, minlength=10)
    assert counts.sum() == 60000 and counts.min() > 5000
    assert np.bincount(test.labels, minlength=10).sum() == 10000
    assert train.images.max() == 255 and train.images.min() == 0
    for name, spec in MNIST.files.items():
        data = gzip.decompress((SHARED_MNIST / (spec.stem + ".gz")).read_bytes())
        assert hashlib.md5(data).hexdigest() == spec.md5_raw, name
    images, labels = next(iter(DataLoader(train, batch_size=64)))
    assert images.shape == (64, 1, 28, 28) and labels.dtype == np.int64
    np.testing.assert_array_equal(labels, train.labels[:64])
