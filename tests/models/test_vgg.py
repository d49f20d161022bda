"""The loss networks: VGG-16's layers and shapes, its weight file (round trip, and refusal of
files with missing, misshapen or extra arrays), the fixed random network, the converter from
torchvision's names, and the shipped LeNet classifiers read layer by layer."""
from __future__ import annotations

import importlib.util
import pathlib

import numpy as np
import pytest

import scratchgen as sg
import scratchgen.functional as F
from scratchgen.metrics.classifier import MNIST_MEAN, MNIST_STD
from scratchgen.models.loss_networks import (
    LENET_LAYERS, LeNetFeatures, default_loss_network, lenet_features,
)
from scratchgen.models.vgg import (
    IMAGENET_MEAN, IMAGENET_STD, TORCHVISION_INDEX, VGG16_LAYERS, VGG16Features,
    check_vgg16_arrays, load_vgg16, random_vgg16, save_vgg16, vgg16_shapes,
)

ROOT = pathlib.Path(__file__).resolve().parents[2]
SMALL = (4, 6, 8, 10)


def _script(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def vgg():
    return random_vgg16(0)


@pytest.fixture(scope="module")
def weight_file(tmp_path_factory, vgg):
    return save_vgg16(vgg, tmp_path_factory.mktemp("vgg") / "vgg16.npz")


# ---- architecture -----------------------------------------------------------------------------

def test_layer_names_follow_torchvision_features():
    assert len(VGG16_LAYERS) == 23
    assert VGG16_LAYERS[:5] == ("conv1_1", "relu1_1", "conv1_2", "relu1_2", "pool1")
    for name, index in {"conv1_1": 0, "relu1_2": 3, "pool1": 4, "conv2_1": 5, "relu2_2": 8,
                        "pool2": 9, "relu3_3": 15, "pool3": 16, "conv4_1": 17,
                        "conv4_3": 21, "relu4_3": 22}.items():
        assert TORCHVISION_INDEX[name] == index


def test_parameter_shapes_and_count(vgg):
    shapes = vgg16_shapes()
    assert list(shapes)[:2] == ["conv1_1.weight", "conv1_1.bias"]
    assert shapes["conv1_1.weight"] == (64, 3, 3, 3) and shapes["conv4_3.bias"] == (512,)
    assert {k: tuple(v.shape) for k, v in vgg.state_dict().items()} == shapes
    assert vgg.num_parameters() == 7_635_264     # VGG-16's conv1_1 ... conv4_3


def test_shapes_at_every_layer():
    net = VGG16Features(SMALL)
    out = net(sg.rand(2, 3, 32, 24), VGG16_LAYERS)
    assert list(out) == list(VGG16_LAYERS)
    for name, t in out.items():
        block = int(name[4] if name.startswith("pool") else name[-3])
        side = 2 ** (block - 1) * (2 if name.startswith("pool") else 1)
        assert t.shape == (2, SMALL[block - 1], 32 // side, 24 // side), name


def test_full_width_shapes(vgg):
    out = vgg(sg.rand(1, 3, 16, 16), ("relu1_2", "relu2_2", "relu3_3", "relu4_3"))
    assert [t.shape for t in out.values()] == [(1, 64, 16, 16), (1, 128, 8, 8),
                                               (1, 256, 4, 4), (1, 512, 2, 2)]


def test_forward_stops_at_the_deepest_layer_asked_for():
    net = VGG16Features(SMALL)
    called = []
    for name in ("conv2_2", "conv3_1", "conv4_3"):
        getattr(net, name).register_forward_hook(lambda m, a, o, name=name: called.append(name))
    out = net(sg.rand(1, 3, 8, 8), ("relu2_2", "relu1_1"))
    assert list(out) == ["relu2_2", "relu1_1"] and called == ["conv2_2"]
    assert list(net(sg.rand(1, 3, 8, 8), "conv1_1")) == ["conv1_1"]    # one name as a string
    assert list(net(sg.rand(1, 3, 8, 8))) == ["relu2_2"]               # the default


def test_layer_name_and_input_errors():
    net = VGG16Features(SMALL)
    x = sg.rand(1, 3, 8, 8)
    with pytest.raises(ValueError, match=r"unknown layer\(s\) 'relu5_3', 'fc6'; choose from "
                                         r"conv1_1, relu1_1"):
        net(x, ("relu1_2", "relu5_3", "fc6"))
    with pytest.raises(ValueError, match="layers is empty"):
        net(x, ())
    with pytest.raises(ValueError, match=r"RGB images \(N, 3, H, W\), got shape \(1, 1, 8, 8\)"):
        net(sg.rand(1, 1, 8, 8))
    with pytest.raises(ValueError, match="4 positive widths"):
        VGG16Features((4, 4, 4))


def test_imagenet_normalisation():
    net = random_vgg16(1, channels=SMALL)
    raw = random_vgg16(1, channels=SMALL, normalize=False)
    x = np.random.default_rng(0).random((2, 3, 8, 8)).astype(np.float32)
    z = (x - np.array(IMAGENET_MEAN, np.float32)[:, None, None]) \
        / np.array(IMAGENET_STD, np.float32)[:, None, None]
    np.testing.assert_allclose(net(sg.tensor(x), "relu2_2")["relu2_2"].numpy(),
                               raw(sg.tensor(z), "relu2_2")["relu2_2"].numpy(), rtol=1e-4,
                               atol=1e-5)
    np.testing.assert_allclose(net.normalize_input(sg.tensor(x)).numpy(), z, rtol=1e-6)


def test_the_network_is_frozen_and_passes_gradients_to_its_input():
    net = random_vgg16(0, channels=SMALL)
    assert not any(p.requires_grad for p in net.parameters()) and not net.training
    x = sg.rand(1, 3, 8, 8, requires_grad=True)
    net(x, "relu3_3")["relu3_3"].sum().backward()
    assert x.grad is not None and np.abs(x.grad.numpy()).sum() > 0


# ---- the random network -----------------------------------------------------------------------

def test_random_vgg16_is_fixed_by_its_seed():
    a, b = random_vgg16(3, channels=SMALL), random_vgg16(3, channels=SMALL)
    sg.manual_seed(123)                  # the global generator plays no part
    c = random_vgg16(3, channels=SMALL)
    d = random_vgg16(4, channels=SMALL)
    for k, v in a.state_dict().items():
        np.testing.assert_array_equal(v, b.state_dict()[k])
        np.testing.assert_array_equal(v, c.state_dict()[k])
    assert not np.array_equal(a.conv1_1.weight.numpy(), d.conv1_1.weight.numpy())


def test_random_vgg16_he_scaling_keeps_activations_in_scale(vgg):
    for k, v in vgg.state_dict().items():
        if k.endswith(".bias"):
            assert not v.any()
        else:
            assert v.std() == pytest.approx(np.sqrt(2.0 / (v[0].size)), rel=0.05), k
    # the second moment of the ReLU outputs neither vanishes nor explodes with depth
    x = sg.tensor(np.random.default_rng(0).random((2, 3, 32, 32)).astype(np.float32))
    out = vgg(x, [n for n in VGG16_LAYERS if n.startswith("relu")])
    moments = [float((t.numpy() ** 2).mean()) for t in out.values()]
    assert 0.1 < min(moments) and max(moments) < 30, moments


# ---- weight files -----------------------------------------------------------------------------

def test_load_round_trip(vgg, weight_file):
    net = load_vgg16(weight_file)
    for k, v in vgg.state_dict().items():
        np.testing.assert_array_equal(net.state_dict()[k], v)
    x = sg.rand(1, 3, 16, 16)
    np.testing.assert_array_equal(net(x, "relu4_3")["relu4_3"].numpy(),
                                  vgg(x, "relu4_3")["relu4_3"].numpy())
    assert not any(p.requires_grad for p in net.parameters())
    assert load_vgg16(weight_file, dtype="float64").conv1_1.weight.dtype == np.float64


def _write(path, arrays):
    with open(path, "wb") as f:
        np.savez(f, **arrays)
    return path


def _arrays(file):
    with np.load(file) as z:
        return {k: z[k] for k in z.files}


def test_missing_misshapen_and_extra_arrays_are_named(weight_file, tmp_path):
    arrays = _arrays(weight_file)
    bad = dict(arrays)
    del bad["conv4_3.bias"], bad["conv2_1.weight"]
    bad["conv1_2.weight"] = np.zeros((64, 32, 3, 3), np.float32)
    bad["conv5_1.weight"] = np.zeros(1, np.float32)
    path = _write(tmp_path / "bad.npz", bad)
    with pytest.raises(ValueError) as e:
        load_vgg16(path)
    msg = str(e.value)
    assert "\n" not in msg and str(path) in msg
    assert "missing conv2_1.weight, conv4_3.bias" in msg
    assert "wrong shape conv1_2.weight (64, 32, 3, 3) (expected (64, 64, 3, 3))" in msg
    assert "unexpected conv5_1.weight" in msg


@pytest.mark.parametrize("change, words", [
    (lambda a: a.pop("conv3_3.weight"), "missing conv3_3.weight"),
    (lambda a: a.__setitem__("conv1_1.bias", np.zeros(63)),
     "wrong shape conv1_1.bias (63,) (expected (64,))"),
    (lambda a: a.__setitem__("features.0.weight", np.zeros(1)), "unexpected features.0.weight"),
])
def test_each_kind_of_problem_alone(change, words):
    arrays = {k: np.broadcast_to(np.float32(0), s) for k, s in vgg16_shapes().items()}
    check_vgg16_arrays(arrays, "x.npz")          # a complete table passes
    change(arrays)
    with pytest.raises(ValueError, match="^x.npz: .*" + words.replace("(", r"\(")
                       .replace(")", r"\)")):
        check_vgg16_arrays(arrays, "x.npz")


def test_unreadable_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.npz"):
        load_vgg16(tmp_path / "nowhere.npz")
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip archive")
    with pytest.raises(ValueError, match="junk.npz is not a readable .npz"):
        load_vgg16(junk)
    truncated = tmp_path / "truncated.npz"
    _write(tmp_path / "whole.npz", {"conv1_1.bias": np.zeros(64, np.float32)})
    truncated.write_bytes((tmp_path / "whole.npz").read_bytes()[:100])
    with pytest.raises(ValueError, match="truncated.npz is not a readable .npz"):
        load_vgg16(truncated)
    single = tmp_path / "single.npz"
    with open(single, "wb") as f:
        np.save(f, np.zeros(3))
    with pytest.raises(ValueError, match="single.npz is not a readable .npz file .*single array"):
        load_vgg16(single)


def test_integer_arrays_are_refused():
    arrays = {k: np.broadcast_to(np.float32(0), s) for k, s in vgg16_shapes().items()}
    arrays["conv2_2.bias"] = np.zeros(128, np.int64)
    with pytest.raises(ValueError, match=r"not floating point conv2_2.bias \(int64\)"):
        check_vgg16_arrays(arrays, "w.npz")


# ---- the converter ----------------------------------------------------------------------------

def _torchvision_state(rng):
    """A torchvision vgg16 state dict's names and shapes (small random values where cheap)."""
    state = {}
    for key, shape in vgg16_shapes().items():
        layer, kind = key.split(".")
        state[f"features.{TORCHVISION_INDEX[layer]}.{kind}"] = rng.normal(size=shape).astype(
            np.float32) if kind == "bias" or shape[0] <= 128 else np.broadcast_to(
            np.float32(rng.normal()), shape)
    for i in (24, 26, 28):                      # block 5
        state[f"features.{i}.weight"] = np.zeros((1, 1, 3, 3), np.float32)
        state[f"features.{i}.bias"] = np.zeros(1, np.float32)
    for i in (0, 3, 6):                         # the fully connected classifier
        state[f"classifier.{i}.weight"] = np.zeros((2, 2), np.float32)
    return state


def test_converter_renames_torchvision_keys():
    convert = _script("convert_vgg16").convert_state_dict
    state = _torchvision_state(np.random.default_rng(0))
    out = convert(state)
    assert list(out) == list(vgg16_shapes())
    for name, index in [("conv1_1", 0), ("conv1_2", 2), ("conv2_1", 5), ("conv2_2", 7),
                        ("conv3_1", 10), ("conv3_2", 12), ("conv3_3", 14), ("conv4_1", 17),
                        ("conv4_2", 19), ("conv4_3", 21)]:
        for kind in ("weight", "bias"):
            np.testing.assert_array_equal(out[f"{name}.{kind}"], state[f"features.{index}.{kind}"])
    # a DataParallel prefix is understood too
    assert list(convert({"module." + k: v for k, v in state.items()})) == list(out)


def test_converter_refuses_foreign_or_incomplete_state_dicts():
    convert = _script("convert_vgg16").convert_state_dict
    state = _torchvision_state(np.random.default_rng(1))
    with pytest.raises(ValueError, match="not keys of torchvision's vgg16: fc.weight"):
        convert({**state, "fc.weight": np.zeros(1)})
    del state["features.21.bias"]
    with pytest.raises(ValueError, match="missing conv4_3.bias"):
        convert(state)
    state["features.21.bias"] = np.zeros(7)
    with pytest.raises(ValueError, match=r"conv4_3.bias \(7,\) \(expected \(512,\)\)"):
        convert(state)


def test_converter_command_line(tmp_path, vgg):
    script = _script("convert_vgg16")
    named = {}
    for key, value in vgg.state_dict().items():
        layer, kind = key.split(".")
        named[f"features.{TORCHVISION_INDEX[layer]}.{kind}"] = value
    src = _write(tmp_path / "tv.npz", named)
    assert script.main([str(src), str(tmp_path / "ours.npz")]) == 0
    net = load_vgg16(tmp_path / "ours.npz")
    np.testing.assert_array_equal(net.conv3_2.weight.numpy(), vgg.conv3_2.weight.numpy())
    with pytest.raises(SystemExit, match="no such file"):
        script.main([str(tmp_path / "absent.pth"), str(tmp_path / "o.npz")])
    if importlib.util.find_spec("torch") is None:
        pth = tmp_path / "vgg16.pth"
        pth.write_bytes(b"")
        with pytest.raises(SystemExit, match="needs PyTorch"):
            script.main([str(pth), str(tmp_path / "o.npz")])


# ---- the LeNet feature networks -----------------------------------------------------------------

@pytest.mark.parametrize("dataset", ["mnist", "digits"])
def test_lenet_features_are_the_classifiers_own_activations(dataset):
    net = lenet_features(dataset)
    clf = net.classifier
    x = sg.tensor(np.random.default_rng(0).random((3, 1, 28, 28)).astype(np.float32))
    out = net(x, LENET_LAYERS)
    c1, c2 = clf.config["channels"]
    assert [t.shape for t in out.values()] == [
        (3, c1, 24, 24), (3, c1, 24, 24), (3, c1, 12, 12), (3, c2, 8, 8), (3, c2, 8, 8),
        (3, c2, 4, 4), (3, clf.config["hidden"]), (3, clf.config["hidden"])]
    # computed again step by step with the classifier's own layers
    h = clf.conv1((x - MNIST_MEAN) * (1.0 / MNIST_STD))
    np.testing.assert_allclose(out["conv1"].numpy(), h.numpy(), rtol=1e-6, atol=1e-6)
    h = clf.pool(F.relu(h))
    np.testing.assert_allclose(out["pool1"].numpy(), h.numpy(), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(out["relu2"].numpy(), F.relu(clf.conv2(h)).numpy(),
                               rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(out["relu3"].numpy(), clf.features(x).numpy())
    np.testing.assert_allclose(clf.head(out["relu3"]).numpy(), clf(x).numpy(), rtol=1e-6,
                               atol=1e-6)


def test_lenet_features_interface_and_errors():
    net = default_loss_network("digits")
    assert isinstance(net, LeNetFeatures)
    assert not any(p.requires_grad for p in net.parameters())
    assert list(net(sg.rand(2, 1, 28, 28))) == ["relu2"]               # the default
    with pytest.raises(ValueError, match=r"\(N, 1, 28, 28\).*\(2, 3, 28, 28\)"):
        net(sg.rand(2, 3, 28, 28), ("relu1",))
    with pytest.raises(ValueError, match="'relu4_3'"):
        net(sg.rand(2, 1, 28, 28), ("relu4_3",))
    with pytest.raises(ValueError, match="'cifar'"):
        default_loss_network("cifar")
    with pytest.raises(ValueError, match="'cifar'"):
        lenet_features("cifar")
    assert isinstance(default_loss_network("rgb"), VGG16Features)


def test_perceptual_loss_on_digits():
    from scratchgen.losses.perceptual import PerceptualLoss
    net = lenet_features("digits")
    loss_fn = PerceptualLoss(net, content_layers=("relu3",), style_layers=("relu1", "relu2"),
                             style_weight=10.0)
    x = sg.rand(2, 1, 28, 28, requires_grad=True)
    grams = loss_fn.style_targets(sg.rand(1, 1, 28, 28))
    total, parts = loss_fn(x, sg.rand(2, 1, 28, 28), grams)
    total.backward()
    assert set(parts) == {"content", "style"} and x.grad is not None


def test_loss_network_and_losses_on_each_device(device):
    from scratchgen.losses.perceptual import PerceptualLoss
    x = np.random.default_rng(0).random((2, 3, 8, 8)).astype(np.float32)
    results = {}
    for dev in ("cpu", device):
        net = random_vgg16(0, channels=(2, 3, 4, 4), device=dev)
        loss_fn = PerceptualLoss(net, style_layers=("relu1_2", "relu3_3"), tv_weight=0.1)
        y = sg.tensor(x, device=dev, requires_grad=True)
        total, _ = loss_fn(y, sg.tensor(x[::-1].copy(), device=dev),
                           loss_fn.style_targets(sg.tensor(x[:1] * 0.5, device=dev)))
        assert total.device == sg.device(dev)
        total.backward()
        results[dev] = (total.item(), y.grad.numpy())
    np.testing.assert_allclose(results[device][0], results["cpu"][0], rtol=1e-4)
    np.testing.assert_allclose(results[device][1], results["cpu"][1], rtol=1e-3, atol=1e-6)
