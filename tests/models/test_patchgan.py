"""The PatchGAN discriminator: its receptive field computed and measured from gradients, its
layers (channels, strides, biases) as the reference's NLayerDiscriminator, the size of its
logits map, its initialisation and its errors."""
from __future__ import annotations

import numpy as np
import pytest

import scratchgen as sg
import scratchgen.nn as nn
from scratchgen.models.patchgan import PatchGANDiscriminator, norm_layer, receptive_field


def _convs(D):
    return [m for m in D.modules() if isinstance(m, nn.Conv2d)]


@pytest.mark.parametrize("n, r", [(1, 16), (2, 34), (3, 70), (4, 142)])
def test_receptive_field_formula(n, r):
    assert receptive_field(n) == r
    assert PatchGANDiscriminator(1, ndf=2, n_layers=n).receptive_field == r


def _measured_extent(D, side):
    """Rows and columns of the input that the centre logit's gradient touches."""
    x = sg.tensor(np.random.default_rng(0).standard_normal((1, 2, side, side)),
                  dtype="float32", requires_grad=True)
    logits = D(x)
    h, w = logits.shape[2:]
    logits[0, 0, h // 2, w // 2].backward()
    g = np.abs(x.grad.numpy()).sum(axis=(0, 1))
    rows, cols = np.nonzero(g.sum(axis=1))[0], np.nonzero(g.sum(axis=0))[0]
    return rows.max() - rows.min() + 1, cols.max() - cols.min() + 1


@pytest.mark.parametrize("n", [1, 2, 3])
@pytest.mark.parametrize("norm", ["none", "batch"])
def test_receptive_field_measured_from_gradients(n, norm):
    """The gradient of one central logit w.r.t. the input is non-zero exactly on the patch
    that logit sees. Batch norm in training mode would normalise with statistics of the whole
    map, so every logit would depend on every pixel (the gradient would spread over the image);
    with norm="none", or batch norm in eval mode (a fixed affine map per channel), it does
    not. The input is large enough that the patch does not reach the zero padding."""
    D = PatchGANDiscriminator(2, ndf=2, n_layers=n, norm=norm)
    D.eval()
    side = 2 ** n * (2 * receptive_field(n) // 2 ** n + 4)
    assert _measured_extent(D, side) == (receptive_field(n), receptive_field(n))


def test_batch_statistics_spread_the_gradient_over_the_image():
    D = PatchGANDiscriminator(2, ndf=2, n_layers=1, norm="batch")  # training mode
    assert _measured_extent(D, 64) == (64, 64)


def test_layers_are_the_reference_nlayer_discriminator():
    D = PatchGANDiscriminator(6, ndf=64, n_layers=3)
    convs = _convs(D)
    assert [c.weight.shape[:2] for c in convs] == [(64, 6), (128, 64), (256, 128), (512, 256),
                                                   (1, 512)]
    assert [c.stride for c in convs] == [(2, 2)] * 3 + [(1, 1)] * 2
    assert all(c.kernel_size == (4, 4) and c.padding == (1, 1) for c in convs)
    # no bias where batch norm follows; the first and the last conv keep theirs
    assert [c.bias is not None for c in convs] == [True, False, False, False, True]
    assert sum(isinstance(m, nn.BatchNorm2d) for m in D.modules()) == 3
    slopes = {m.negative_slope for m in D.modules() if isinstance(m, nn.LeakyReLU)}
    assert slopes == {0.2}
    # instance norm (CycleGAN's) keeps the biases, as the reference's use_bias
    inst = PatchGANDiscriminator(3, ndf=4, n_layers=2, norm="instance")
    assert all(c.bias is not None for c in _convs(inst))
    assert sum(isinstance(m, nn.InstanceNorm2d) for m in inst.modules()) == 2


def test_width_is_capped_at_eight_ndf():
    D = PatchGANDiscriminator(1, ndf=2, n_layers=5)
    assert [c.weight.shape[0] for c in _convs(D)] == [2, 4, 8, 16, 16, 16, 1]


@pytest.mark.parametrize("n, side, out", [(1, 28, 12), (2, 32, 6), (3, 64, 6), (2, 28, 5)])
def test_logits_map_shape(n, side, out):
    D = PatchGANDiscriminator(2, ndf=2, n_layers=n)
    y = D(sg.tensor(np.zeros((3, 2, side, side + 8)), dtype="float32"))
    assert D.output_size(side, side + 8) == (out, y.shape[3])
    assert y.shape[:3] == (3, 1, out)


def test_initialisation_is_normal_0_02():
    D = PatchGANDiscriminator(3, ndf=64, n_layers=3)
    w = np.concatenate([c.weight.numpy().ravel() for c in _convs(D)])
    assert abs(w.mean()) < 1e-3 and abs(w.std() - 0.02) < 1e-3
    g = np.concatenate([m.weight.numpy() for m in D.modules() if isinstance(m, nn.BatchNorm2d)])
    assert abs(g.mean() - 1.0) < 5e-3 and abs(g.std() - 0.02) < 5e-3
    assert all(np.all(c.bias.numpy() == 0) for c in _convs(D) if c.bias is not None)


def test_bad_arguments_and_inputs_are_named():
    with pytest.raises(ValueError, match="norm must be one of .*'group'"):
        PatchGANDiscriminator(1, norm="group")
    with pytest.raises(ValueError, match="n_layers must be a positive integer, got 0"):
        PatchGANDiscriminator(1, n_layers=0)
    with pytest.raises(ValueError, match="n_layers"):
        receptive_field(0)
    D = PatchGANDiscriminator(2, ndf=2, n_layers=3)
    with pytest.raises(ValueError, match=r"\(N, 2, H, W\).*\(1, 1, 64, 64\)"):
        D(sg.tensor(np.zeros((1, 1, 64, 64)), dtype="float32"))
    with pytest.raises(ValueError, match="16x16 pixels is too small .*n_layers=3"):
        D(sg.tensor(np.zeros((1, 2, 16, 16)), dtype="float32"))


def test_norm_layer_builds_each_choice_and_names_a_wrong_one():
    assert isinstance(norm_layer("batch", 4), nn.BatchNorm2d)
    assert isinstance(norm_layer("instance", 4), nn.InstanceNorm2d)
    assert isinstance(norm_layer("none", 4), nn.Identity)
    with pytest.raises(ValueError, match="'group'"):
        norm_layer("group", 4)
