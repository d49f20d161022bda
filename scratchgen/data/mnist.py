"""MNIST and Fashion-MNIST: the four standard IDX files, from a local folder or a checked download.

Where the files come from, in order:

1. ``data_dir=``: a folder that already holds the four files (``.gz`` or uncompressed); nothing
   is downloaded.
2. Otherwise a cache folder: ``<root>/<name>``, where ``root`` is the ``root=`` argument, else
   ``$SCRATCHGEN_DATA``, else ``~/.cache/scratchgen``. Missing files are downloaded there (when
   ``download=True``), trying each mirror in turn. A download is written to a temporary file in
   the same folder, checked, and only then renamed into place (``os.replace``), so an
   interrupted or corrupt download never sits in the cache under the real name.

Checks: MNIST files are compared with the md5 of their *uncompressed* content (so any
gzip re-compression of the same data passes); the shapes and label range are always checked.
"""
from __future__ import annotations

import hashlib
import logging
import os
import secrets
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .dataset import ArrayDataset
from .idx import decompress_if_gzip, parse_idx

__all__ = ["MNIST", "FashionMNIST", "ChecksumError", "default_data_root"]

log = logging.getLogger(__name__)


class ChecksumError(ValueError):
    """A dataset file whose md5 is not the published one."""


@dataclass(frozen=True)
class _FileSpec:
    """One of the four IDX files of a dataset and what is known about it."""

    stem: str  # e.g. "train-images-idx3-ubyte"; the served file is stem + ".gz"
    shape: tuple[int, ...]
    md5_raw: str | None = None  # md5 of the uncompressed content
    md5_gz: str | None = None  # md5 of the .gz file as served by the mirrors


def default_data_root() -> Path:
    """``$SCRATCHGEN_DATA`` if set, else ``~/.cache/scratchgen``."""
    env = os.environ.get("SCRATCHGEN_DATA")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "scratchgen"


def _md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def _fetch(url: str, dest: Path, timeout: float = 60.0) -> None:
    """Copy the body of ``url`` into the file ``dest`` (the only function that uses the network)."""
    request = urllib.request.Request(url, headers={"User-Agent": "scratchgen"})
    with urllib.request.urlopen(request, timeout=timeout) as response, open(dest, "wb") as out:
        while chunk := response.read(1 << 20):
            out.write(chunk)


class MNIST(ArrayDataset):
    """MNIST handwritten digits (LeCun, Cortes, Burges): 60,000 train / 10,000 test, 28x28.

    Items are ``(image, label)``: ``image`` a uint8 array ``(1, 28, 28)`` in 0..255, ``label``
    an int64. The whole split is also available as ``.images`` ``(N, 1, 28, 28)`` uint8 and
    ``.labels`` ``(N,)`` int64, which ``DataLoader`` indexes directly.

    Args:
        root: parent of the cache folder (default ``$SCRATCHGEN_DATA`` or ``~/.cache/scratchgen``).
        train: the training split (else the test split).
        download: download missing files into the cache.
        data_dir: a folder holding the four standard files; used as is, never downloaded into.
        verify: compare each file with its published md5 (when one is known).
    """

    name = "mnist"
    mirrors: tuple[str, ...] = (
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "http://yann.lecun.com/exdb/mnist/",
    )
    classes: tuple[str, ...] = tuple(str(d) for d in range(10))
    files: dict[str, _FileSpec] = {
        "train-images": _FileSpec("train-images-idx3-ubyte", (60000, 28, 28),
                                  md5_raw="6bbc9ace898e44ae57da46a324031adb"),
        "train-labels": _FileSpec("train-labels-idx1-ubyte", (60000,),
                                  md5_raw="a25bea736e30d166cdddb491f175f624"),
        "test-images": _FileSpec("t10k-images-idx3-ubyte", (10000, 28, 28),
                                 md5_raw="2646ac647ad5339dbf082846283269ea"),
        "test-labels": _FileSpec("t10k-labels-idx1-ubyte", (10000,),
                                 md5_raw="27ae3e4e09519cfbb04c329615203637"),
    }

    def __init__(
        self,
        root: str | os.PathLike | None = None,
        train: bool = True,
        download: bool = True,
        data_dir: str | os.PathLike | None = None,
        verify: bool = True,
    ) -> None:
        self.train = bool(train)
        self.verify = bool(verify)
        split = "train" if train else "test"
        if data_dir is not None:
            self.folder = Path(data_dir).expanduser()
            if not self.folder.is_dir():
                raise FileNotFoundError(
                    f"{type(self).__name__}: data_dir={str(data_dir)!r} is not a folder; it "
                    f"should hold the four files {self._file_list()}"
                )
        else:
            base = Path(root).expanduser() if root is not None else default_data_root()
            self.folder = base / self.name
        may_download = download and data_dir is None
        images = self._load(self.files[f"{split}-images"], may_download)
        labels = self._load(self.files[f"{split}-labels"], may_download)
        if labels.shape[0] != images.shape[0]:
            raise ValueError(
                f"{type(self).__name__}: {images.shape[0]} images but {labels.shape[0]} labels "
                f"in {self.folder}"
            )
        if labels.size and (labels.min() < 0 or labels.max() >= len(self.classes)):
            raise ValueError(
                f"{type(self).__name__}: labels in {self.folder} range over "
                f"{labels.min()}..{labels.max()}, expected 0..{len(self.classes) - 1}"
            )
        super().__init__(images[:, None, :, :], labels.astype(np.int64))

    @property
    def images(self) -> np.ndarray:
        """All images of the split, ``(N, 1, 28, 28)`` uint8."""
        return self.arrays[0]

    @property
    def labels(self) -> np.ndarray:
        """All labels of the split, ``(N,)`` int64."""
        return self.arrays[1]

    @classmethod
    def _file_list(cls) -> str:
        return ", ".join(f"{spec.stem}[.gz]" for spec in cls.files.values())

    def _find(self, spec: _FileSpec) -> Path | None:
        for candidate in (self.folder / (spec.stem + ".gz"), self.folder / spec.stem):
            if candidate.is_file():
                return candidate
        return None

    def _load(self, spec: _FileSpec, may_download: bool) -> np.ndarray:
        path = self._find(spec)
        if path is None:
            if not may_download:
                raise FileNotFoundError(
                    f"{type(self).__name__}: {spec.stem}[.gz] not found in {self.folder}. "
                    f"Pass data_dir= pointing at a folder holding {self._file_list()}, "
                    f"or download=True to fetch them into the cache"
                )
            path = self._download(spec)
        raw = path.read_bytes()
        data = decompress_if_gzip(raw, str(path))
        if self.verify and (mismatch := self._md5_mismatch(spec, raw, data)):
            raise ChecksumError(
                f"{path}: {mismatch}. The file is corrupt or not the original "
                f"{type(self).__name__} file: delete it and download it again, or pass "
                f"verify=False to use it anyway"
            )
        array = parse_idx(data, str(path))
        if array.shape != spec.shape:
            raise ValueError(
                f"{path}: shape {array.shape}, expected {spec.shape} for {type(self).__name__}"
            )
        return array

    @staticmethod
    def _md5_mismatch(spec: _FileSpec, raw: bytes, data: bytes) -> str | None:
        """Compare with the published md5 (of the uncompressed content, else of the served .gz).

        ``raw`` is the file as stored, ``data`` its uncompressed content. Returns ``None`` when
        the sum matches or none is known, else a sentence giving both sums.
        """
        if spec.md5_raw is not None:
            expected, found, what = spec.md5_raw, _md5(data), "uncompressed content"
        elif spec.md5_gz is not None and raw[:2] == b"\x1f\x8b":
            expected, found, what = spec.md5_gz, _md5(raw), "gzip file"
        else:
            return None
        if found == expected:
            return None
        return f"checksum mismatch: md5 of the {what} is {found}, expected {expected}"

    def _download(self, spec: _FileSpec) -> Path:
        self.folder.mkdir(parents=True, exist_ok=True)
        filename = spec.stem + ".gz"
        dest = self.folder / filename
        errors: list[str] = []
        for mirror in self.mirrors:
            url = mirror + filename
            # created with mode 0o666 so that the umask sets the cached file's permissions
            # (mkstemp's 0o600 would make the shared cache unreadable to other users)
            tmp = self.folder / f".{filename}.{os.getpid()}.{secrets.token_hex(6)}.part"
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            try:
                log.info("downloading %s", url)
                _fetch(url, tmp)
                if self.verify:
                    # Checked under the temporary name: a bad download never takes the real one.
                    raw = tmp.read_bytes()
                    if mismatch := self._md5_mismatch(spec, raw, decompress_if_gzip(raw, url)):
                        raise ChecksumError(
                            f"{filename} downloaded from {url}: {mismatch}; the download was "
                            f"discarded and {dest} was not written"
                        )
                os.replace(tmp, dest)
                return dest
            except ChecksumError:
                tmp.unlink(missing_ok=True)
                raise
            except Exception as exc:  # network errors of every kind: try the next mirror
                tmp.unlink(missing_ok=True)
                errors.append(f"{url}: {type(exc).__name__}: {exc}")
        tried = "\n  ".join(errors)
        raise RuntimeError(
            f"{type(self).__name__}: could not download {filename} from any mirror:\n  {tried}\n"
            f"Without network, put the four files ({self._file_list()}) in a folder and pass "
            f"data_dir= pointing at it"
        )

    def __repr__(self) -> str:
        split = "train" if self.train else "test"
        return f"{type(self).__name__}({split}, {len(self)} images, from {self.folder})"


class FashionMNIST(MNIST):
    """Fashion-MNIST (Xiao, Rasul, Vollgraf, 2017): Zalando article images in MNIST's format.

    Same files, shapes, item types and arguments as ``MNIST``; ten clothing classes.
    """

    name = "fashion-mnist"
    mirrors = ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",)
    classes = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
               "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
    # Only the md5 sums of the .gz files as served by the Fashion-MNIST mirror are known here
    # (the ones torchvision checks); the sums of the uncompressed content are not, so an
    # uncompressed or re-compressed copy is checked only for its shapes and label range.
    files = {
        "train-images": _FileSpec("train-images-idx3-ubyte", (60000, 28, 28),
                                  md5_gz="8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
        "train-labels": _FileSpec("train-labels-idx1-ubyte", (60000,),
                                  md5_gz="25c81989df183df01b3e8a0aad5dffbe"),
        "test-images": _FileSpec("t10k-images-idx3-ubyte", (10000, 28, 28),
                                 md5_gz="bef4ecab320f06d8554ea6380940ec79"),
        "test-labels": _FileSpec("t10k-labels-idx1-ubyte", (10000,),
                                 md5_gz="bb300cfdad3c16e7a12a480ee83cd310"),
    }
