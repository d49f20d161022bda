"""Datasets, loaders and transforms.

- ``Dataset``, ``ArrayDataset``, ``Subset``, ``random_split``: map-style datasets.
- ``DataLoader``: shuffled batches with a seeded generator and exact resume (``state_dict``).
- ``transforms``: ``ToFloat``, ``ScaleToMinusOneOne``, ``Normalize``, ``RandomHorizontalFlip``,
  ``PadAndRandomCrop``, ``Compose``.
- ``Digits``: the embedded default dataset (UCI hand-written digits, 8x8), no download needed.
- ``MNIST``, ``FashionMNIST``, ``load_idx``: the IDX format, from a local folder or a download.
- Toy 2D sets: ``ring_of_gaussians``, ``grid_of_gaussians``, ``two_spirals``, ``checkerboard``,
  and their exact densities with ``toy_density``.
"""
from .dataset import ArrayDataset, Dataset, Subset, random_split
from .digits import DIGITS_TEST_SIZE, Digits, load_digits_arrays
from .images import image_shape, load_image_arrays
from .idx import IDX_DTYPES, IDXFormatError, load_idx, parse_idx, save_idx
from .loader import DataLoader
from .mnist import MNIST, ChecksumError, FashionMNIST, default_data_root
from .toy import (
    TOY_NAMES,
    ToyDensity,
    ToySet,
    checkerboard,
    grid_of_gaussians,
    ring_of_gaussians,
    toy_dataset,
    toy_density,
    two_spirals,
)
from .transforms import (
    Compose,
    Normalize,
    PadAndRandomCrop,
    RandomHorizontalFlip,
    RandomTransform,
    ScaleToMinusOneOne,
    ToFloat,
)
from . import transforms

__all__ = [
    "load_image_arrays", "image_shape",
    "Dataset", "ArrayDataset", "Subset", "random_split",
    "DataLoader",
    "transforms", "Compose", "ToFloat", "ScaleToMinusOneOne", "Normalize", "RandomTransform",
    "RandomHorizontalFlip", "PadAndRandomCrop",
    "IDX_DTYPES", "IDXFormatError", "load_idx", "parse_idx", "save_idx",
    "MNIST", "FashionMNIST", "ChecksumError", "default_data_root",
    "Digits", "load_digits_arrays", "DIGITS_TEST_SIZE",
    "ToySet", "ToyDensity", "ring_of_gaussians", "grid_of_gaussians", "two_spirals",
    "checkerboard", "toy_dataset", "toy_density", "TOY_NAMES",
]
