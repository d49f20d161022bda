"""Module mechanics: registration, traversal, modes, to(), state dicts, containers, repr."""
from __future__ import annotations

import copy
from collections import OrderedDict

import numpy as np
import pytest

import scratchgen as sg
import scratchgen.nn as nn
import scratchgen.optim as optim


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 4)
        self.bn = nn.BatchNorm1d(4)
        self.scale = nn.Parameter(np.ones(1, dtype=np.float32))
        self.register_buffer("count", sg.zeros(1))
        self.register_buffer("scratch", sg.zeros(2), persistent=False)
        self.act = nn.LeakyReLU(0.2)

    def forward(self, x):
        return self.act(self.bn(self.fc(x))) * self.scale


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(Block(), nn.Linear(4, 2))
        self.head = nn.ModuleList([nn.Linear(2, 1), nn.Linear(2, 1)])

    def forward(self, x):
        h = self.body(x)
        return self.head[0](h) + self.head[1](h)


def test_registration_and_traversal():
    net = Net()
    names = [n for n, _ in net.named_parameters()]
    assert names == ["body.0.scale", "body.0.fc.weight", "body.0.fc.bias", "body.0.bn.weight",
                     "body.0.bn.bias", "body.1.weight", "body.1.bias", "head.0.weight",
                     "head.0.bias", "head.1.weight", "head.1.bias"]
    assert all(isinstance(p, nn.Parameter) and p.requires_grad for p in net.parameters())
    assert [n for n, _ in net.named_children()] == ["body", "head"]
    mods = [n for n, _ in net.named_modules()]
    assert mods[:4] == ["", "body", "body.0", "body.0.fc"]
    assert len(list(net.modules())) == len(mods)
    assert [n for n, _ in net.named_buffers()] == [
        "body.0.count", "body.0.scratch", "body.0.bn.running_mean", "body.0.bn.running_var",
        "body.0.bn.num_batches_tracked"]
    assert net.num_parameters() == 1 + 12 + 4 + 4 + 4 + 8 + 2 + 3 + 3


def test_shared_parameter_listed_once_and_reassignment():
    lin = nn.Linear(2, 2)
    seq = nn.Sequential(lin, nn.ReLU(), lin)
    assert len(list(seq.parameters())) == 2
    m = nn.Linear(2, 3)
    with pytest.raises(TypeError, match="assign a Parameter"):
        m.weight = sg.zeros(3, 2)
    m.bias = None
    assert m.bias is None and [n for n, _ in m.named_parameters()] == ["weight"]
    m.extra = sg.zeros(1)  # a plain tensor attribute is not registered
    assert "extra" not in dict(m.named_buffers()) and "extra" not in m.state_dict()
    del m.weight
    assert list(m.parameters()) == []
    with pytest.raises(AttributeError, match="super\\(\\).__init__"):
        class Bad(nn.Module):
            def __init__(self):
                self.w = nn.Parameter(np.zeros(1))
        Bad()


def test_train_eval_zero_grad_apply_requires_grad():
    net = Net()
    assert net.training and all(m.training for m in net.modules())
    assert net.eval() is net and not any(m.training for m in net.modules())
    net.train()
    out = net(sg.randn(5, 3)).sum()
    out.backward()
    assert all(p.grad is not None for p in net.parameters())
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())
    seen = []
    net.apply(lambda m: seen.append(type(m).__name__))
    assert seen[-1] == "Net" and seen.count("Linear") == 4
    net.requires_grad_(False)
    assert not any(p.requires_grad for p in net.parameters())


def test_forward_hooks():
    lin = nn.Linear(2, 2)
    calls = []
    h1 = lin.register_forward_pre_hook(lambda m, args: (args[0] * 2,))
    h2 = lin.register_forward_hook(lambda m, args, out: calls.append(out.shape))
    x = sg.ones(1, 2)
    y = lin(x)
    expected = (2 * x.numpy()) @ lin.weight.numpy().T + lin.bias.numpy()
    np.testing.assert_allclose(y.numpy(), expected, rtol=1e-6)
    assert calls == [(1, 2)]
    h1.remove()
    h2.remove()
    lin(x)
    assert calls == [(1, 2)]


def test_state_dict_round_trip():
    a, b = Net(), Net()
    a(sg.randn(6, 3))  # moves batch norm's running statistics
    sd = a.state_dict()
    assert isinstance(sd, OrderedDict)
    assert "body.0.scratch" not in sd and "body.0.bn.num_batches_tracked" in sd
    assert list(sd)[:3] == ["body.0.scale", "body.0.count", "body.0.fc.weight"]
    result = b.load_state_dict(sd)
    assert result.missing_keys == [] and result.unexpected_keys == []
    for (k, pa), (_, pb) in zip(a.state_dict().items(), b.state_dict().items()):
        np.testing.assert_array_equal(pa, pb)
        assert pa.dtype == pb.dtype
    # the snapshot is independent of later training and of the loaded model
    sd["body.1.weight"][...] = 7
    assert not np.any(a.body[1].weight.numpy() == 7) and not np.any(b.body[1].weight.numpy() == 7)
    x = sg.randn(4, 3)
    a.eval(), b.eval()
    np.testing.assert_array_equal(a(x).numpy(), b(x).numpy())
    # Tensors are accepted as values too
    b.load_state_dict({k: sg.tensor(v) for k, v in a.state_dict().items()})


def test_load_state_dict_errors_list_every_problem():
    net = Net()
    before = {k: v.copy() for k, v in net.state_dict().items()}
    sd = Net().state_dict()
    del sd["body.1.bias"]
    sd["body.9.weight"] = np.zeros(3, np.float32)
    sd["head.0.weight"] = np.zeros((2, 1), np.float32)
    with pytest.raises(RuntimeError) as err:
        net.load_state_dict(sd)
    msg = str(err.value)
    assert "Missing key(s)" in msg and '"body.1.bias"' in msg
    assert "Unexpected key(s)" in msg and '"body.9.weight"' in msg
    assert "size mismatch for head.0.weight: expected shape (1, 2)" in msg
    assert "got shape (2, 1)" in msg
    for k, v in net.state_dict().items():  # nothing was half-loaded
        np.testing.assert_array_equal(v, before[k])
    # strict=False: only the shape mismatch is an error
    with pytest.raises(RuntimeError, match="size mismatch") as err:
        net.load_state_dict(sd, strict=False)
    assert "Missing" not in str(err.value)
    sd["head.0.weight"] = np.zeros((1, 2), np.float32)
    res = net.load_state_dict(sd, strict=False)
    assert res.missing_keys == ["body.1.bias"] and res.unexpected_keys == ["body.9.weight"]
    np.testing.assert_array_equal(net.head[0].weight.numpy(), 0)


def test_to_float64_keeps_parameters_and_optimizer_working():
    net = Net()
    params = list(net.parameters())
    opt = optim.Adam(net.parameters(), lr=1e-2)
    x = sg.randn(8, 3)
    net(x).sum().backward()
    opt.step()
    assert net.to("float64") is net
    assert [id(p) for p in net.parameters()] == [id(p) for p in params]
    assert all(p.dtype == np.float64 for p in net.parameters())
    assert all(p.grad.dtype == np.float64 for p in net.parameters())
    assert net.body[0].bn.running_mean.dtype == np.float64
    assert net.body[0].bn.num_batches_tracked.dtype == np.int64  # integers stay integers
    before = [p.numpy().copy() for p in params]
    opt.zero_grad()
    net(x.double()).sum().backward()
    opt.step()
    assert all(p.dtype == np.float64 for p in params)
    assert any(not np.array_equal(b, p.numpy()) for b, p in zip(before, params))
    assert all(opt.state[p]["exp_avg"].dtype == np.float64 for p in params)
    net.float()
    assert all(p.dtype == np.float32 for p in net.parameters())


def test_deepcopy_gives_independent_parameters():
    net = Net()
    twin = copy.deepcopy(net)
    assert isinstance(twin.body[1].weight, nn.Parameter)
    twin.body[1].weight.data[...] = 0
    assert np.any(net.body[1].weight.numpy() != 0)


def test_sequential_and_module_list():
    seq = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))
    assert len(seq) == 3 and isinstance(seq[-1], nn.Linear)
    assert [type(m).__name__ for m in seq] == ["Linear", "ReLU", "Linear"]
    sub = seq[:2]
    assert isinstance(sub, nn.Sequential) and len(sub) == 2 and sub[0] is seq[0]
    x = sg.randn(4, 2)
    np.testing.assert_allclose(seq(x).numpy(), seq[2](seq[1](seq[0](x))).numpy())
    named = nn.Sequential(OrderedDict([("fc", nn.Linear(2, 2)), ("act", nn.Tanh())]))
    assert [n for n, _ in named.named_parameters()] == ["fc.weight", "fc.bias"]
    seq.append(nn.Sigmoid())
    assert len(seq) == 4
    with pytest.raises(IndexError):
        seq[4]
    ml = nn.ModuleList([nn.Linear(1, 1)])
    ml.append(nn.Linear(1, 2)).extend([nn.Linear(2, 2)])
    ml.insert(0, nn.Identity())
    assert len(ml) == 4 and isinstance(ml[0], nn.Identity)
    assert [n for n, _ in ml.named_parameters()][:2] == ["1.weight", "1.bias"]
    del ml[0]
    assert [n for n, _ in ml.named_children()] == ["0", "1", "2"]
    md = nn.ModuleDict({"a": nn.Linear(1, 1)})
    assert "a" in md and len(list(md.parameters())) == 2


def test_repr_nested_like_pytorch():
    net = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.LeakyReLU(0.2),
                        nn.Sequential(nn.Flatten(), nn.Linear(16, 1, bias=False)))
    assert repr(net) == (
        "Sequential(\n"
        "  (0): Conv2d(1, 16, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))\n"
        "  (1): BatchNorm2d(16, eps=1e-05, momentum=0.1, affine=True, "
        "track_running_stats=True)\n"
        "  (2): LeakyReLU(negative_slope=0.2)\n"
        "  (3): Sequential(\n"
        "    (0): Flatten(start_dim=1, end_dim=-1)\n"
        "    (1): Linear(in_features=16, out_features=1, bias=False)\n"
        "  )\n"
        ")"
    )
    assert repr(nn.ReLU()) == "ReLU()"
    assert repr(nn.Parameter(np.zeros(1, np.float32))).startswith("Parameter containing:")


def test_buffers_move_with_to_and_parameter_accepts_tensor():
    m = nn.BatchNorm2d(3)
    m.to(dtype="float64")
    assert m.running_var.dtype == np.float64
    p = nn.Parameter(sg.ones(2))
    assert p.requires_grad and p.is_leaf and p.shape == (2,)
    q = nn.Parameter(np.zeros(2), requires_grad=False)
    assert not q.requires_grad
