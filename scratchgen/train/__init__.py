"""Training utilities: the loop, checkpoints, logs and pictures. Only this package and the CLI
write files for the user.

- ``Trainer``: the loop every model uses (progress, ``metrics.jsonl``, sample grids,
  atomic checkpoints by steps and by time, exact resume, Ctrl-C and SIGTERM checkpoints, a
  stop at the first non-finite loss); ``History``: per-epoch rows checkpointed with the run.
- ``TimedStep``: a train step that adds up the seconds spent in it (training time alone).
- ``BestWeights``: the weights at the best validation figure, checkpointed with the run.
- ``save_checkpoint`` / ``load_checkpoint`` / ``load_latest``: the checkpoint files.
- ``read_metrics``: ``metrics.jsonl`` back as series for ``plot_curves``.
- ``prepare_run_folder``: a new run into a new folder, or ``--resume`` of the same model's
  run with the same options; ``read_run_config`` / ``load_run_state``: a run folder's
  ``config.json`` (the model and its options) and newest checkpoint, to use a finished run;
  ``recording_runs``: the run folders a block of code started or resumed.
- ``write_report`` / ``render_report``: ``report.html``, a run folder's config, curves,
  metrics and pictures on one offline page.
- ``options``: the training commands' shared argparse types and flags.
- Pictures: ``to_grid``, ``save_png``, ``save_image_grid``, ``save_interpolation_strip``,
  ``label_grid`` (captions and row / column headers), ``png_description``, ``plot_curves``,
  ``curves_image``, ``bar_chart``, ``scatter_2d``, ``density_plot``.
"""
from scratchgen.train.images import (  # noqa: F401
    label_grid, png_description, save_image_grid, save_interpolation_strip, save_png, to_grid,
)
from scratchgen.train.plots import (  # noqa: F401
    bar_chart, curves_image, density_plot, plot_curves, scatter_2d,
)
from scratchgen.train.best import BestWeights  # noqa: F401
from scratchgen.train.checkpoint import (  # noqa: F401
    CHECKPOINT_NAME, PREVIOUS_NAME, capture_rng_state, isolated_rng, load_checkpoint,
    load_latest, restore_rng_state, save_checkpoint,
)
from scratchgen.train.log import MetricsLog, ProgressLine, RunningMeans, read_metrics  # noqa: F401
from scratchgen.train.loop import (  # noqa: F401
    FitResult, History, NonFiniteLossError, Trainer, TrainingInterrupted,
)
from scratchgen.train.run import (  # noqa: F401
    CONFIG_NAME, MAY_CHANGE, RunError, given_options, load_run_state, prepare_run_folder,
    read_run_config, recording_runs, write_run_config,
)
from scratchgen.train.report import REPORT_NAME, render_report, write_report  # noqa: F401
from scratchgen.train.timing import TimedStep  # noqa: F401

__all__ = [
    "Trainer", "FitResult", "History", "TrainingInterrupted", "NonFiniteLossError",
    "BestWeights",
    "save_checkpoint", "load_checkpoint", "load_latest", "capture_rng_state",
    "restore_rng_state", "isolated_rng", "CHECKPOINT_NAME", "PREVIOUS_NAME",
    "MetricsLog", "ProgressLine", "RunningMeans", "read_metrics",
    "to_grid", "save_png", "save_image_grid", "save_interpolation_strip", "plot_curves",
    "scatter_2d", "density_plot",
    "CONFIG_NAME", "MAY_CHANGE", "RunError", "prepare_run_folder", "given_options",
    "write_run_config", "read_run_config", "load_run_state", "recording_runs",
    "REPORT_NAME", "render_report", "write_report", "label_grid", "png_description",
    "curves_image", "bar_chart", "TimedStep",
]
