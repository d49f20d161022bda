"""Datasets, loaders and transforms.

- ``Dataset``, ``ArrayDataset``, ``Subset``, ``random_split``: map-style datasets.
- ``DataLoader``: shuffled batches with a seeded generator and exact resume (``state_dict``).
- ``transforms``: ``ToFloat``, ``ScaleToMinusOneOne``, ``Normalize``, ``RandomHorizontalFlip``,
  ``PadAndRandomCrop``, ``Compose``.
- ``Digits``: the embedded default dataset (UCI hand-written digits, 8x8), no download needed.
- ``MNIST``, ``FashionMNIST``, ``load_idx``: the IDX format, from a local folder or a download.
- Toy 2D sets: ``ring_of_gaussians``, ``grid_of_gaussians``, ``two_spirals``, ``checkerboard``,
  and their exact densities with ``toy_density``.
- Translation tasks: ``edge_map`` / ``paired_edges`` (digits and their outlines, paired: the
  "sketch -> image" task), ``load_stroke_domains`` / ``stroke_mass`` (thin- and thick-stroke
  digits, unpaired), ``erode`` / ``dilate`` (grey-scale morphology), ``load_image_folder`` /
  ``load_unpaired_folders`` / ``UnpairedLoader`` (a user's own pictures).
- ``photos``: the shipped colour photos and style images (``photo("chelsea")``) and
  ``load_image`` for a colour image file.
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
from .morphology import dilate, erode
from .edges import edge_map, paired_edges
from .strokes import load_stroke_domains, stroke_domains, stroke_mass
from .folders import UnpairedLoader, load_image_folder, load_unpaired_folders
from .photos import load_image, photo
from .transforms import (
    Compose,
    Normalize,
    PadAndRandomCrop,
    RandomHorizontalFlip,
    RandomTransform,
    ScaleToMinusOneOne,
    ToFloat,
)
from . import photos, transforms

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
    "erode", "dilate", "edge_map", "paired_edges", "load_stroke_domains", "stroke_domains",
    "stroke_mass", "load_image_folder", "load_unpaired_folders", "UnpairedLoader",
    "photos", "photo", "load_image",
]
