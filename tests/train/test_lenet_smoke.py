"""The LeNet benchmark end to end on a small slice of MNIST (the full run is a benchmark:
``scratchgen bench lenet``), and the saved classifier's round trip."""
from __future__ import annotations

import io
import json
import pathlib

import numpy as np
import pytest

import scratchgen as sg

MNIST_DIR = pathlib.Path(__file__).resolve().parents[2].parent / "shared" / "data" / "mnist"
needs_mnist = pytest.mark.skipif(not (MNIST_DIR / "t10k-images-idx3-ubyte.gz").exists(),
                                 reason=f"no MNIST files in {MNIST_DIR}")


@needs_mnist
def test_lenet_trains_on_a_slice_and_its_classifier_loads(tmp_path):
    from scratchgen.benchmarks.lenet import LeNet, evaluate, load_mnist_classifier, train
    from scratchgen.data import MNIST

    summary = train(MNIST_DIR, tmp_path, epochs=1, batch_size=64, limit=1280, progress=False,
                    stream=io.StringIO())
    assert summary["steps"] == 20 and summary["epochs"] == 1
    assert summary["test_accuracy"] > 0.5  # 20 steps of Adam already learn a lot
    assert json.loads((tmp_path / "result.json").read_text())["steps"] == 20
    assert (tmp_path / "metrics.jsonl").exists() and (tmp_path / "checkpoint.npz").exists()

    model = load_mnist_classifier(tmp_path / "classifier.npz")
    assert isinstance(model, LeNet) and not model.training
    assert model.info["test_accuracy"] == pytest.approx(summary["test_accuracy"])
    test = MNIST(train=False, data_dir=MNIST_DIR)
    x = test.images[:8].astype(np.float32) / 255.0
    f = model.features(sg.tensor(x))
    assert f.shape == (8, 256) and float(f.numpy().min()) >= 0.0
    n = summary["test_images"]
    assert evaluate(model, test.images[:n], test.labels[:n]) == \
        pytest.approx(summary["test_accuracy"])


def test_lenet_shapes_without_data():
    from scratchgen.benchmarks.lenet import LeNet

    model = LeNet()
    x = np.random.default_rng(0).random((3, 1, 28, 28)).astype(np.float32)
    assert model(x).shape == (3, 10)
    assert model.features(x).shape == (3, 256)
