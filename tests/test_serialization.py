"""Checkpoints: round trips, every error path, and atomicity under SIGKILL."""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
import zipfile
from collections import OrderedDict

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import scratchgen as sg
import scratchgen.nn as nn
import scratchgen.optim as optim
from scratchgen.serialization import FORMAT_NAME, CheckpointError, load, save

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def assert_same(a, b):
    assert type(a) is type(b), (type(a), type(b))
    if isinstance(a, sg.Tensor):
        assert not b.requires_grad and a.dtype == b.dtype
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    elif isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(a, b)
    elif isinstance(a, np.generic):
        assert a.dtype == b.dtype and (a == b or (a != a and b != b))
    elif isinstance(a, dict):
        assert list(a) == list(b)
        for k in a:
            assert type(k) is type(next(kk for kk in b if kk == k))
            assert_same(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            assert_same(x, y)
    elif isinstance(a, float) and a != a:
        assert b != b
    else:
        assert a == b


def test_round_trip_nested_structure(tmp_path):
    obj = {
        "model": OrderedDict([("fc.weight", np.arange(6, dtype=np.float32).reshape(2, 3)),
                              ("bn.num_batches_tracked", np.array(3, dtype=np.int64))]),
        "optim": {"state": {0: {"step": 4, "exp_avg": np.ones(3)}},
                  "param_groups": [{"lr": 2e-4, "betas": (0.5, 0.999), "params": [0]}]},
        "tensor": sg.tensor([[1.0, 2.0]], requires_grad=True),
        "step": 10, "big": 2 ** 127 + 1, "neg": -(2 ** 100), "pi": 3.141592653589793,
        "specials": [float("nan"), float("inf"), -float("inf"), -0.0],
        "flags": (True, False, None), "name": "dcgan ✓", "empty": [], "nested": [[], {}, ()],
        "np_scalars": [np.float32(1.5), np.int16(-3), np.bool_(True)],
        "dtypes": [np.zeros(2, dt) + 1 for dt in (np.float16, np.float32, np.float64, np.int8,
                                                   np.int32, np.int64, np.uint8, np.uint64,
                                                   np.bool_, np.complex64)],
        "odd_arrays": [np.zeros((0, 3)), np.array(2.5), np.array(["a", "bc"]),
                       np.arange(12).reshape(3, 4).T],  # a non-contiguous view
        "bytes": b"\x00\x01raw",
        1.5: "float key", None: "none key", (1, "a"): "tuple key",
    }
    path = tmp_path / "ck.npz"
    save(obj, path)
    back = load(path)
    assert_same({k: v for k, v in obj.items() if k != "tensor"},
                {k: v for k, v in back.items() if k != "tensor"})
    assert isinstance(back["tensor"], sg.Tensor) and not back["tensor"].requires_grad
    np.testing.assert_array_equal(back["tensor"].numpy(), [[1.0, 2.0]])
    assert isinstance(back["model"], OrderedDict) and type(back["optim"]) is dict
    assert list(back["optim"]["state"]) == [0]  # integer keys stay integers
    # the file is a plain .npz for NumPy, with a readable manifest
    with np.load(path, allow_pickle=False) as z:
        manifest = json.loads(bytes(z["manifest.json"]).decode())
    assert manifest["format"] == FORMAT_NAME and manifest["version"] == 1
    save(obj, str(path))  # str paths too, and overwriting
    assert load(str(path))["step"] == 10


@pytest.mark.parametrize("name", ["PCG64", "MT19937", "Philox", "SFC64", "PCG64DXSM"])
def test_bit_generator_states_round_trip(tmp_path, name):
    gen = np.random.Generator(getattr(np.random, name)(12345))
    gen.standard_normal(7)
    state = gen.bit_generator.state
    save({"rng": state, "backend": sg.backend.get_rng_state()}, tmp_path / "rng.npz")
    back = load(tmp_path / "rng.npz")["rng"]
    assert_same(state, back)
    twin = np.random.Generator(getattr(np.random, name)())
    twin.bit_generator.state = back
    np.testing.assert_array_equal(twin.standard_normal(5), gen.standard_normal(5))


@settings(max_examples=15, deadline=None)
@given(st.recursive(
    st.none() | st.booleans() | st.integers(-2 ** 130, 2 ** 130) | st.floats(allow_nan=False)
    | st.text(max_size=5),
    lambda kids: st.lists(kids, max_size=3) | st.tuples(kids, kids)
    | st.dictionaries(st.text(max_size=3) | st.integers(-5, 5), kids, max_size=3),
    max_leaves=12))
def test_round_trip_property(tmp_path_factory, obj):
    path = tmp_path_factory.mktemp("prop") / "ck.npz"
    save(obj, path)
    assert_same(obj, load(path))


def test_model_and_optimizer_checkpoint(tmp_path):
    net = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3))
    opt = optim.Adam(net.parameters())
    net(sg.randn(4, 2)).sum().backward()
    opt.step()
    save({"model": net.state_dict(), "optim": opt.state_dict(), "epoch": 1}, tmp_path / "c.npz")
    ck = load(tmp_path / "c.npz")
    twin = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3))
    twin.load_state_dict(ck["model"])
    opt2 = optim.Adam(twin.parameters())
    opt2.load_state_dict(ck["optim"])
    assert opt2.param_groups[0]["betas"] == (0.9, 0.999)
    assert opt2.state[twin[0].weight]["step"] == 1


def test_save_rejects_unsupported_and_object_arrays(tmp_path):
    path = tmp_path / "x.npz"
    with pytest.raises(TypeError, match=r"obj\['f'\].*function"):
        save({"f": lambda: 0}, path)
    with pytest.raises(TypeError, match="object array"):
        save([np.array([{}], dtype=object)], path)
    assert not path.exists() and os.listdir(tmp_path) == []


def test_save_into_missing_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        save({"a": 1}, tmp_path / "no" / "ck.npz")


def test_failed_save_keeps_old_file_and_leaves_no_temp(tmp_path, monkeypatch):
    path = tmp_path / "ck.npz"
    save({"v": 1}, path)

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(np.lib.format, "write_array", boom)
    with pytest.raises(OSError, match="disk full"):
        save({"v": 2, "a": np.ones(3)}, path)
    monkeypatch.undo()
    assert load(path) == {"v": 1}
    assert os.listdir(tmp_path) == ["ck.npz"]


# ---- loading errors ----------------------------------------------------------------------------

@pytest.fixture
def good(tmp_path):
    path = tmp_path / "good.npz"
    save({"w": np.arange(1000, dtype=np.float64), "step": 3}, path)
    return path


def _rewrite(src, dst, change):
    """Copy a zip archive entry by entry, letting ``change(name, data)`` edit or drop entries."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            data = change(info.filename, zin.read(info.filename))
            if data is not None:
                zout.writestr(info.filename, data)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.npz"):
        load(tmp_path / "nope.npz")


@pytest.mark.parametrize("cut", [0, 10, 0.5, -30])
def test_truncated_file(good, cut):
    data = good.read_bytes()
    n = cut if isinstance(cut, int) and cut >= 0 else (
        int(len(data) * cut) if isinstance(cut, float) else len(data) + cut)
    good.write_bytes(data[:n])
    with pytest.raises(CheckpointError, match="good.npz"):
        load(good)


def test_corrupted_array_bytes_fail_the_crc(good):
    data = bytearray(good.read_bytes())
    i = data.index(np.arange(1000, dtype=np.float64)[500:501].tobytes())
    data[i] ^= 0xFF
    good.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"good\.npz.*corrupted.*CRC"):
        load(good)


def test_missing_entry(good, tmp_path):
    bad = tmp_path / "bad.npz"
    _rewrite(good, bad, lambda name, d: None if name == "a0.npy" else d)
    with pytest.raises(CheckpointError, match=r"bad\.npz.*'a0\.npy'.*missing"):
        load(bad)


def test_broken_manifest(good, tmp_path):
    bad = tmp_path / "bad.npz"
    _rewrite(good, bad, lambda name, d: d[:-5] if name == "manifest.json" else d)
    with pytest.raises(CheckpointError, match=r"bad\.npz.*not valid JSON"):
        load(bad)
    _rewrite(good, bad, lambda name, d: d.replace(b'"type": "int"', b'"type": "pickle"')
             if name == "manifest.json" else d)
    with pytest.raises(CheckpointError, match="unknown node type 'pickle'"):
        load(bad)


def test_manifest_array_mismatch(good, tmp_path):
    bad = tmp_path / "bad.npz"
    _rewrite(good, bad, lambda name, d: d.replace(b"[1000]", b"[999]")
             if name == "manifest.json" else d)
    with pytest.raises(CheckpointError, match="manifest says"):
        load(bad)


def test_not_a_checkpoint(tmp_path):
    plain = tmp_path / "plain.npz"
    np.savez(plain, a=np.ones(2))
    with pytest.raises(CheckpointError, match=r"plain\.npz.*not a scratchgen checkpoint"):
        load(plain)
    other = tmp_path / "other.npz"
    with zipfile.ZipFile(other, "w") as z:
        z.writestr("manifest.json", json.dumps({"format": "something-else", "version": 1}))
    with pytest.raises(CheckpointError, match="something-else"):
        load(other)
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(CheckpointError, match=r"notes\.txt.*not a zip"):
        load(text)
    with pytest.raises(CheckpointError, match="directory"):
        load(tmp_path)


def test_newer_version(good, tmp_path):
    bad = tmp_path / "future.npz"
    _rewrite(good, bad, lambda name, d: d.replace(b'"version": 1', b'"version": 2')
             if name == "manifest.json" else d)
    with pytest.raises(CheckpointError, match=r"future\.npz.*version 2.*newer"):
        load(bad)


def test_pickled_array_is_refused(good, tmp_path):
    import io
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.array([{}], dtype=object), allow_pickle=True)
    bad = tmp_path / "evil.npz"
    _rewrite(good, bad, lambda name, d: buf.getvalue() if name == "a0.npy" else d)
    with pytest.raises(CheckpointError, match="evil.npz"):
        load(bad)


# ---- atomicity -----------------------------------------------------------------------------------

WRITER = textwrap.dedent("""
    import sys
    sys.path.insert(0, sys.argv[2])
    import numpy as np
    from scratchgen.serialization import save
    i = 0
    while True:
        i += 1
        save({"step": i, "weights": np.full(400_000, float(i)), "tail": [i, str(i)]}, sys.argv[1])
""")


def test_kill_during_save_never_leaves_an_unreadable_checkpoint(tmp_path):
    """A kill at a random moment during save never leaves an unreadable checkpoint: the path
    always holds one complete version (about 3 MB), old or new."""
    path = tmp_path / "ck.npz"
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    rnd = random.Random(0)
    last = 0
    for trial in range(6):
        proc = subprocess.Popen([sys.executable, str(script), str(path), ROOT])
        try:
            deadline = time.monotonic() + 20
            start = os.path.getmtime(path) if path.exists() else None
            while (not path.exists() or os.path.getmtime(path) == start) and \
                    time.monotonic() < deadline:
                time.sleep(0.005)  # wait until this writer has finished at least one save
            time.sleep(rnd.uniform(0.0, 0.15))
        finally:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
        ck = load(path)
        step = ck["step"]
        assert step >= 1
        assert ck["weights"].shape == (400_000,) and np.all(ck["weights"] == step)
        assert ck["tail"] == [step, str(step)]
        last = step
        # a killed writer may leave its temporary file, but never under the final name
        for name in os.listdir(tmp_path):
            if name not in ("ck.npz", "writer.py"):
                assert name.startswith(".ck.npz.") and name.endswith(".tmp")
    assert last >= 1
    # the next save of that path removes what the killed writers left
    save({"step": 0}, path)
    assert sorted(os.listdir(tmp_path)) == ["ck.npz", "writer.py"]


def test_save_removes_only_stale_temporaries_of_its_own_file(tmp_path):
    dead = 99_999_999   # above any pid_max: no such process
    stale = [tmp_path / f".ck.npz.{dead}.0123456789ab.tmp",
             # this process's id, but no save of this process holds it: an earlier process
             # that had the same id left it
             tmp_path / f".ck.npz.{os.getpid()}.0123456789ab.tmp"]
    kept = [tmp_path / f".ck.npz.{os.getppid()}.0123456789ab.tmp",   # a running process's
            tmp_path / f".other.npz.{dead}.0123456789ab.tmp",         # another file's
            tmp_path / ".ck.npz.notes.tmp"]                           # not our naming
    for p in stale + kept:
        p.write_bytes(b"partial")
    save({"v": 1}, tmp_path / "ck.npz")
    assert not any(p.exists() for p in stale)
    assert all(p.exists() for p in kept)
    assert load(tmp_path / "ck.npz") == {"v": 1}


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_saved_files_get_the_permissions_the_umask_gives(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        save({"v": 1}, tmp_path / "ck.npz")
    finally:
        os.umask(old)
    assert os.stat(tmp_path / "ck.npz").st_mode & 0o777 == mode
