"""Layers, optimizers and checkpoints on each device (the CUDA cases skip without a GPU)."""
from __future__ import annotations

import numpy as np

import scratchgen as sg
import scratchgen.functional as F
import scratchgen.nn as nn
import scratchgen.optim as optim
from scratchgen.serialization import load, save


def _net():
    # no bias before the batch norm: its gradient is 0 in exact arithmetic, so rounding noise
    # that Adam would scale up to steps of lr, differently on each device
    layers = [nn.Linear(4, 8, bias=False), nn.BatchNorm1d(8), nn.LeakyReLU(0.2), nn.Dropout(0.2),
              nn.spectral_norm(nn.Linear(8, 8)), nn.LayerNorm(8), nn.Linear(8, 2)]
    return nn.Sequential(*layers)


def test_train_step_on_device_matches_cpu(device, tmp_path):
    sg.manual_seed(0)
    ref = _net()
    net = _net()
    net.load_state_dict(ref.state_dict())
    net.to(device)
    assert all(p.device == sg.device(device) for p in net.parameters())
    assert all(b.device == sg.device(device) for b in net.buffers())
    net[3].p = ref[3].p = 0.0  # random masks differ between generators of different devices
    opts = [optim.Adam(m.parameters(), lr=1e-2) for m in (ref, net)]
    x = np.random.default_rng(0).standard_normal((6, 4)).astype(np.float32)
    for _ in range(3):
        for m, o in zip((ref, net), opts):
            o.zero_grad()
            (m(sg.tensor(x, device=m[0].weight.device)) ** 2).mean().backward()
            optim.clip_grad_norm_(m.parameters(), 1.0)
            o.step()
    for (k, a), b in zip(ref.state_dict().items(), net.state_dict().values()):
        np.testing.assert_allclose(a, sg.backend.to_device(b, "cpu"), rtol=2e-4, atol=1e-5,
                                   err_msg=k)
    save({"model": net.state_dict(), "opt": opts[1].state_dict(), "t": sg.ones(2, device=device)},
         tmp_path / "ck.npz")
    ck = load(tmp_path / "ck.npz", device=device)
    assert ck["t"].device == sg.device(device)
    twin = _net().to(device)
    twin.load_state_dict(ck["model"])
    o2 = optim.Adam(twin.parameters(), lr=1e-2)
    o2.load_state_dict(ck["opt"])
    ema = optim.EMA(twin, decay=0.9)
    ema.update()
    with ema.average_parameters():
        twin.eval()(sg.tensor(x, device=device))


def test_initialisers_and_dropout_on_device(device):
    t = sg.zeros(64, 32, device=device)
    for fn in (nn.init.normal_, nn.init.xavier_uniform_, nn.init.kaiming_normal_,
               nn.init.orthogonal_):
        fn(t)
        assert t.device == sg.device(device) and t.dtype == np.float32
    d = nn.Dropout(0.5)
    y = d(sg.ones(1000, device=device)).numpy()
    assert set(np.unique(y)) <= {0.0, 2.0} and 300 < (y == 0).sum() < 700
    emb = nn.Embedding(5, 3).to(device)
    assert emb(np.array([1, 4])).device == sg.device(device)


def test_conv_layers_on_device(device):
    if not hasattr(F, "conv2d") or not hasattr(F, "scaled_dot_product_attention"):
        return
    net = nn.Sequential(nn.MaskedConv2d("A", 1, 8, 3, padding=1), nn.BatchNorm2d(8),
                        nn.SelfAttention2d(8), nn.ConvTranspose2d(8, 2, 4, 2, 1)).to(device)
    nn.spectral_norm(net[3])
    out = net(sg.randn(2, 1, 4, 4, device=device))
    assert out.shape == (2, 2, 8, 8) and out.device == sg.device(device)
    out.sum().backward()
    assert all(p.grad is not None and p.grad.device == sg.device(device)
               for p in net.parameters())
