"""Whole train steps in scratchgen against the same models written in PyTorch (CPU, float32).

    scratchgen bench torch                           # every model, all cores, both sides
    scratchgen bench torch --threads 1               # one thread on both sides
    scratchgen bench torch --models dcgan,sagan-block --steps 30 --rounds 5
    scratchgen bench torch --check                   # same weights in, same loss and weights out?
    scratchgen bench torch --install-torch           # pip install the CPU build of PyTorch
    scratchgen bench torch --list                    # the model names

PyTorch is not a dependency of scratchgen: this command imports it only in the child processes
that run the PyTorch side, and where it is not importable runs the scratchgen side alone and
says so. ``--install-torch`` runs ``python -m pip install torch --index-url
https://download.pytorch.org/whl/cpu`` (the CPU-only build, about 200 MB) and prints it first.
Where that index cannot be reached, PyPI's ``pip install torch`` also works (several GB with
its CUDA libraries), or a CPU wheel from a mirror: ``pip install --no-deps "torch==2.13.0+cpu"``
plus ``filelock typing-extensions sympy networkx jinja2 fsspec``.

Protocol. Each measurement is a fresh Python process for one (side, model): it builds the model
and its optimizer(s) from scratchgen's initial weights (the PyTorch side copies them in), makes
one fixed batch, runs ``--warmup`` untimed steps, then times ``--steps`` steps one by one and
reports their median and minimum. Per model the sides alternate, scratchgen then PyTorch, for
``--rounds`` rounds; the table gives the median over rounds of each process's median step
time, and the ratio scratchgen / PyTorch of those (above 1: scratchgen is slower).

Threads. Both sides get the same number, ``--threads N`` (default: every core this process may
run on): PyTorch through ``torch.set_num_threads(N)`` (and ``OMP_NUM_THREADS`` /
``MKL_NUM_THREADS``), scratchgen through ``SCRATCHGEN_NUM_THREADS=N`` (its kernels' batch
threads) and ``OPENBLAS_NUM_THREADS=N`` (its BLAS); the table prints what each side reported
(PyTorch: ``torch.get_num_threads()``; scratchgen: kernel threads / BLAS threads). The
scratchgen side also keeps freed memory for reuse (``kernels.memory.configure_malloc()``), as
its training commands do.

Models (``--models``, comma-separated; default all):

    dcgan         DCGAN-28 train step, batch 64: one D update, then one G update on the same
                  G(z); non-saturating BCE on logits; Adam 2e-4, betas (0.5, 0.999).
                  G: z (100) -> Linear 6272 -> BatchNorm1d(6272) -> ReLU -> 128x7x7
                  -> ConvT 128->64 k4 s2 p1 -> BN -> ReLU -> ConvT 64->1 k4 s2 p1 -> tanh;
                  D: Conv 1->64 k4 s2 p1 -> LReLU(0.2) -> Conv 64->128 k4 s2 p1 -> BN
                  -> LReLU(0.2) -> Linear 6272->1. Layers followed by batch norm have no bias.
                  Written here for both sides: scratchgen's ``models.dcgan`` normalises the
                  projection as a 128-channel map (BatchNorm2d), not as 6272 features.
    conv-vae      ``models.vae.ConvVAE()`` (32-64 channels, hidden 256, z 20, Bernoulli
                  decoder) trained by ``models.steps.TrainStep``, batch 128, Adam 1e-3.
    sagan-block   ``nn.SelfAttention2d(64)`` on (64, 64, 16, 16), forward and backward of
                  sum(y * r) for a fixed random r (gradients for the input and the weights).
    cyclegan-block  ``models.cyclegan.ResnetBlock(64)`` (reflection pad, 3x3 convs, instance
                  norm) on (4, 64, 64, 64), forward and backward of sum(y * r): batch 4, the
                  size of a CycleGAN batch rather than a GAN's.
    fc-vae        ``models.vae.VAE()``, 784-400-20, batch 128, Adam 1e-3, ``TrainStep``.

The blocks are timed on sum(y * r) and not on sum(y): the residual block ends in an instance
norm, whose output sums to zero over each map, so the gradient of sum(y) would skip its body.
SAGAN's gamma is set to 0.1 on both sides (it starts at 0, where the attention's weights get
no gradient).

What is counted: the step alone (forward, loss, backward, optimizer update, reading the loss as
a Python float). Not counted: making the batch (one fixed batch, and for the GAN one fixed z,
is fed to every step; the VAEs draw their noise eps inside the step on both sides).

``--check`` builds each model once per side with the same weights (scratchgen's, copied into
PyTorch), the same batch and the same noise, runs one step and compares the losses and every
tensor of the state afterwards (weights, batch-norm statistics; for the blocks, the
gradients): ``max |a - b| / max |b|`` per tensor, against ``--rtol`` (default 1e-4). A
gradient that is 0 in exact arithmetic (the bias of SAGAN's keys, which the softmax removes;
a convolution's bias before an instance norm) is rounding noise on both sides: one below 1e-5
of the largest gradient entry on both sides is listed as zero instead of compared. A weight
moved by Adam's first step moves by about lr times the sign of its gradient, so an entry whose
gradient is about 0 may move either way on the two sides; the check reports such entries (those
off by more than rtol but by less than 2 lr + rtol) apart instead of failing on them.
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time
from typing import Any

import numpy

from scratchgen.benchmarks.torch_cases import (
    MODELS, scratchgen_case, scratchgen_threads, torch_case, torch_threads, vae_noise,
)

__all__ = ["main", "MODELS", "measure", "check_state", "format_table", "torch_available",
           "default_threads", "INSTALL_COMMAND"]

INSTALL_COMMAND = [sys.executable, "-m", "pip", "install", "torch",
                   "--index-url", "https://download.pytorch.org/whl/cpu"]

SIDES = ("scratchgen", "torch")

def default_threads() -> int:
    """Every core this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def torch_available() -> tuple[bool, str]:
    """(whether a child process can import torch, its version or the reason it cannot)."""
    proc = subprocess.run([sys.executable, "-c", "import torch; print(torch.__version__)"],
                          capture_output=True, text=True)
    if proc.returncode == 0:
        return True, proc.stdout.strip()
    last = (proc.stderr.strip().splitlines() or ["import torch failed"])[-1]
    return False, last


# ---- one child process --------------------------------------------------------------------------

def measure(side: str, name: str, steps: int, warmup: int, seed: int = 0,
            threads: int | None = None) -> dict[str, Any]:
    """In this process: build ``name`` on ``side``, run ``warmup`` steps, time ``steps`` steps;
    a dict with the median and minimum milliseconds per step and the threads used."""
    threads = threads or default_threads()
    if side == "scratchgen":
        from scratchgen.kernels import memory

        memory.configure_malloc()
        case, info = scratchgen_case(name, seed), scratchgen_threads()
    else:
        case = torch_case(name, seed, threads)
        info = torch_threads()
    for _ in range(warmup):
        losses = case.step()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        losses = case.step()
        times.append(1e3 * (time.perf_counter() - start))
    return {"side": side, "model": name, "ms_median": float(numpy.median(times)),
            "ms_min": float(min(times)), "times_ms": times, "losses": losses, **info}


def _check_dump(side: str, name: str, seed: int, threads: int, path: str) -> None:
    """In this process: one step of ``name`` on ``side`` with known noise; write the losses,
    the state before (``before.``) and after the step to ``path`` (.npz)."""
    eps_seed = seed + 1000
    if side == "scratchgen":
        case = scratchgen_case(name, seed, eps_seed=eps_seed)
    else:
        eps = vae_noise(name, eps_seed) if name.endswith("vae") else None
        case = torch_case(name, seed, threads, eps=eps)
    before = {k: v for k, v in case.state().items() if not k.startswith("grad.")}
    losses = case.step()
    after = case.state()
    arrays = {**{"before." + k: v for k, v in before.items()}, **after,
              **{"loss." + k: numpy.array(v) for k, v in losses.items()}}
    numpy.savez(path, **arrays)


def _child_env(side: str, threads: int) -> dict[str, str]:
    env = dict(os.environ)
    env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(threads)
    if side == "scratchgen":
        env["SCRATCHGEN_NUM_THREADS"] = env["OPENBLAS_NUM_THREADS"] = str(threads)
    else:  # NumPy's BLAS in the PyTorch process only copies the initial weights
        env["OPENBLAS_NUM_THREADS"] = "1"
    return env


def _run_child(side: str, name: str, args: argparse.Namespace, extra: list[str]) -> str:
    """Run this module in a fresh process for (side, name); its last stdout line."""
    cmd = [sys.executable, "-m", "scratchgen.benchmarks.torch_compare", "--child", side, name,
           "--steps", str(args.steps), "--warmup", str(args.warmup), "--seed", str(args.seed),
           "--threads", str(args.threads), *extra]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=_child_env(side, args.threads))
    if proc.returncode != 0:
        raise RuntimeError(f"the {side} side of {name} failed:\n{proc.stderr.strip()}")
    return proc.stdout.strip().splitlines()[-1]


# ---- the table ----------------------------------------------------------------------------------

def _summarise(name: str, runs: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    row: dict[str, Any] = {"model": name, "batch_size": MODELS[name][0], "what": MODELS[name][1]}
    for side in SIDES:
        rs = runs.get(side, [])
        if rs:
            row[side] = {"ms_median": float(numpy.median([r["ms_median"] for r in rs])),
                         "ms_min": float(min(r["ms_min"] for r in rs)),
                         "round_medians": [r["ms_median"] for r in rs]}
            for key in ("kernel_threads", "blas_threads", "torch_threads", "torch_version"):
                if key in rs[-1]:
                    row[side][key] = rs[-1][key]
    if row.get("scratchgen") and row.get("torch"):
        row["ratio"] = row["scratchgen"]["ms_median"] / row["torch"]["ms_median"]
    return row


_HEADER = (f"{'model':15s} {'batch':>5s} {'scratchgen ms':>13s} {'(min)':>8s} "
           f"{'PyTorch ms':>10s} {'(min)':>8s} {'ratio':>6s}  threads sg kern/BLAS, torch")


def format_row(row: dict[str, Any]) -> str:
    def cell(side: str, key: str, width: int) -> str:
        v = row.get(side, {}).get(key) if row.get(side) else None
        return f"{v:{width}.2f}" if v is not None else f"{'-':>{width}s}"

    sg_side, t_side = row.get("scratchgen") or {}, row.get("torch") or {}
    ratio = f"{row['ratio']:6.2f}" if "ratio" in row else f"{'-':>6s}"
    threads = (f"{sg_side.get('kernel_threads', '-')}/{sg_side.get('blas_threads', '-')}, "
               f"{t_side.get('torch_threads', '-')}")
    return (f"{row['model']:15s} {row['batch_size']:5d} {cell('scratchgen', 'ms_median', 13)} "
            f"{cell('scratchgen', 'ms_min', 8)} {cell('torch', 'ms_median', 10)} "
            f"{cell('torch', 'ms_min', 8)} {ratio}  {threads}")


def format_table(rows: list[dict[str, Any]]) -> str:
    return "\n".join([_HEADER] + [format_row(r) for r in rows])


# ---- --check ------------------------------------------------------------------------------------

def check_state(sg_arrays: dict[str, numpy.ndarray], torch_arrays: dict[str, numpy.ndarray],
                rtol: float, lr: float | None) -> dict[str, Any]:
    """Compare one step's losses and state on the two sides (see the module docstring)."""
    losses = {k[5:]: (float(sg_arrays[k]), float(torch_arrays[k]))
              for k in sg_arrays if k.startswith("loss.")}
    loss_err = max(abs(a - b) / max(abs(b), 1e-12) for a, b in losses.values())
    worst, worst_key, sign_flips, missing, zeros = 0.0, "", 0, [], []
    largest_grad = max([float(numpy.abs(v).max()) for k, v in torch_arrays.items()
                        if k.startswith("grad.") and v.size] or [0.0])
    for k, a in sg_arrays.items():
        if k.startswith(("loss.", "before.")) or k.endswith("num_batches_tracked"):
            continue
        if k not in torch_arrays:
            missing.append(k)
            continue
        b = torch_arrays[k].astype(numpy.float64)
        a = a.astype(numpy.float64)
        scale = max(float(numpy.abs(b).max()), 1e-12)
        if k.startswith("grad.") and max(scale, float(numpy.abs(a).max())) <= 1e-5 * largest_grad:
            zeros.append(k)  # a gradient that is 0 but for rounding on both sides
            continue
        diff = numpy.abs(a - b)
        if lr is not None and ("before." + k) in sg_arrays:
            # entries moved by Adam in opposite directions: a gradient of about 0
            flips = (diff > rtol * scale) & (diff <= 2.0 * lr * 1.01 + rtol * scale)
            sign_flips += int(flips.sum())
            diff = numpy.where(flips, 0.0, diff)
        err = float(diff.max()) / scale if diff.size else 0.0
        if err > worst:
            worst, worst_key = err, k
    ok = loss_err <= rtol and worst <= rtol and not missing
    return {"ok": ok, "losses": losses, "loss_rel_err": loss_err, "worst_rel_err": worst,
            "worst_tensor": worst_key, "adam_sign_flips": sign_flips, "missing": missing,
            "zero_gradients": zeros,
            "tensors": sum(1 for k in sg_arrays if not k.startswith(("loss.", "before.")))}


def _check(names: list[str], args: argparse.Namespace) -> list[dict[str, Any]]:
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            paths = {side: os.path.join(tmp, f"{name}.{side}.npz") for side in SIDES}
            for side in SIDES:
                _run_child(side, name, args, ["--check-dump", paths[side]])
            with numpy.load(paths["scratchgen"]) as s, numpy.load(paths["torch"]) as t:
                r = check_state(dict(s), dict(t), args.rtol, MODELS[name][2])
            r["model"] = name
            results.append(r)
            losses = ", ".join(f"{k} {a:.6f} vs {b:.6f}" for k, (a, b) in r["losses"].items())
            print(f"{name:15s} {'ok  ' if r['ok'] else 'FAIL'} loss {losses} "
                  f"(rel {r['loss_rel_err']:.1e}); {r['tensors']} tensors, worst rel "
                  f"{r['worst_rel_err']:.1e} ({r['worst_tensor']})"
                  + (f", {r['adam_sign_flips']} Adam sign flips" if r["adam_sign_flips"] else "")
                  + (f", zero on both sides: {', '.join(r['zero_gradients'])}"
                     if r["zero_gradients"] else "")
                  + (f"; missing on the PyTorch side: {', '.join(r['missing'])}"
                     if r["missing"] else ""), flush=True)
    return results


# ---- the command --------------------------------------------------------------------------------

def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="scratchgen bench torch", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default=",".join(MODELS),
                   help="comma-separated names (default: all; --list shows them)")
    p.add_argument("--steps", type=int, default=20, help="timed steps per process (median)")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    p.add_argument("--rounds", type=int, default=3,
                   help="processes per side and model, alternating the sides")
    p.add_argument("--threads", type=int, default=None,
                   help="threads for both sides (default: all cores)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default=None, metavar="PATH", help="also write the rows here")
    p.add_argument("--no-torch", action="store_true", help="time the scratchgen side only")
    p.add_argument("--check", action="store_true",
                   help="compare one step of each model on the two sides instead of timing")
    p.add_argument("--rtol", type=float, default=1e-4, help="--check's tolerance")
    p.add_argument("--install-torch", action="store_true",
                   help="pip install PyTorch's CPU build, then exit")
    p.add_argument("--list", action="store_true", help="list the models and exit")
    p.add_argument("--child", nargs=2, metavar=("SIDE", "MODEL"), help=argparse.SUPPRESS)
    p.add_argument("--check-dump", default=None, help=argparse.SUPPRESS)
    return p


def main(argv: list[str] | None = None) -> Any:
    p = _parser()
    args = p.parse_args(argv)
    if args.threads is None:
        args.threads = default_threads()
    if args.steps < 1 or args.warmup < 0 or args.rounds < 1 or args.threads < 1:
        p.error("--steps, --rounds and --threads must be >= 1 and --warmup >= 0")
    if args.child:
        side, name = args.child
        if side not in SIDES or name not in MODELS:
            p.error(f"--child {side} {name}: unknown side or model")
        if args.check_dump:
            _check_dump(side, name, args.seed, args.threads, args.check_dump)
            print(json.dumps({"wrote": args.check_dump}))
        else:
            print(json.dumps(measure(side, name, args.steps, args.warmup, args.seed,
                                     args.threads)))
        return 0
    if args.list:
        for name, (batch, what, _) in MODELS.items():
            print(f"{name:15s} batch {batch:3d}  {what}")
        return 0
    if args.install_torch:
        print(" ".join(INSTALL_COMMAND), flush=True)
        return subprocess.run(INSTALL_COMMAND).returncode
    names = [n.strip() for n in args.models.split(",") if n.strip()]
    unknown = [n for n in names if n not in MODELS]
    if unknown or not names:
        p.error(f"unknown model(s) {', '.join(unknown) or '(none given)'}; "
                f"choose from {', '.join(MODELS)}")

    has_torch, torch_info = (False, "not asked (--no-torch)") if args.no_torch \
        else torch_available()
    if args.check:
        if not has_torch:
            print(f"PyTorch not found ({torch_info}): --check needs it "
                  "(scratchgen bench torch --install-torch)")
            return 1
        print(f"one step of each model, scratchgen vs PyTorch {torch_info}, same initial "
              f"weights, batch and noise; tolerance {args.rtol:g} (relative to each tensor's "
              f"largest entry)", flush=True)
        results = _check(names, args)
        if args.json:
            _write_json(args.json, results)
        return 0 if all(r["ok"] for r in results) else 1

    sides = SIDES if has_torch else SIDES[:1]
    print(f"median ms per train step, {args.steps} timed steps after {args.warmup} warm-up in a "
          f"fresh process per side and model, {args.rounds} rounds alternating the sides "
          f"(median over rounds; min over all steps); {args.threads} thread(s) per side; "
          f"CPU, float32", flush=True)
    if has_torch:
        print(f"PyTorch {torch_info}; ratio = scratchgen / PyTorch", flush=True)
    else:
        print(f"PyTorch not found ({torch_info}): scratchgen side only "
              "(scratchgen bench torch --install-torch installs it)", flush=True)
    print(_HEADER, flush=True)
    rows = []
    for name in names:
        runs: dict[str, list[dict[str, Any]]] = {side: [] for side in sides}
        for _ in range(args.rounds):
            for side in sides:
                runs[side].append(json.loads(_run_child(side, name, args, [])))
        rows.append(_summarise(name, runs))
        print(format_row(rows[-1]), flush=True)
    if args.json:
        _write_json(args.json, rows)
    return rows


def _write_json(path: str, obj: Any) -> None:
    out = pathlib.Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(obj, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    result = main()
    sys.exit(result if isinstance(result, int) else 0)
