"""The Trainer never loses much work: checkpoints by time, SIGTERM handled as Ctrl-C, a stop at the
first non-finite loss that keeps the last finite checkpoint, histories that survive a resume,
and no temporary files left by a killed save."""
from __future__ import annotations

import os
import signal
import time

import numpy as np
import pytest

import scratchgen as sg
from scratchgen.train import (
    History, NonFiniteLossError, Trainer, TrainingInterrupted, load_checkpoint,
)
from scratchgen.train import loop


def test_checkpoints_by_time_as_well_as_by_step(tmp_path, setup_factory, monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr(time, "monotonic", lambda: clock[0])
    saved = []
    real_save = loop.save_checkpoint

    def recording_save(state, path, keep_previous=True):
        saved.append(state["step"])
        return real_save(state, path, keep_previous)

    monkeypatch.setattr(loop, "save_checkpoint", recording_save)

    def one_second_per_step(call):
        clock[0] += 1.0

    s = setup_factory(on_call=one_second_per_step)
    s.trainer(tmp_path, max_steps=10, log_every=5, checkpoint_seconds=2.5).fit()
    assert saved == [3, 6, 9, 10]   # every 2.5 s of training, and at the end

    saved.clear()
    s = setup_factory(on_call=one_second_per_step)
    s.trainer(tmp_path / "both", max_steps=10, log_every=5, checkpoint_every=4,
              checkpoint_seconds=2.5).fit()
    assert saved == [3, 4, 7, 8, 10]  # whichever comes first; each resets the clock

    saved.clear()
    s = setup_factory(on_call=one_second_per_step)
    s.trainer(tmp_path / "steps", max_steps=10, log_every=5, checkpoint_every=4,
              checkpoint_seconds=None).fit()
    assert saved == [4, 8, 10]


def test_checkpoint_seconds_is_checked():
    with pytest.raises(ValueError, match="checkpoint_seconds must be a positive number"):
        Trainer(lambda b: {}, [1], None, max_steps=1, checkpoint_seconds=0)


def test_sigterm_is_handled_like_ctrl_c(tmp_path, setup_factory):
    straight = setup_factory()
    straight.trainer(tmp_path / "straight", max_steps=16, log_every=4).fit()

    def terminate(call):
        if call == 6:
            os.kill(os.getpid(), signal.SIGTERM)

    before = signal.getsignal(signal.SIGTERM)
    run = setup_factory(on_call=terminate)
    with pytest.raises(TrainingInterrupted) as exc:
        run.trainer(tmp_path / "run", max_steps=16, log_every=4).fit()
    assert signal.getsignal(signal.SIGTERM) is before
    assert run.calls == 6   # the step in progress finished
    assert exc.value.signum == signal.SIGTERM
    assert exc.value.checkpoint == tmp_path / "run" / "checkpoint.npz"
    assert str(exc.value) == (f"stopped by SIGTERM at step 6; checkpoint saved to "
                              f"{tmp_path / 'run' / 'checkpoint.npz'}; continue with "
                              "resume=True (--resume)")
    assert load_checkpoint(tmp_path / "run" / "checkpoint.npz")["step"] == 6
    resumed = setup_factory(seed=5)
    resumed.trainer(tmp_path / "run", max_steps=16, log_every=4, resume=True).fit()
    for k, v in straight.weights().items():
        np.testing.assert_array_equal(v, resumed.weights()[k])


def test_a_second_signal_interrupts_the_step_at_once(tmp_path, setup_factory):
    def twice(call):
        if call == 3:
            os.kill(os.getpid(), signal.SIGTERM)
            os.kill(os.getpid(), signal.SIGINT)

    run = setup_factory(on_call=twice)
    with pytest.raises(TrainingInterrupted) as exc:
        run.trainer(tmp_path, max_steps=10, log_every=4).fit()
    assert exc.value.signum == signal.SIGINT
    # interrupted inside step 3: saved as of its start, so a resumed run redoes it
    assert load_checkpoint(tmp_path / "checkpoint.npz")["step"] == 2


def test_a_nan_in_the_data_stops_the_run_and_keeps_the_last_finite_checkpoint(
        tmp_path, setup_factory):
    s = setup_factory()
    inner = s.step

    def step(batch):
        x, y = batch
        if s.calls == 4:   # the fifth batch holds a NaN
            x = x * float("nan")
        return inner((x, y))

    trainer = Trainer(step, s.loader, tmp_path, max_steps=12, log_every=1, checkpoint_every=2,
                      progress=False, modules={"model": s.model}, optimizers={"opt": s.opt})
    with pytest.raises(NonFiniteLossError) as exc:
        trainer.fit()
    message = str(exc.value)
    assert "\n" not in message
    assert message.startswith("non-finite loss at step 5 (loss nan, noise ")
    assert "the last checkpoint (step 4) is kept" in message and "--allow-nonfinite" in message
    assert exc.value.step == 5 and np.isnan(exc.value.losses["loss"])
    assert exc.value.checkpoint == tmp_path / "checkpoint.npz"
    # the step's NaN weights were never saved, nor was the step logged
    state = load_checkpoint(tmp_path / "checkpoint.npz")
    assert state["step"] == 4
    assert all(np.isfinite(np.asarray(v)).all() for v in state["modules"]["model"].values())
    assert not any(np.isfinite(p.numpy()).all() for p in s.model.parameters())
    logged = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert len(logged) == 4


def test_nonfinite_before_any_checkpoint_says_so(tmp_path, setup_factory):
    s = setup_factory()
    with pytest.raises(NonFiniteLossError, match=r"at step 1 \(v inf\); the run stopped and no "
                                                 "checkpoint was saved"):
        Trainer(lambda batch: {"v": float("inf")}, s.loader, tmp_path, max_steps=3,
                progress=False).fit()
    assert not (tmp_path / "checkpoint.npz").exists()


def test_allow_nonfinite_trains_on(tmp_path, setup_factory):
    s = setup_factory()
    values = iter([1.0, float("nan"), 3.0, 4.0])
    result = Trainer(lambda batch: {"v": next(values)}, s.loader, tmp_path, max_steps=4,
                     log_every=2, progress=False, allow_nonfinite=True).fit()
    assert result.step == 4


def test_history_is_checkpointed_so_a_resumed_run_keeps_every_row(tmp_path, setup_factory):
    def run(history, **kw):
        s = setup_factory(**kw)

        def end(trainer):
            history.append({"epoch": trainer.epoch, "rows": list(range(trainer.epoch))})

        return Trainer(s.step, s.loader, tmp_path, epochs=4, log_every=3, progress=False,
                       modules={"model": s.model}, optimizers={"opt": s.opt},
                       extras={"history": history}, on_epoch_end=end,
                       resume=(tmp_path / "checkpoint.npz").exists())

    first = History()
    with pytest.raises(KeyboardInterrupt):
        run(first, fail_at=14).fit()   # in the third epoch (6 steps each)
    assert [r["epoch"] for r in first] == [1, 2]
    second = History()
    run(second).fit()
    assert [r["epoch"] for r in second] == [1, 2, 3, 4]
    assert second[3]["rows"] == [0, 1, 2, 3]
    # a finished run resumed again keeps the rows (summary.json used to come out empty)
    third = History()
    run(third).fit()
    assert list(third) == list(second)


def test_resume_removes_the_temporary_files_of_a_killed_save(tmp_path, setup_factory):
    setup_factory().trainer(tmp_path, max_steps=3).fit()
    dead = 99_999_999   # above any pid_max: no such process
    leftovers = [tmp_path / f".checkpoint.npz.{dead}.0123456789ab.tmp",
                 tmp_path / f"..checkpoint.npz.new.{dead}.0123456789ab.tmp"]
    for p in leftovers:
        p.write_bytes(b"half a checkpoint")
    setup_factory().trainer(tmp_path, max_steps=5, resume=True).fit()
    assert not any(p.exists() for p in leftovers)
    assert sorted(os.listdir(tmp_path)) == ["checkpoint.npz", "checkpoint.prev.npz",
                                            "metrics.jsonl"]


def test_history_round_trips_through_a_checkpoint(tmp_path):
    h = History([{"epoch": 1, "loss": 0.5, "kl": [1.0, 2.0]}])
    sg.save(h.state_dict(), tmp_path / "h.npz")
    back = History()
    back.load_state_dict(sg.load(tmp_path / "h.npz"))
    assert back == h
