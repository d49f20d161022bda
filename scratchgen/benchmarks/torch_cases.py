"""The five models of ``scratchgen bench torch``, each written twice: with scratchgen, and the
same network, loss and optimizer with PyTorch (imported only inside the function that builds
the PyTorch side, so that this module imports without torch). Both sides start from
scratchgen's initial weights (copied into PyTorch) and take the same arrays: ``torch_compare``
times them in separate processes and compares them with ``--check``."""
from __future__ import annotations

from typing import Any, Callable

import numpy

__all__ = ["MODELS", "scratchgen_case", "torch_case", "scratchgen_threads", "torch_threads",
           "vae_noise"]

#: name -> (batch size, what it is, Adam learning rate or None for forward + backward only)
MODELS: dict[str, tuple[int, str, float | None]] = {
    "dcgan": (64, "DCGAN-28, D step + G step", 2e-4),
    "conv-vae": (128, "conv VAE step (models.vae.ConvVAE)", 1e-3),
    "sagan-block": (64, "SelfAttention2d 64ch @16x16, fwd+bwd", None),
    "cyclegan-block": (4, "ResnetBlock 64ch @64x64, instance norm, fwd+bwd", None),
    "fc-vae": (128, "FC VAE 784-400-20 step", 1e-3),
}

_Z_DIM = 100
_SAGAN_GAMMA = 0.1


# ---- the data: the same arrays on both sides ----------------------------------------------------

def _inputs(name: str, seed: int) -> dict[str, numpy.ndarray]:
    """The fixed batch (and noise) of ``name``, from a NumPy generator: the same on both sides."""
    rng = numpy.random.default_rng(seed)
    n = MODELS[name][0]
    if name == "dcgan":
        real = rng.integers(0, 256, (n, 1, 28, 28)).astype(numpy.float32) / numpy.float32(127.5)
        return {"x": real - numpy.float32(1.0),
                "z": rng.standard_normal((n, _Z_DIM)).astype(numpy.float32)}
    if name in ("conv-vae", "fc-vae"):
        return {"x": rng.integers(0, 256, (n, 1, 28, 28)).astype(numpy.float32)
                / numpy.float32(255.0)}
    shape = (n, 64, 16, 16) if name == "sagan-block" else (n, 64, 64, 64)
    return {"x": rng.standard_normal(shape).astype(numpy.float32),
            "r": rng.standard_normal(shape).astype(numpy.float32)}


# ---- the scratchgen side ------------------------------------------------------------------------

class _Case:
    """A model ready to run: ``step()`` takes one step and returns its losses as floats;
    ``state()`` is every tensor to compare after a step (name -> array); ``module`` holds the
    weights (its ``state_dict()`` is what the PyTorch side copies)."""

    def __init__(self, module: Any, step: Callable[[], dict[str, float]],
                 state: Callable[[], dict[str, numpy.ndarray]]) -> None:
        self.module, self.step, self.state = module, step, state


def _sg_dcgan_networks() -> tuple[Any, Any]:
    import scratchgen.functional as F
    import scratchgen.nn as nn

    class Generator(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.project = nn.Linear(_Z_DIM, 128 * 7 * 7, bias=False)
            self.bn0 = nn.BatchNorm1d(128 * 7 * 7)
            self.up1 = nn.ConvTranspose2d(128, 64, 4, 2, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(64)
            self.up2 = nn.ConvTranspose2d(64, 1, 4, 2, 1)
            nn.init.dcgan_init(self)

        def forward(self, z):
            h = F.relu(self.bn0(self.project(z))).reshape(z.shape[0], 128, 7, 7)
            return F.tanh(self.up2(F.relu(self.bn1(self.up1(h)))))

    class Discriminator(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(1, 64, 4, 2, 1)
            self.conv2 = nn.Conv2d(64, 128, 4, 2, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(128)
            self.readout = nn.Linear(128 * 7 * 7, 1)
            nn.init.dcgan_init(self)

        def forward(self, x):
            h = F.leaky_relu(self.conv1(x), 0.2)
            h = F.leaky_relu(self.bn2(self.conv2(h)), 0.2)
            return self.readout(h.reshape(x.shape[0], -1)).reshape(x.shape[0])

    return Generator(), Discriminator()


def _sg_state(module: Any, extra: dict[str, Any] | None = None) -> dict[str, numpy.ndarray]:
    out = {k: numpy.array(v) for k, v in module.state_dict().items()}
    for k, v in (extra or {}).items():
        out[k] = numpy.array(v)
    return out


def scratchgen_case(name: str, seed: int, eps_seed: int | None = None) -> _Case:
    """The scratchgen side of ``name``; ``eps_seed`` (the VAEs) reseeds scratchgen's generator
    before each step so that the step's noise is known (``vae_noise``)."""
    import scratchgen as sg
    import scratchgen.nn as nn
    from scratchgen import optim

    sg.manual_seed(seed)
    data = _inputs(name, seed)
    lr = MODELS[name][2]
    if name == "dcgan":
        from scratchgen.losses import gan

        G, D = _sg_dcgan_networks()
        model = nn.ModuleDict({"G": G, "D": D})
        opt_g = optim.Adam(G.parameters(), lr=lr, betas=(0.5, 0.999))
        opt_d = optim.Adam(D.parameters(), lr=lr, betas=(0.5, 0.999))
        real, z = sg.tensor(data["x"]), sg.tensor(data["z"])

        def step() -> dict[str, float]:
            fake = G(z)
            loss_d = gan.discriminator_loss(D(real), D(fake.detach()), "bce")
            opt_d.zero_grad()
            loss_d.backward()
            opt_d.step()
            loss_g = gan.generator_loss(D(fake), "non-saturating")
            opt_g.zero_grad()
            loss_g.backward()
            opt_g.step()
            return {"loss_d": loss_d.item(), "loss_g": loss_g.item()}

        model.train()
        return _Case(model, step, lambda: _sg_state(model))
    if name in ("conv-vae", "fc-vae"):
        from scratchgen.models.steps import TrainStep
        from scratchgen.models.vae import VAE, ConvVAE

        model = ConvVAE() if name == "conv-vae" else VAE()
        train_step = TrainStep(model, optim.Adam(model.parameters(), lr=lr))
        x = sg.tensor(data["x"])

        def step() -> dict[str, float]:
            if eps_seed is not None:
                sg.manual_seed(eps_seed)
            return {"loss": train_step(x)["loss"]}

        return _Case(model, step, lambda: _sg_state(model))
    x = sg.tensor(data["x"], requires_grad=True)
    r = sg.tensor(data["r"])
    if name == "sagan-block":
        from scratchgen.nn.attention import SelfAttention2d

        block = SelfAttention2d(64)
        block.gamma.data[...] = _SAGAN_GAMMA
    else:
        from scratchgen.models.cyclegan import ResnetBlock

        block = ResnetBlock(64)
    block.train()

    def step() -> dict[str, float]:
        block.zero_grad()
        x.grad = None
        loss = (block(x) * r).sum()
        loss.backward()
        return {"loss": loss.item()}

    def state() -> dict[str, numpy.ndarray]:
        grads = {"grad." + k: p.grad.data for k, p in block.named_parameters()
                 if p.grad is not None}
        if x.grad is not None:
            grads["grad.x"] = x.grad.data
        return _sg_state(block, grads)

    return _Case(block, step, state)


def vae_noise(name: str, eps_seed: int) -> numpy.ndarray:
    """The eps ~ N(0, I) that the VAE's step draws right after ``sg.manual_seed(eps_seed)``
    (``losses.kl.reparameterize`` draws it with ``sg.randn`` of mu's shape and dtype)."""
    import scratchgen as sg

    sg.manual_seed(eps_seed)
    return sg.randn((MODELS[name][0], 20), dtype="float32").numpy()


def scratchgen_threads() -> dict[str, Any]:
    from scratchgen.kernels import threads

    blas = getattr(threads, "_blas", None)
    return {"kernel_threads": threads.get_num_threads(),
            "blas_threads": blas.get() if blas is not None else None}


# ---- the PyTorch side (imported only in its child process) --------------------------------------

def torch_case(name: str, seed: int, threads: int, eps: numpy.ndarray | None = None) -> _Case:
    """The PyTorch side of ``name``, with scratchgen's initial weights copied in; ``eps`` fixes
    the VAEs' noise (otherwise ``torch.randn_like`` inside the step, as PyTorch's VAE example)."""
    import torch
    import torch.nn as tnn
    import torch.nn.functional as TF

    torch.set_num_threads(threads)
    weights = scratchgen_case(name, seed).module.state_dict()  # scratchgen's initial weights
    data = {k: torch.from_numpy(v) for k, v in _inputs(name, seed).items()}
    lr = MODELS[name][2]

    def load(module: Any) -> None:
        module.load_state_dict({k: torch.from_numpy(numpy.array(v)) for k, v in weights.items()},
                               strict=True)

    def state_of(module: Any, extra: dict[str, Any] | None = None) -> dict[str, numpy.ndarray]:
        out = {k: v.detach().numpy().copy() for k, v in module.state_dict().items()}
        for k, v in (extra or {}).items():
            out[k] = v.detach().numpy().copy()
        return out

    if name == "dcgan":
        class Generator(tnn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.project = tnn.Linear(_Z_DIM, 128 * 7 * 7, bias=False)
                self.bn0 = tnn.BatchNorm1d(128 * 7 * 7)
                self.up1 = tnn.ConvTranspose2d(128, 64, 4, 2, 1, bias=False)
                self.bn1 = tnn.BatchNorm2d(64)
                self.up2 = tnn.ConvTranspose2d(64, 1, 4, 2, 1)

            def forward(self, z):
                h = TF.relu(self.bn0(self.project(z))).reshape(z.shape[0], 128, 7, 7)
                return torch.tanh(self.up2(TF.relu(self.bn1(self.up1(h)))))

        class Discriminator(tnn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.conv1 = tnn.Conv2d(1, 64, 4, 2, 1)
                self.conv2 = tnn.Conv2d(64, 128, 4, 2, 1, bias=False)
                self.bn2 = tnn.BatchNorm2d(128)
                self.readout = tnn.Linear(128 * 7 * 7, 1)

            def forward(self, x):
                h = TF.leaky_relu(self.conv1(x), 0.2)
                h = TF.leaky_relu(self.bn2(self.conv2(h)), 0.2)
                return self.readout(h.reshape(x.shape[0], -1)).reshape(x.shape[0])

        model = tnn.ModuleDict({"G": Generator(), "D": Discriminator()})
        load(model)
        G, D = model["G"], model["D"]
        opt_g = torch.optim.Adam(G.parameters(), lr=lr, betas=(0.5, 0.999))
        opt_d = torch.optim.Adam(D.parameters(), lr=lr, betas=(0.5, 0.999))
        real, z = data["x"], data["z"]
        ones, zeros = torch.ones(real.shape[0]), torch.zeros(real.shape[0])
        bce = TF.binary_cross_entropy_with_logits

        def step() -> dict[str, float]:
            fake = G(z)
            loss_d = bce(D(real), ones) + bce(D(fake.detach()), zeros)
            opt_d.zero_grad()
            loss_d.backward()
            opt_d.step()
            loss_g = bce(D(fake), ones)
            opt_g.zero_grad()
            loss_g.backward()
            opt_g.step()
            return {"loss_d": loss_d.item(), "loss_g": loss_g.item()}

        model.train()
        return _Case(model, step, lambda: state_of(model))

    if name in ("conv-vae", "fc-vae"):
        class Encoder(tnn.Module):
            def __init__(self) -> None:
                super().__init__()
                if name == "conv-vae":
                    self.convs = tnn.Sequential(tnn.Conv2d(1, 32, 4, 2, 1), tnn.ReLU(),
                                                tnn.Conv2d(32, 64, 4, 2, 1), tnn.ReLU())
                    self.fc = tnn.Linear(64 * 7 * 7, 256)
                    self.fc_mu, self.fc_logvar = tnn.Linear(256, 20), tnn.Linear(256, 20)
                else:
                    self.fc1 = tnn.Linear(784, 400)
                    self.fc21, self.fc22 = tnn.Linear(400, 20), tnn.Linear(400, 20)

            def forward(self, x):
                if name == "conv-vae":
                    h = TF.relu(self.fc(self.convs(x).flatten(1)))
                    return self.fc_mu(h), self.fc_logvar(h)
                h = TF.relu(self.fc1(x.flatten(1)))
                return self.fc21(h), self.fc22(h)

        class Decoder(tnn.Module):
            def __init__(self) -> None:
                super().__init__()
                if name == "conv-vae":
                    self.fc3, self.fc4 = tnn.Linear(20, 256), tnn.Linear(256, 64 * 7 * 7)
                    self.deconvs = tnn.Sequential(tnn.ConvTranspose2d(64, 32, 4, 2, 1),
                                                  tnn.ReLU(), tnn.ConvTranspose2d(32, 1, 4, 2, 1))
                else:
                    self.fc3, self.fc4 = tnn.Linear(20, 400), tnn.Linear(400, 784)

            def forward(self, z):
                if name == "conv-vae":
                    h = TF.relu(self.fc4(TF.relu(self.fc3(z))))
                    return self.deconvs(h.reshape(z.shape[0], 64, 7, 7))
                return self.fc4(TF.relu(self.fc3(z))).reshape(z.shape[0], 1, 28, 28)

        model = tnn.Module()
        model.encoder, model.decoder = Encoder(), Decoder()
        load(model)
        opt = torch.optim.Adam(model.parameters(), lr=lr)
        x = data["x"]
        fixed_eps = torch.from_numpy(eps) if eps is not None else None

        def step() -> dict[str, float]:
            mu, logvar = model.encoder(x)
            noise = fixed_eps if fixed_eps is not None else torch.randn_like(mu)
            logits = model.decoder(mu + torch.exp(0.5 * logvar) * noise)
            n = x.shape[0]
            recon = TF.binary_cross_entropy_with_logits(logits, x, reduction="sum") / n
            kl = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp()) / n
            loss = recon + kl
            opt.zero_grad()
            loss.backward()
            opt.step()
            return {"loss": loss.item()}

        model.train()
        return _Case(model, step, lambda: state_of(model))

    if name == "sagan-block":
        class SelfAttention(tnn.Module):
            def __init__(self, c: int) -> None:
                super().__init__()
                self.f, self.g = tnn.Conv2d(c, c // 8, 1), tnn.Conv2d(c, c // 8, 1)
                self.h = tnn.Conv2d(c, c, 1)
                self.gamma = tnn.Parameter(torch.zeros(1))

            def forward(self, x):
                n, c, hh, ww = x.shape

                def rows(t):
                    return t.reshape(n, t.shape[1], hh * ww).transpose(1, 2)

                o = TF.scaled_dot_product_attention(rows(self.g(x)), rows(self.f(x)),
                                                    rows(self.h(x)), scale=1.0)
                return self.gamma * o.transpose(1, 2).reshape(n, c, hh, ww) + x

        block = SelfAttention(64)
    else:
        class ResnetBlock(tnn.Module):
            def __init__(self, c: int) -> None:
                super().__init__()
                self.body = tnn.Sequential(
                    tnn.ReflectionPad2d(1), tnn.Conv2d(c, c, 3), tnn.InstanceNorm2d(c),
                    tnn.ReLU(), tnn.ReflectionPad2d(1), tnn.Conv2d(c, c, 3),
                    tnn.InstanceNorm2d(c))

            def forward(self, x):
                return x + self.body(x)

        block = ResnetBlock(64)
    load(block)
    block.train()
    x, r = data["x"].requires_grad_(True), data["r"]

    def step() -> dict[str, float]:
        block.zero_grad(set_to_none=True)
        x.grad = None
        loss = (block(x) * r).sum()
        loss.backward()
        return {"loss": loss.item()}

    def state() -> dict[str, numpy.ndarray]:
        grads = {"grad." + k: p.grad for k, p in block.named_parameters()
                 if p.grad is not None}
        if x.grad is not None:
            grads["grad.x"] = x.grad
        return state_of(block, grads)

    return _Case(block, step, state)


def torch_threads() -> dict[str, Any]:
    import torch

    return {"torch_threads": torch.get_num_threads(), "torch_version": torch.__version__}
