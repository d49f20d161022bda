"""Mode coverage of the MLP GAN and PacGAN on the ring and the grid, over seeds (PacGAN Table 1).

    scratchgen bench modes                  # GAN and PacGAN4, ring and grid, 10 seeds
    scratchgen bench modes --jobs 2         # two runs at a time, each on one thread
    scratchgen bench modes --quick          # 2 seeds, a quarter of the steps: a smoke run
    scratchgen bench modes --configs pacgan4 --data grid --seeds 3 --steps 8000
    scratchgen bench modes --list           # the configs

Each run trains ``scratchgen train gan`` 's networks with its training code
(``scratchgen.recipes.gan.train``; nothing is written to disk for it) from seed s = 0, 1, ...
for the example's number of updates (20,000 on the ring, 100,000 on the grid: ``--steps``
changes it), then draws 2,500 samples (the EMA generator when the config keeps one) and scores
them with ``scratchgen.metrics.modes`` (PacGAN's protocol: a sample is of high quality within
3 standard deviations of its nearest mode; a mode is captured when it has a high-quality
sample; reverse KL of the high-quality samples' mode histogram against the uniform one). The
table gives the mean +- standard error (std / sqrt(seeds)) over seeds of the modes captured,
the high-quality percentage and the reverse KL, with how many seeds captured every mode, the
worst seed's high-quality percentage and the seconds per run; under it, PacGAN's published
modes and high-quality percentages (their Table 1: 400,000 updates of larger networks at lr
1e-4). Pictures of seed 0's samples over the modes go to --out.

``--jobs N`` trains N runs at once in N processes, each with one kernel thread and one BLAS
thread (``SCRATCHGEN_NUM_THREADS=1``, ``OPENBLAS_NUM_THREADS=1``, ...). A run's result depends on
its thread count only through the rounding of sums, but GAN training amplifies such differences,
so the same seed can end with another mode count on another thread count: compare the figures
of many seeds, not single runs.

Configs (``--configs``, comma-separated), each on top of the example's defaults for the data
set (see ``scratchgen train gan --help``):

CONFIG_LIST
"""
from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import pathlib
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Any, Iterator

import numpy as np

from scratchgen.recipes import gan as example
from scratchgen.kernels import memory
from scratchgen.metrics.modes import setting_coverage

#: name -> (command-line options of ``scratchgen train gan``, description)
CONFIGS: dict[str, tuple[list[str], str]] = {
    "gan": (["--pack", "1", "--batch-size", "100", "--ema", "0", "--r1", "0"],
            "Goodfellow's GAN: no packing, batch 100, no EMA, no R1 (same networks and "
            "schedule)"),
    "pacgan4": ([], "the example's default: PacGAN4 (batch 400 = 100 packs of 4) with the EMA "
                    "generator, and R1 (gamma 0.3) on the grid"),
    "pacgan4-no-r1": (["--r1", "0"], "PacGAN4 with the EMA generator, without R1"),
}
DEFAULT_CONFIGS = ("gan", "pacgan4")

#: PacGAN, Table 1: (modes captured, its standard error, high-quality %) per data set
PUBLISHED = {
    ("gan", "ring"): (6.3, 0.5, 98.2),
    ("pacgan4", "ring"): (7.8, 0.1, 95.9),
    ("gan", "grid"): (17.3, 0.8, 94.8),
    ("pacgan4", "grid"): (24.8, 0.2, 93.6),
}

__doc__ = __doc__.replace("CONFIG_LIST", "\n".join(
    f"    {k:13s} {v[1]}" + (f" ({' '.join(v[0])})" if v[0] else "")
    for k, v in CONFIGS.items()))


def _mean_se(values: list[float]) -> tuple[float, float]:
    a = np.asarray(values, dtype=np.float64)
    if not np.isfinite(a).all():      # a run without high-quality samples has reverse KL inf
        return math.inf, math.nan
    se = float(a.std(ddof=1) / math.sqrt(len(a))) if len(a) > 1 else float("nan")
    return float(a.mean()), se


def run_one(config: str, data: str, seed: int, steps: int | None,
            picture: pathlib.Path | None = None) -> dict[str, Any]:
    """Train one config on one data set from one seed; its coverage figures and seconds."""
    argv = ["--data", data, "--seed", str(seed)] + CONFIGS[config][0]
    if steps is not None:
        argv += ["--steps", str(steps)]
    args = example.resolve(example.parser().parse_args(argv))
    t0 = time.perf_counter()
    step, fit = example.train(args, None, progress=False)
    seconds = time.perf_counter() - t0
    samples = example.final_samples(step, args, seed=seed + 12345)
    cov = setting_coverage(data, samples)
    if picture is not None:
        example.plot_over_modes(samples, data, picture,
                                f"{config}, seed {seed}: {cov['modes_captured']} of "
                                f"{cov['num_modes']} modes, "
                                f"{100 * cov['high_quality_fraction']:.1f}% high quality")
    return {"config": config, "data": data, "seed": seed, "steps": fit.step,
            "seconds": seconds, **cov}


#: the variables that set the thread counts of the kernels and of the BLAS libraries
_THREAD_VARIABLES = ("SCRATCHGEN_NUM_THREADS", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS",
                     "MKL_NUM_THREADS")


def _run_all(tasks: list[tuple], jobs: int) -> Iterator[dict[str, Any]]:
    """``run_one(*task)`` for every task, in order; ``jobs`` > 1 trains that many at once in
    child processes started with one thread each (the variables are read when NumPy loads)."""
    if jobs == 1:
        for task in tasks:
            yield run_one(*task)
        return
    saved = {k: os.environ.get(k) for k in _THREAD_VARIABLES}
    os.environ.update({k: "1" for k in _THREAD_VARIABLES})
    try:
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=jobs, mp_context=context) as pool:
            futures = [pool.submit(run_one, *task) for task in tasks]
            for f in futures:
                yield f.result()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean and standard error over the seeds of one (config, data) cell."""
    modes = _mean_se([r["modes_captured"] for r in rows])
    hq = _mean_se([100 * r["high_quality_fraction"] for r in rows])
    kl = _mean_se([r["reverse_kl"] for r in rows])
    return {"config": rows[0]["config"], "data": rows[0]["data"], "seeds": len(rows),
            "steps": rows[0]["steps"], "num_modes": rows[0]["num_modes"],
            "modes": modes, "high_quality_percent": hq, "reverse_kl": kl,
            "all_modes_seeds": sum(r["modes_captured"] == r["num_modes"] for r in rows),
            "min_high_quality_percent": min(100 * r["high_quality_fraction"] for r in rows),
            "seconds_per_run": float(np.mean([r["seconds"] for r in rows]))}


def format_table(cells: list[dict[str, Any]]) -> str:
    head = (f"{'config':13s} {'data':5s} {'steps':>6s} {'seeds':>5s}  {'modes':>14s}  "
            f"{'all':>5s}  {'high quality %':>14s}  {'min HQ %':>8s}  {'reverse KL':>13s}  "
            f"{'s/run':>6s}")
    lines = [head, "-" * len(head)]
    for c in cells:
        m, hq, kl = c["modes"], c["high_quality_percent"], c["reverse_kl"]
        lines.append(
            f"{c['config']:13s} {c['data']:5s} {c['steps']:6d} {c['seeds']:5d}  "
            f"{m[0]:5.1f} +- {m[1]:3.1f} /{c['num_modes']:<2d} "
            f"{c['all_modes_seeds']:2d}/{c['seeds']:<2d}  {hq[0]:6.1f} +- {hq[1]:4.1f}  "
            f"{c['min_high_quality_percent']:8.1f}  {kl[0]:6.3f} +- {kl[1]:.3f}  "
            f"{c['seconds_per_run']:6.1f}")
    lines.append("")
    lines.append("published (PacGAN Table 1, 400,000 updates, lr 1e-4, G 4x400 BN, "
                 "D 3x200 maxout):")
    for (config, data), v in PUBLISHED.items():
        k = 8 if data == "ring" else 25
        lines.append(f"{'GAN' if config == 'gan' else 'PacGAN4':13s} {data:5s}  "
                     f"{v[0]:5.1f} +- {v[1]:3.1f} /{k:<2d}  high quality {v[2]:.1f} %")
    return "\n".join(lines)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--configs", default=",".join(DEFAULT_CONFIGS),
                   help=f"comma-separated, of {', '.join(CONFIGS)}")
    p.add_argument("--data", default="ring,grid", help="ring, grid or ring,grid")
    p.add_argument("--seeds", type=int, default=10, help="seeds 0 .. N-1 per cell")
    p.add_argument("--steps", type=int, default=None,
                   help="updates per run (default: the example's, 20,000 on the ring and "
                        "100,000 on the grid)")
    p.add_argument("--jobs", type=int, default=1,
                   help="runs trained at once, each in its own process on one thread")
    p.add_argument("--quick", action="store_true",
                   help="2 seeds and a quarter of the steps (unless given)")
    p.add_argument("--out", default="runs/bench-modes", help="folder for pictures and JSON")
    p.add_argument("--list", action="store_true", help="list the configs and stop")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    memory.configure_malloc()  # reuse freed temporaries, as training does
    if args.list:
        for k, v in CONFIGS.items():
            print(f"{k:13s} {v[1]}")
        return 0
    configs = [c.strip() for c in args.configs.split(",") if c.strip()]
    for c in configs:
        if c not in CONFIGS:
            raise SystemExit(f"--configs {args.configs}: unknown config {c!r} (choose from "
                             f"{', '.join(CONFIGS)})")
    datas = [d.strip() for d in args.data.split(",") if d.strip()]
    for d in datas:
        if d not in example.TOY:
            raise SystemExit(f"--data {args.data}: unknown data set {d!r} (ring or grid)")
    if args.seeds < 1:
        raise SystemExit(f"--seeds {args.seeds}: must be at least 1")
    if args.steps is not None and args.steps < 1:
        raise SystemExit(f"--steps {args.steps}: must be positive")
    if args.jobs < 1:
        raise SystemExit(f"--jobs {args.jobs}: must be at least 1")
    seeds = 2 if args.quick and args.seeds == 10 else args.seeds
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    cells, runs = [], []
    tasks = []
    for data in datas:
        for config in configs:
            steps = args.steps if args.steps is not None else example.DEFAULTS[data]["steps"]
            if args.quick and args.steps is None:
                steps //= 4
            tasks += [(config, data, seed, steps,
                       out / f"{config}-{data}.png" if seed == 0 else None)
                      for seed in range(seeds)]
    rows: list[dict[str, Any]] = []
    for r in _run_all(tasks, args.jobs):
        print(f"{r['config']} {r['data']} seed {r['seed']}: {r['modes_captured']}/"
              f"{r['num_modes']} modes, {100 * r['high_quality_fraction']:.1f}% high quality, "
              f"reverse KL {r['reverse_kl']:.3f} ({r['steps']} steps, {r['seconds']:.0f} s)",
              flush=True)
        rows.append(r)
        if len(rows) == seeds:  # the tasks come back in order, a cell's seeds together
            runs += rows
            cells.append(summarize(rows))
            rows = []
    table = format_table(cells)
    print()
    print(table)
    (out / "modes.json").write_text(json.dumps({"cells": cells, "runs": runs}, indent=2,
                                               default=float) + "\n")
    (out / "modes.txt").write_text(table + "\n")
    print(f"\nwrote {out / 'modes.json'}, {out / 'modes.txt'} and the pictures of seed 0 "
          f"({', '.join(f'{c}-{d}.png' for d in datas for c in configs)}) in {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
