"""``scratchgen bench kernels`` end to end with one tiny timed run per layer (the full run is a
benchmark), on the CPU and on CUDA (a GPU, or the CUDA emulator)."""
from __future__ import annotations

import re

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
                + [f"{a}->{b}" for a, b, _ in bench.CONV_T_LAYERS] + ["self-attention"])
    assert names == expected
    for row in rows:  # fwd ms, GFLOP/s, %roof, f+b ms, GFLOP/s, %roof
        figures = [float(f) for f in re.findall(r"\s([\d.]+)%?(?=\s|$)", row)[-6:]]
        assert len(figures) == 6 and figures[0] > 0 and figures[3] > 0, row
