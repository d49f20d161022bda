"""``scratchgen bench kernels`` end to end with one tiny timed run per layer (the full run is a
benchmark), on the CPU and on CUDA (a GPU, or the CUDA emulator)."""
from __future__ import annotations

import re

import pytest

from scratchgen.kernels import bench


def test_bench_prints_a_row_per_layer(device, capsys):
    assert bench.main(["--device", device, "--batch", "1", "--repeat", "1", "--roof", "128"]) == 0
    out = capsys.readouterr().out
    threads = r" \(\d+ kernel threads: SCRATCHGEN_NUM_THREADS\)" if device == "cpu" else ""
    assert re.search(rf"device {device}{threads}, dtype float32, batch 1", out)
    assert re.search(r"roof: \d+x\d+ @ \d+x\d+ matmul = [\d.]+ GFLOP/s", out)
    rows = [line for line in out.splitlines()
            if line.startswith(("conv ", "convT ", "self-attention"))]
    names = [row.split()[1] if row.startswith(("conv ", "convT ")) else row.split()[0]
             for row in rows]
    expected = ([f"{a}->{b}" for a, b, _ in bench.CONV_LAYERS]
                + [f"{a}->{b}" for a, b, _ in bench.SAME_LAYERS]
                + [f"{a}->{b}" for a, b, _ in bench.CONV_T_LAYERS] + ["self-attention"])
    assert names == expected
    for row in rows:  # fwd ms, GFLOP/s, %roof, f+b ms, GFLOP/s, %roof
        figures = [float(f) for f in re.findall(r"\s([\d.]+)%?(?=\s|$)", row)[-6:]]
        assert len(figures) == 6 and figures[0] > 0 and figures[3] > 0, row


def test_bench_against_torch_prints_a_ratio_per_layer(capsys):
    pytest.importorskip("torch", reason="--torch compares with PyTorch's CPU build, not "
                                         "installed here")
    assert bench.main(["--batch", "1", "--repeat", "1", "--roof", "128", "--torch"]) == 0
    out = capsys.readouterr().out
    table = out[out.index("against PyTorch"):].splitlines()[3:]
    n_layers = (len(bench.CONV_LAYERS) + len(bench.SAME_LAYERS) + len(bench.CONV_T_LAYERS)
                + 1)
    assert len(table) == n_layers
    for row in table:  # fwd ms, torch ms, ratio, f+b ms, torch ms, ratio
        figures = [float(f) for f in row.split()[-6:]]
        assert all(figures[i] > 0 for i in (0, 1, 3, 4)), row
        for ours, theirs, ratio in (figures[:3], figures[3:]):  # printed to 0.01
            low, high = (ours - 0.005) / (theirs + 0.005), (ours + 0.005) / max(theirs - 0.005,
                                                                                1e-9)
            assert low - 0.005 <= ratio <= high + 0.005, row


def test_bench_against_torch_says_when_it_cannot(monkeypatch, capsys):
    """Without PyTorch the comparison fails with one line that says how to install it."""
    monkeypatch.setattr(bench.sys, "executable", "false")  # the child process fails
    assert bench.main(["--batch", "1", "--repeat", "1", "--roof", "128", "--torch"]) == 2
    assert "--install-torch" in capsys.readouterr().out
