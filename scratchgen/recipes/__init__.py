"""Training recipes, one per model: each trains on real data (the embedded digits by default,
MNIST with ``--data mnist --data-dir DIR``) in a run folder (checkpoints, exact ``--resume``,
``report.html``), writes its pictures and measures the model, and has a ``main(argv)``.

Run them as ``scratchgen train NAME ...`` (see ``scratchgen train --help``) or
``python -m scratchgen.recipes.MODULE ...``; each module's docstring gives the commands that
produced the figures it reports. The short scripts that show each model's training loop in
plain sight are the repository's top-level ``examples/``.
"""
