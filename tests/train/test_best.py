"""BestWeights: which weights it keeps, restoring them, and its trip through a checkpoint."""
from __future__ import annotations

import numpy as np
import pytest

from scratchgen import nn
from scratchgen.train import BestWeights, load_checkpoint, save_checkpoint


def _set(model, value):
    for p in model.parameters():
        p.data = np.full(p.shape, value, dtype=p.data.dtype)


def _value(model):
    return {float(p.data.flat[0]) for p in model.parameters()}


def test_keeps_the_weights_of_the_lowest_value_and_restores_them():
    model = nn.Linear(3, 2)
    best = BestWeights(model)
    for epoch, (w, v) in enumerate([(1.0, 0.5), (2.0, 0.3), (3.0, 0.4), (4.0, float("nan")),
                                     (5.0, 0.3)], start=1):
        _set(model, w)
        best.offer(v, epoch)
    assert (best.value, best.epoch) == (0.3, 2)   # a tie or a NaN does not replace it
    assert _value(model) == {5.0}
    best.restore()
    assert _value(model) == {2.0}

    high = BestWeights(model, mode="max")
    for epoch, v in enumerate([0.1, 0.9, 0.5], start=1):
        _set(model, float(epoch))
        assert high.offer(v, epoch) == (epoch <= 2)
    assert high.epoch == 2


def test_survives_a_checkpoint(tmp_path):
    model = nn.Linear(3, 2)
    best = BestWeights(model)
    _set(model, 7.0)
    best.offer(1.5, 4)
    _set(model, 0.0)
    save_checkpoint({"extras": {"best": best.state_dict()}}, tmp_path / "c.npz")
    again = BestWeights(model)
    again.load_state_dict(load_checkpoint(tmp_path / "c.npz")["extras"]["best"])
    assert (again.value, again.epoch) == (1.5, 4)
    again.restore()
    assert _value(model) == {7.0}

    empty = BestWeights(model)
    save_checkpoint({"extras": {"best": empty.state_dict()}}, tmp_path / "e.npz")
    empty.load_state_dict(load_checkpoint(tmp_path / "e.npz")["extras"]["best"])
    assert empty.value is None


def test_bad_use_is_named():
    model = nn.Linear(3, 2)
    with pytest.raises(ValueError, match="mode"):
        BestWeights(model, mode="lowest")
    with pytest.raises(RuntimeError, match="no value"):
        BestWeights(model).restore()
    with pytest.raises(ValueError, match="mode"):
        BestWeights(model, mode="max").load_state_dict(BestWeights(model).state_dict())


def test_a_resumed_run_keeps_the_best_epoch_of_the_first_session(tmp_path, setup_factory):
    """Offered figures 0.5, 0.3, 0.4 over three epochs: a run stopped after two epochs and
    resumed for the third ends with epoch 2's weights, as the run made in one go does."""
    from scratchgen.train import Trainer

    figures = {1: 0.5, 2: 0.3, 3: 0.4}

    def run(out, epochs, resume, seed=0):
        s = setup_factory(seed=seed)
        best = BestWeights(s.model)
        kept = {}

        def end_of_epoch(trainer):
            best.offer(figures[trainer.epoch], trainer.epoch)
            kept[trainer.epoch] = s.weights()
            return {"figure": figures[trainer.epoch]}

        Trainer(s.step, s.loader, out, epochs=epochs, modules={"model": s.model},
                optimizers={"opt": s.opt}, extras={"best": best}, on_epoch_end=end_of_epoch,
                resume=resume, progress=False).fit()
        best.restore()
        return best, s.weights(), kept

    straight, w_straight, kept = run(tmp_path / "a", 3, False)
    assert straight.epoch == 2
    for k in kept[2]:
        assert np.array_equal(w_straight[k], kept[2][k]), k
    run(tmp_path / "b", 2, False)
    resumed, w_resumed, kept_b = run(tmp_path / "b", 3, True, seed=7)
    assert list(kept_b) == [3] and resumed.epoch == 2 and resumed.value == 0.3
    for k in w_straight:
        assert np.array_equal(w_resumed[k], w_straight[k]), k
