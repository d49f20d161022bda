"""Image folders read with Pillow, their one-line errors, and unpaired batches with exact resume."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from scratchgen.data.folders import UnpairedLoader, load_image_folder, load_unpaired_folders


def _write(folder, name, array, mode=None):
    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(array, np.uint8), mode).save(folder / name)


def _grey(seed, h=8, w=8):
    return np.random.default_rng(seed).integers(0, 256, (h, w)).astype(np.uint8)


def test_grey_and_rgb_folders_load_as_nchw_in_unit_range(tmp_path):
    pics = [_grey(i) for i in range(3)]
    for i, p in enumerate(pics):
        _write(tmp_path / "g", f"{i}.png", p)
    (tmp_path / "g" / "notes.txt").write_text("not a picture")      # skipped
    x = load_image_folder(tmp_path / "g")
    assert x.shape == (3, 1, 8, 8) and x.dtype == np.float32
    np.testing.assert_allclose(x[:, 0], np.stack(pics) / 255.0, rtol=0, atol=1e-7)
    rgb = np.random.default_rng(5).integers(0, 256, (6, 4, 3)).astype(np.uint8)
    _write(tmp_path / "c", "a.PNG", rgb)
    _write(tmp_path / "c", "b.jpg", np.full((6, 4, 3), (200, 40, 90)))
    y = load_image_folder(tmp_path / "c")
    assert y.shape == (2, 3, 6, 4)
    np.testing.assert_allclose(y[0], rgb.transpose(2, 0, 1) / 255.0, atol=1e-7)
    np.testing.assert_allclose(y[1, :, 0, 0], np.array([200, 40, 90]) / 255, atol=0.03)


def test_a_picture_of_another_size_or_mode_is_named(tmp_path):
    _write(tmp_path / "s", "a.png", _grey(0))
    _write(tmp_path / "s", "b.png", _grey(1, 4, 6))
    with pytest.raises(ValueError) as info:
        load_image_folder(tmp_path / "s")
    msg = str(info.value)
    assert "b.png: 6x4 grey, expected 8x8 grey like" in msg and "a.png" in msg
    assert "\n" not in msg
    _write(tmp_path / "m", "a.png", _grey(0))
    _write(tmp_path / "m", "b.png", np.zeros((8, 8, 3)))
    with pytest.raises(ValueError, match="b.png: 8x8 RGB, expected 8x8 grey"):
        load_image_folder(tmp_path / "m")
    _write(tmp_path / "p", "a.png", np.zeros((8, 8, 4)))
    with pytest.raises(ValueError, match="a.png: mode 'RGBA'"):
        load_image_folder(tmp_path / "p")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "x.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match="x.png: not a readable image"):
        load_image_folder(tmp_path / "bad")


def test_empty_or_missing_folder_is_named(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="empty: the folder holds no PNG or JPEG image"):
        load_image_folder(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="nowhere: no such folder"):
        load_image_folder(tmp_path / "nowhere")


def test_second_domain_must_match_the_first(tmp_path):
    _write(tmp_path / "a", "1.png", _grey(0))
    _write(tmp_path / "b", "1.png", _grey(1))
    _write(tmp_path / "b", "2.png", _grey(2))
    a, b = load_unpaired_folders(tmp_path / "a", tmp_path / "b")
    assert a.shape == (1, 1, 8, 8) and b.shape == (2, 1, 8, 8)
    _write(tmp_path / "b2", "1.png", _grey(1, 12, 8))
    with pytest.raises(ValueError, match=r"b2.1\.png: 8x12 grey, expected 8x8 grey like the "
                                         r"pictures of .*a$"):
        load_unpaired_folders(tmp_path / "a", tmp_path / "b2")


def test_unpaired_batches_are_drawn_independently():
    a = np.arange(10, dtype=np.float32).reshape(10, 1, 1, 1)
    b = 100 + np.arange(6, dtype=np.float32).reshape(6, 1, 1, 1)
    loader = UnpairedLoader(a, b, batch_size=2, seed=3)
    assert len(loader) == 5                          # max(10, 6) // 2
    pairs = []
    for _ in range(2):
        epoch = list(loader)
        assert len(epoch) == 5
        seen_a = np.concatenate([x for x, _ in epoch]).ravel()
        assert sorted(seen_a) == list(range(10))      # each A image once per epoch
        seen_b = np.concatenate([y for _, y in epoch]).ravel()
        assert set(seen_b) == set(range(100, 106))    # B wraps around its permutation
        pairs.append(list(zip(seen_a, seen_b)))
    assert pairs[0] != pairs[1]                       # no fixed pairing
    with pytest.raises(ValueError, match="batch_size 7 is larger than the 6 images of domain B"):
        UnpairedLoader(a, b, batch_size=7)


def test_unpaired_loader_resumes_mid_epoch_exactly():
    rng = np.random.default_rng(0)
    a, b = rng.random((9, 1, 2, 2), np.float32), rng.random((7, 1, 2, 2), np.float32)
    ref = UnpairedLoader(a, b, batch_size=2, seed=1)
    straight = [batch for _ in range(2) for batch in ref]
    first = UnpairedLoader(a, b, batch_size=2, seed=1)
    it = iter(first)
    got = list(list(zip(range(3), it)))
    state = first.state_dict()
    second = UnpairedLoader(a, b, batch_size=2, seed=99)
    second.load_state_dict(state)
    rest = list(second) + list(second)
    got = [batch for _, batch in got] + rest
    assert len(got) == len(straight) == 8
    for (x, y), (u, v) in zip(got, straight):
        np.testing.assert_array_equal(x, u)
        np.testing.assert_array_equal(y, v)
