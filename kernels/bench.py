"""Benchmark of the convolution (and attention) kernels on the layers of a DCGAN/SAGAN.

    scratchgen bench kernels [--device cpu|cuda] [--batch 64] [--repeat 10] [--dtype float32]
                            [--roof N] [--stat median|min] [--torch]

First measures the machine's own matrix-product rate (the roof: the best of several square
products), then, for each layer, the median time of the forward pass and of forward + backward,
their GFLOP/s and their fraction of the roof. The layers are the k=4, s=2 (transposed)
convolutions of a DCGAN, a 3x3 stride-1 convolution of a ResNet block, and SAGAN's attention.

``--torch`` also times the same layers with PyTorch's CPU build (same batch, dtype and number
of threads; in a child process, so that neither side's threads disturb the other) and prints
both times and their ratio, scratchgen / PyTorch. PyTorch is not a dependency of scratchgen:
``scratchgen bench torch --install-torch`` installs its CPU build.

FLOPs are counted as 2*N*Ho*Wo*O*C*kh*kw per convolution pass (for a transposed convolution,
Ho*Wo is its *input* size: it is the adjoint of the convolution with that output size), the
same for each backward pass. The backward of a first layer (3 or 1 input channels) skips the
input gradient, as a network's first layer never needs it. Attention counts 2*L*L*(dk + dv)
per sequence forward and twice that backward.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from typing import Callable

from . import conv as C
from . import memory

K, S, P = 4, 2, 1

# (in, out, input size) with k=4, s=2, p=1
CONV_LAYERS = [(1, 64, 28), (64, 128, 14), (3, 64, 32), (64, 128, 16), (128, 256, 8)]
CONV_T_LAYERS = [(128, 64, 7), (64, 1, 14), (256, 128, 4), (128, 64, 8), (64, 3, 16)]
# (in, out, input size) with k=3, s=1, p=1: a ResNet block's convolution
SAME_LAYERS = [(64, 64, 32)]
ATTENTION = dict(hw=16, channels=64, dk=8, dv=64)


def _timer(sync: Callable[[], None], stat: str):
    summary = statistics.median if stat == "median" else min

    def measure(fn: Callable[[], object], repeat: int, warmup: int = 2) -> float:
        for _ in range(warmup):
            fn()
        sync()
        times = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            fn()
            sync()
            times.append(time.perf_counter() - t0)
        return summary(times)

    return measure


def _matmul_roof(xp, dtype, measure, n: int) -> tuple[float, int]:
    a = xp.asarray(xp.ones((n, n), dtype=dtype) * 0.5)
    b = xp.asarray(xp.ones((n, n), dtype=dtype) * 0.25)
    out = xp.empty((n, n), dtype=dtype)
    best = min(measure(lambda: xp.matmul(a, b, out=out), repeat=5) for _ in range(3))
    return 2 * n**3 / best / 1e9, n


def _row(name, shape, note, flops_f, flops_fb, t_f, t_fb, roof):
    gf = flops_f / t_f / 1e9
    gfb = flops_fb / t_fb / 1e9
    return (
        f"{name:<16} {shape:<24} {note:<12} {t_f * 1e3:9.2f} {gf:8.1f} {gf / roof:6.0%}"
        f" {t_fb * 1e3:9.2f} {gfb:8.1f} {gfb / roof:6.0%}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scratchgen bench kernels", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    parser.add_argument("--roof", type=int, default=None, metavar="N",
                        help="size of the square matmul that measures the roof (default 1024 on "
                             "the CPU, 4096 on a GPU)")
    parser.add_argument("--stat", choices=["median", "min"], default="median",
                        help="summary of the repeats (min is steadier on a busy machine)")
    parser.add_argument("--torch", action="store_true",
                        help="also time the layers with PyTorch's CPU build, with the ratios")
    args = parser.parse_args(argv)
    memory.configure_malloc()  # reuse freed temporaries, as training does

    if args.device == "cuda":
        try:
            import cupy as xp

            xp.cuda.runtime.getDeviceCount()
        except Exception as e:  # noqa: BLE001 - ImportError or a CUDA runtime error
            print(f"--device cuda needs CuPy and an NVIDIA GPU: {e}")
            return 2
        sync = xp.cuda.get_current_stream().synchronize
    else:
        import numpy as xp

        def sync() -> None:
            return None

    import numpy as np

    measure = _timer(sync, args.stat)
    rng = np.random.default_rng(0)
    dtype = args.dtype

    def rand(*shape):
        return xp.asarray(rng.standard_normal(shape).astype(dtype))

    roof_size = args.roof or (1024 if args.device == "cpu" else 4096)
    roof, n_roof = _matmul_roof(xp, dtype, measure, roof_size)
    n = args.batch
    where = f"device {args.device}"
    if args.device == "cpu":
        from . import threads

        where += f" ({threads.get_num_threads()} kernel threads: SCRATCHGEN_NUM_THREADS)"
        # BLAS's workers spin for a while after the roof's product and would slow the first
        # layer's threads down (1.5 ms instead of 0.7 for conv 1->64): let them go to sleep.
        time.sleep(2 * threads._SPIN_SECONDS)
    print(f"{where}, dtype {dtype}, batch {n}, {args.stat} of {args.repeat} runs")
    print(f"roof: {n_roof}x{n_roof} @ {n_roof}x{n_roof} matmul = {roof:.1f} GFLOP/s")
    print()
    head = (f"{'layer':<16} {'input -> output':<24} {'backward':<12} {'fwd ms':>9} "
            f"{'GFLOP/s':>8} {'%roof':>6} {'f+b ms':>9} {'GFLOP/s':>8} {'%roof':>6}")
    print(head)
    print("-" * len(head))

    times: dict[str, tuple[float, float]] = {}
    convs = [(cin, cout, h, K, S, P) for cin, cout, h in CONV_LAYERS]
    convs += [(cin, cout, h, 3, 1, 1) for cin, cout, h in SAME_LAYERS]
    for cin, cout, h, k, s, p in convs:
        x, w, b = rand(n, cin, h, h), rand(cout, cin, k, k), rand(cout)
        ho = C.conv_output_size(h, k, s, p, 1)
        gy = rand(n, cout, ho, ho)
        first = cin in (1, 3)
        flops = 2 * n * ho * ho * cout * cin * k * k

        def fwd():
            return C.conv2d_forward(x, w, b, s, p)

        def fwd_bwd():  # as a training step runs it: the forward keeps im2col(x) for gw
            _, cols = C.conv2d_forward_with_columns(x, w, b, s, p)
            if not first:
                C.conv2d_backward_input(gy, w, x.shape, s, p)
            C.conv2d_backward_weight(gy, x, w.shape, s, p, columns=cols)
            C.conv2d_backward_bias(gy)

        t_f, t_fb = measure(fwd, args.repeat), measure(fwd_bwd, args.repeat)
        name = f"conv {cin}->{cout}" + (f" {k}x{k} s{s}" if k != K else "")
        times[f"{name} @{h}"] = (t_f, t_fb)
        print(_row(name, f"{cin}x{h}x{h} -> {cout}x{ho}x{ho}",
                   "w,b (first)" if first else "x,w,b", flops, flops * (2 if first else 3),
                   t_f, t_fb, roof))

    for cin, cout, h in CONV_T_LAYERS:
        x, w, b = rand(n, cin, h, h), rand(cin, cout, K, K), rand(cout)
        hy = C.conv_transpose_output_size(h, K, S, P, 0, 1)
        gy = rand(n, cout, hy, hy)
        flops = 2 * n * h * h * cout * cin * K * K

        def fwd():
            return C.conv_transpose2d_forward(x, w, b, S, P)

        def fwd_bwd():  # the input gradient's im2col(gy) serves the weight gradient too
            C.conv_transpose2d_forward(x, w, b, S, P)
            _, cols = C.conv2d_forward_with_columns(gy, w, None, S, P)
            C.conv2d_backward_weight(x, gy, w.shape, S, P, columns=cols)
            C.conv2d_backward_bias(gy)

        t_f, t_fb = measure(fwd, args.repeat), measure(fwd_bwd, args.repeat)
        times[f"convT {cin}->{cout} @{h}"] = (t_f, t_fb)
        print(_row(f"convT {cin}->{cout}", f"{cin}x{h}x{h} -> {cout}x{hy}x{hy}", "x,w,b",
                   flops, 3 * flops, t_f, t_fb, roof))

    hw, ch, dk, dv = ATTENTION["hw"], ATTENTION["channels"], ATTENTION["dk"], ATTENTION["dv"]
    seq = hw * hw
    name, shape = "self-attention", f"{ch}x{hw}x{hw}, L={seq} d={dk}/{dv}"
    try:
        from . import attention as A

        attention_forward, attention_backward = A.attention_forward, A.attention_backward
    except (ImportError, AttributeError):
        print(f"{name:<16} {shape:<24} {'n/a (kernels.attention not available)'}")
    else:
        q, k, v = rand(n, seq, dk), rand(n, seq, dk), rand(n, seq, dv)
        dout = rand(n, seq, dv)
        flops = 2 * n * seq * seq * (dk + dv)

        def att_fwd():
            return attention_forward(q, k, v)

        def att_fwd_bwd():
            out, lse = attention_forward(q, k, v)
            attention_backward(dout, q, k, v, out, lse)

        t_f, t_fb = measure(att_fwd, args.repeat), measure(att_fwd_bwd, args.repeat)
        times[name] = (t_f, t_fb)
        print(_row(name, shape, "q,k,v", flops, 3 * flops, t_f, t_fb, roof))
    if args.torch:
        return _compare_with_torch(times, args)
    return 0


def _compare_with_torch(times: dict[str, tuple[float, float]], args) -> int:
    """Times the layers with PyTorch in a child process and prints the ratios."""
    if args.device != "cpu" or args.dtype != "float32":
        print("--torch compares the CPU float32 layers only")
        return 2
    from . import threads

    config = dict(batch=args.batch, repeat=args.repeat, stat=args.stat,
                  threads=threads.get_num_threads())
    code = f"from scratchgen.kernels.bench import torch_layer_times as t; t({config!r})"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if run.returncode != 0:
        last = (run.stderr.strip().splitlines() or ["?"])[-1]
        print(f"--torch: PyTorch's side failed ({last}); scratchgen bench torch "
              f"--install-torch installs its CPU build")
        return 2
    theirs = json.loads(run.stdout.strip().splitlines()[-1])
    print()
    print(f"against PyTorch {theirs.pop('version')} on {config['threads']} thread(s), "
          f"ratio = scratchgen / PyTorch")
    head = (f"{'layer':<26} {'fwd ms':>8} {'torch':>8} {'ratio':>6} "
            f"{'f+b ms':>8} {'torch':>8} {'ratio':>6}")
    print(head)
    print("-" * len(head))
    for name, (t_f, t_fb) in times.items():
        if name in theirs:
            u_f, u_fb = theirs[name]
            print(f"{name:<26} {t_f * 1e3:8.2f} {u_f * 1e3:8.2f} {t_f / u_f:6.2f} "
                  f"{t_fb * 1e3:8.2f} {u_fb * 1e3:8.2f} {t_fb / u_fb:6.2f}")
    return 0


def torch_layer_times(config: dict) -> None:
    """PyTorch's side of ``--torch`` (run in a child process): the same layers, passes and
    gradients as ``main`` (a first layer's input needs no gradient), printed as one JSON
    line {layer: [forward s, forward + backward s]}."""
    import torch

    torch.set_num_threads(config["threads"])
    n, repeat = config["batch"], config["repeat"]
    measure = _timer(lambda: None, config["stat"])
    out: dict = {"version": torch.__version__}
    layers = [("conv", cin, cout, h, K, S, P) for cin, cout, h in CONV_LAYERS]
    layers += [("conv", cin, cout, h, 3, 1, 1) for cin, cout, h in SAME_LAYERS]
    layers += [("convT", cin, cout, h, K, S, P) for cin, cout, h in CONV_T_LAYERS]
    for kind, cin, cout, h, k, s, p in layers:
        module = (torch.nn.Conv2d if kind == "conv" else torch.nn.ConvTranspose2d)(
            cin, cout, k, s, p)
        x = torch.randn(n, cin, h, h, requires_grad=not (kind == "conv" and cin in (1, 3)))
        gy = torch.randn_like(module(x))

        def fwd():
            with torch.no_grad():
                return module(x)

        def fwd_bwd():
            module.zero_grad(set_to_none=True)
            x.grad = None
            module(x).backward(gy)

        name = f"{kind} {cin}->{cout}" + (f" {k}x{k} s{s}" if k != K else "") + f" @{h}"
        out[name] = [measure(fwd, repeat), measure(fwd_bwd, repeat)]
    hw, dk, dv = ATTENTION["hw"], ATTENTION["dk"], ATTENTION["dv"]
    seq = hw * hw
    q, key = torch.randn(n, seq, dk, requires_grad=True), torch.randn(n, seq, dk,
                                                                       requires_grad=True)
    v, dout = torch.randn(n, seq, dv, requires_grad=True), torch.randn(n, seq, dv)
    attention = torch.nn.functional.scaled_dot_product_attention

    def att_fwd():
        with torch.no_grad():
            return attention(q, key, v)

    def att_fwd_bwd():
        attention(q, key, v).backward(dout)

    out["self-attention"] = [measure(att_fwd, repeat), measure(att_fwd_bwd, repeat)]
    print(json.dumps(out))


if __name__ == "__main__":
    raise SystemExit(main())
