"""Training utilities: the loop, checkpoints and pictures. Only this package and the CLI write
files for the user."""
from scratchgen.train.images import save_image_grid, to_grid  # noqa: F401
