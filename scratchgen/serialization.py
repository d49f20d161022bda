"""Checkpoints: ``save(obj, path)`` and ``load(path, device="cpu")``.

A checkpoint is a zip archive readable as a NumPy ``.npz``: every array is its own ``.npy``
entry, and a JSON entry ``manifest.json`` describes the nested structure around them::

    {"format": "scratchgen-checkpoint", "version": 1, "root": <node>}

where a node is tagged with its type: ``{"type": "dict", "ordered": bool, "items": [[key,
value], ...]}``, ``list``, ``tuple``, ``str``, ``bool``, ``none``, ``float`` (its repr, so
nan and inf survive), ``int`` (decimal digits, so the 128-bit integers in a NumPy generator's
state survive), ``ndarray`` / ``tensor`` / ``scalar`` (an entry name, dtype and shape).

Nothing is ever unpickled: loading a checkpoint cannot run code. Saving is atomic
(``atomic_write``): the archive is written to a temporary file in the same directory, flushed
to disk, and renamed onto ``path`` in one step, so a crash leaves either the old complete
checkpoint or the new one; the temporary file of a save killed mid-write is removed by the
next save to the same path. Files are created with the permissions the umask gives.
"""
from __future__ import annotations

import io
import json
import os
import re
import secrets
import threading
import zipfile
from collections import OrderedDict
from typing import IO, Any, Callable

import numpy

from scratchgen import backend
from scratchgen.autograd import Tensor

__all__ = ["save", "load", "atomic_write", "remove_stale_temporaries", "CheckpointError",
           "FORMAT_NAME", "FORMAT_VERSION"]

FORMAT_NAME = "scratchgen-checkpoint"
FORMAT_VERSION = 1
_MANIFEST = "manifest.json"


class CheckpointError(ValueError):
    """A file could not be read as a scratchgen checkpoint (corrupt, truncated, foreign or
    from a newer version)."""


# ---------------------------------------------------------------------------------------------
# encoding


class _Encoder:
    def __init__(self) -> None:
        self.arrays: list[tuple[str, numpy.ndarray]] = []

    def _array(self, a: Any, kind: str, where: str, **extra: Any) -> dict[str, Any]:
        on_gpu = backend._is_cupy(a)
        host = numpy.asarray(backend.to_device(a, "cpu"))
        if not host.flags.c_contiguous:
            host = numpy.ascontiguousarray(host)
        if host.dtype.hasobject:
            raise TypeError(f"cannot save the object array at {where}: only numeric, bool and "
                            "string arrays can be stored without pickle")
        name = f"a{len(self.arrays)}.npy"
        self.arrays.append((name, host))
        node = {"type": kind, "entry": name, "dtype": host.dtype.str, "shape": list(host.shape)}
        if on_gpu:
            node["device_array"] = True
        node.update(extra)
        return node

    def encode(self, obj: Any, where: str = "obj") -> dict[str, Any]:
        if obj is None:
            return {"type": "none"}
        if isinstance(obj, bool):
            return {"type": "bool", "value": obj}
        if isinstance(obj, int):
            return {"type": "int", "value": str(obj)}
        if isinstance(obj, float):
            return {"type": "float", "value": repr(obj)}
        if isinstance(obj, str):
            return {"type": "str", "value": obj}
        if isinstance(obj, Tensor):
            return self._array(obj.data, "tensor", where)
        if isinstance(obj, numpy.generic):
            return self._array(numpy.asarray(obj), "scalar", where)
        if isinstance(obj, numpy.ndarray) or backend._is_cupy(obj):
            return self._array(obj, "ndarray", where)
        if isinstance(obj, (bytes, bytearray)):
            return self._array(numpy.frombuffer(bytes(obj), dtype=numpy.uint8), "bytes", where)
        if isinstance(obj, dict):
            items = [[self.encode(k, f"{where} key {k!r}"), self.encode(v, f"{where}[{k!r}]")]
                     for k, v in obj.items()]
            return {"type": "dict", "ordered": isinstance(obj, OrderedDict), "items": items}
        if isinstance(obj, (list, tuple)):
            return {"type": "list" if isinstance(obj, list) else "tuple",
                    "items": [self.encode(v, f"{where}[{i}]") for i, v in enumerate(obj)]}
        raise TypeError(
            f"cannot save {where} of type {type(obj).__name__}: checkpoints hold nested "
            "dicts, lists and tuples of Tensors, arrays, numbers, strings, bools and None"
        )


def save(obj: Any, path: str | os.PathLike) -> None:
    """Write ``obj`` (nested dicts / lists / tuples of Tensors, NumPy or CuPy arrays, numbers,
    strings, bools, None) to ``path`` atomically: readers and crashes see either the previous
    file or the complete new one, never a partial write."""
    path = os.fspath(path)
    enc = _Encoder()
    root = enc.encode(obj)
    manifest = json.dumps({"format": FORMAT_NAME, "version": FORMAT_VERSION, "root": root},
                          allow_nan=False).encode("utf-8")
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"cannot save checkpoint {path!r}: directory {directory!r} "
                                "does not exist")

    def write(f: IO[bytes]) -> None:
        with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
            zf.writestr(_MANIFEST, manifest)
            for name, arr in enc.arrays:
                with zf.open(name, "w", force_zip64=arr.nbytes > 2**30) as entry:
                    numpy.lib.format.write_array(entry, arr, allow_pickle=False)

    atomic_write(path, write, durable=True)


# names of the temporary files atomic_write creates: ".NAME.PID.HEX.tmp" beside NAME
_TMP_PATTERN = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.[0-9a-f]{12}\.tmp$")
_in_flight: set[str] = set()
_in_flight_lock = threading.Lock()


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # another user's process, or a platform without signal 0: leave its file
    return True


def remove_stale_temporaries(path: str | os.PathLike) -> list[str]:
    """Delete the temporary files that ``atomic_write`` left beside ``path`` when its process
    was killed mid-write (``.NAME.PID.HEX.tmp``): those of processes no longer running, and
    those of this process that no write of its own holds open. Returns the removed paths."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    base = os.path.basename(path)
    removed = []
    try:
        names = os.listdir(directory)
    except OSError:
        return removed
    for name in names:
        m = _TMP_PATTERN.match(name)
        if m is None or m.group("name") != base:
            continue
        full = os.path.join(directory, name)
        pid = int(m.group("pid"))
        with _in_flight_lock:
            busy = full in _in_flight
        # a file named with this process's id but not open here is a leftover of an earlier
        # process that had the same id (ids are reused, in containers especially)
        if busy or (pid != os.getpid() and _process_alive(pid)):
            continue
        try:
            os.unlink(full)
            removed.append(full)
        except OSError:
            pass
    return removed


def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], None],
                 durable: bool = False) -> None:
    """Create or replace the file ``path`` with what ``write(f)`` writes to the binary file
    ``f``, atomically: readers and crashes see either the old file or the complete new one.

    The bytes go to ``.NAME.PID.HEX.tmp`` beside ``path`` (same file system, so the final
    rename is atomic), created with mode 0o666 so that the umask sets the permissions as it
    does for any other file the user writes (``tempfile.mkstemp`` would make it 0o600). A
    failed ``write`` removes the temporary file; one left by a killed process is removed by
    the next ``atomic_write`` of the same ``path`` (``remove_stale_temporaries``).
    ``durable=True`` also flushes the data and the rename to disk (``fsync``) before returning.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    remove_stale_temporaries(path)
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{os.getpid()}."
                                  f"{secrets.token_hex(6)}.tmp")
    with _in_flight_lock:
        _in_flight.add(tmp)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0),
                     0o666)
        try:
            with os.fdopen(fd, "wb") as f:
                write(f)
                if durable:
                    f.flush()
                    os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
    finally:
        with _in_flight_lock:
            _in_flight.discard(tmp)
    if durable:
        _fsync_directory(directory)


def _fsync_directory(directory: str) -> None:
    """Make the rename itself durable (POSIX); a no-op where directories cannot be opened."""
    try:
        dfd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dfd)
    except OSError:
        pass
    finally:
        os.close(dfd)


# ---------------------------------------------------------------------------------------------
# decoding


class _Decoder:
    def __init__(self, zf: zipfile.ZipFile, path: str, device: backend.Device) -> None:
        self.zf, self.path, self.device = zf, path, device
        self.names = set(zf.namelist())

    def fail(self, what: str) -> CheckpointError:
        return CheckpointError(f"cannot load checkpoint {self.path!r}: {what}")

    def _array(self, node: dict[str, Any]) -> numpy.ndarray:
        name = node.get("entry")
        if name not in self.names:
            raise self.fail(f"the manifest refers to an array entry {name!r} that is missing "
                            "from the archive (the file is incomplete or corrupted)")
        try:
            with self.zf.open(name) as f:
                data = f.read()
            arr = numpy.lib.format.read_array(io.BytesIO(data), allow_pickle=False)
        except zipfile.BadZipFile as exc:
            raise self.fail(f"array entry {name!r} is corrupted ({exc})") from exc
        except Exception as exc:  # any parse failure of untrusted bytes is a corrupt file
            raise self.fail(f"array entry {name!r} is not a valid .npy array "
                            f"({type(exc).__name__}: {exc})") from exc
        if arr.dtype.str != node.get("dtype") or list(arr.shape) != node.get("shape"):
            raise self.fail(
                f"array entry {name!r} has dtype {arr.dtype.str} and shape {list(arr.shape)}, "
                f"but the manifest says {node.get('dtype')} and {node.get('shape')}"
            )
        return arr

    def decode(self, node: Any) -> Any:
        if not isinstance(node, dict) or "type" not in node:
            raise self.fail(f"malformed manifest node {str(node)[:80]!r}")
        kind = node["type"]
        try:
            if kind == "none":
                return None
            if kind == "bool":
                return bool(node["value"])
            if kind == "int":
                return int(node["value"])
            if kind == "float":
                return float(node["value"])
            if kind == "str":
                return str(node["value"])
            if kind == "list":
                return [self.decode(v) for v in node["items"]]
            if kind == "tuple":
                return tuple(self.decode(v) for v in node["items"])
            if kind == "dict":
                cls = OrderedDict if node.get("ordered") else dict
                return cls((self.decode(k), self.decode(v)) for k, v in node["items"])
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, CheckpointError):
                raise
            raise self.fail(f"malformed manifest node of type {kind!r} ({exc})") from exc
        if kind in ("ndarray", "tensor", "scalar", "bytes"):
            arr = self._array(node)
            if kind == "scalar":
                return arr[()]
            if kind == "bytes":
                return arr.tobytes()
            if kind == "tensor":
                return Tensor(backend.to_device(arr, self.device) if self.device.type != "cpu"
                              else arr)
            if node.get("device_array") and self.device.type != "cpu":
                return backend.to_device(arr, self.device)
            return arr
        raise self.fail(f"unknown node type {kind!r} in the manifest")


def load(path: str | os.PathLike, device: Any = "cpu") -> Any:
    """Read a checkpoint written by ``save``. Tensors come back as Tensors on ``device``
    (requires_grad False); NumPy arrays as NumPy arrays; arrays that were on a GPU as arrays on
    ``device``. Raises ``FileNotFoundError`` for a missing file and ``CheckpointError`` (a
    ValueError) naming the file and the problem for anything unreadable."""
    path = os.fspath(path)
    dev = backend.device(device)
    if not os.path.exists(path):
        raise FileNotFoundError(f"checkpoint {path!r} does not exist")
    if os.path.isdir(path):
        raise CheckpointError(f"cannot load checkpoint {path!r}: it is a directory")
    try:
        zf = zipfile.ZipFile(path, "r")
    except zipfile.BadZipFile as exc:
        raise CheckpointError(
            f"cannot load checkpoint {path!r}: not a zip archive, or truncated ({exc})"
        ) from exc
    except Exception as exc:  # a damaged zip directory can fail in several ways
        raise CheckpointError(f"cannot load checkpoint {path!r}: unreadable archive "
                              f"({type(exc).__name__}: {exc})") from exc
    with zf:
        dec = _Decoder(zf, path, dev)
        if _MANIFEST not in dec.names:
            raise dec.fail(f"no {_MANIFEST} entry: this is not a scratchgen checkpoint")
        try:
            raw = zf.read(_MANIFEST)
        except Exception as exc:
            raise dec.fail(f"the manifest entry is corrupted ({type(exc).__name__}: {exc})") \
                from exc
        try:
            manifest = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise dec.fail(f"the manifest is not valid JSON ({exc})") from exc
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_NAME:
            fmt = manifest.get("format") if isinstance(manifest, dict) else None
            raise dec.fail(f"not a scratchgen checkpoint (format {fmt!r}, expected "
                           f"{FORMAT_NAME!r})")
        version = manifest.get("version")
        if not isinstance(version, int) or isinstance(version, bool):
            raise dec.fail(f"the manifest has no valid format version (got {version!r})")
        if version > FORMAT_VERSION:
            raise dec.fail(f"it was written in format version {version} by a newer scratchgen; "
                           f"this version reads format versions up to {FORMAT_VERSION}")
        if "root" not in manifest:
            raise dec.fail("the manifest has no 'root' entry")
        return dec.decode(manifest["root"])
