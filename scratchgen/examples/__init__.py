"""Example programs, one per model: each trains on real data (the embedded digits by default,
MNIST with ``--data mnist --data-dir DIR``), writes its pictures, and has a ``main(argv)``.

Run them as ``scratchgen train NAME ...`` (see ``scratchgen train --help``) or
``python -m scratchgen.examples.MODULE ...``; each module's docstring gives the commands that
produced the figures it reports.
"""
