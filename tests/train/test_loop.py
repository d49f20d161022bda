"""The training loop: exact resume, Ctrl-C checkpoints, logs, samples and hooks."""
from __future__ import annotations

import io
import json
import os
import pathlib
import signal

import numpy as np
import pytest

import scratchgen as sg
from scratchgen.train import Trainer, load_checkpoint, read_metrics


def _same_state(a, b):
    wa, wb = a.weights(), b.weights()
    assert wa.keys() == wb.keys()
    for k in wa:
        assert np.array_equal(wa[k], wb[k]), k
    for p, q in zip(a.opt.state_dict()["state"].values(), b.opt.state_dict()["state"].values()):
        for k in p:
            assert np.array_equal(np.asarray(p[k]), np.asarray(q[k])), k
    for k in a.ema.shadow:
        assert np.array_equal(a.ema.shadow[k], b.ema.shadow[k]), k
    assert a.opt.param_groups[0]["lr"] == b.opt.param_groups[0]["lr"]


def _records(path, every=4):
    """The log's records at multiples of ``every`` (a session that stops elsewhere also
    reports its last, partial window), without the wall-clock times."""
    out = []
    for line in pathlib.Path(path).read_text().splitlines():
        rec = json.loads(line)
        rec.pop("time")
        if rec["step"] % every == 0:
            out.append(rec)
    return out


def test_resume_is_bit_identical(tmp_path, setup_factory):
    straight = setup_factory()
    straight.trainer(tmp_path / "straight", max_steps=20, log_every=4).fit()

    first = setup_factory()
    first.trainer(tmp_path / "split", max_steps=10, log_every=4, checkpoint_every=3).fit()
    # a differently initialised model: everything must come from the checkpoint
    second = setup_factory(seed=99)
    result = second.trainer(tmp_path / "split", max_steps=20, log_every=4, resume=True).fit()
    assert result.step == 20 and second.calls == 10
    _same_state(straight, second)
    # the log has no duplicate and no missing records, and the same values
    assert _records(tmp_path / "straight" / "metrics.jsonl") == \
        _records(tmp_path / "split" / "metrics.jsonl")


def test_resume_with_epochs_and_resume_from(tmp_path, setup_factory):
    straight = setup_factory()
    r1 = straight.trainer(tmp_path / "a", epochs=3, log_every=5).fit()
    assert r1.step == 18 and r1.epoch == 3

    first = setup_factory()
    first.trainer(tmp_path / "b", epochs=1, log_every=5).fit()  # stops at an epoch boundary
    second = setup_factory(seed=7)
    r2 = second.trainer(tmp_path / "c", epochs=3, log_every=5,
                        resume_from=tmp_path / "b" / "checkpoint.npz").fit()
    assert (r2.step, r2.epoch) == (18, 3)
    _same_state(straight, second)


def test_keyboard_interrupt_inside_the_step_saves_and_resumes_exactly(tmp_path, setup_factory):
    straight = setup_factory()
    straight.trainer(tmp_path / "straight", max_steps=20, log_every=4).fit()

    crashing = setup_factory(fail_at=9)  # eight whole steps, then Ctrl-C inside the ninth
    with pytest.raises(KeyboardInterrupt):
        crashing.trainer(tmp_path / "run", max_steps=20, log_every=4).fit()
    state = load_checkpoint(tmp_path / "run" / "checkpoint.npz")
    assert state["step"] == 8

    resumed = setup_factory(seed=3)
    resumed.trainer(tmp_path / "run", max_steps=20, log_every=4, resume=True).fit()
    _same_state(straight, resumed)
    assert _records(tmp_path / "straight" / "metrics.jsonl") == \
        _records(tmp_path / "run" / "metrics.jsonl")


def test_sigint_is_deferred_to_the_end_of_the_step(tmp_path, setup_factory):
    straight = setup_factory()
    straight.trainer(tmp_path / "straight", max_steps=16, log_every=4).fit()

    def press_ctrl_c(call):
        if call == 6:
            os.kill(os.getpid(), signal.SIGINT)

    before = signal.getsignal(signal.SIGINT)
    run = setup_factory(on_call=press_ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        run.trainer(tmp_path / "run", max_steps=16, log_every=4).fit()
    assert signal.getsignal(signal.SIGINT) is before  # the handler is put back
    assert run.calls == 6  # the step in progress finished
    assert load_checkpoint(tmp_path / "run" / "checkpoint.npz")["step"] == 6

    resumed = setup_factory(seed=3)
    resumed.trainer(tmp_path / "run", max_steps=16, log_every=4, resume=True).fit()
    _same_state(straight, resumed)


def test_metrics_log_contents(tmp_path, setup_factory):
    s = setup_factory()
    values = iter([1.0, float("nan"), 3.0, 4.0, 5.0, 6.0, 7.0])
    inner = s.step

    def step(batch):
        out = inner(batch)
        return {"loss": out["loss"], "v": next(values)}

    from scratchgen.train import Trainer
    Trainer(step, s.loader, tmp_path, max_steps=7, log_every=3, progress=False,
            modules={"m": s.model}, optimizers={"opt": s.opt}, allow_nonfinite=True).fit()
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    recs = [json.loads(line) for line in lines]  # strict JSON: no NaN tokens
    assert [r["step"] for r in recs] == [3, 6, 7]
    assert all({"step", "epoch", "time", "losses", "lr"} <= set(r) for r in recs)
    assert recs[0]["losses"]["v"] is None  # nan in the window: the mean is not a number
    assert recs[1]["losses"]["v"] == pytest.approx(5.0)
    assert recs[2]["losses"]["v"] == pytest.approx(7.0)
    assert recs[0]["epoch"] == pytest.approx(3 / 6)
    assert recs[0]["time"] <= recs[1]["time"] <= recs[2]["time"]
    series = read_metrics(tmp_path / "metrics.jsonl")
    assert series["v"] == [(6, pytest.approx(5.0)), (7, pytest.approx(7.0))]
    assert [st for st, _ in series["loss"]] == [3, 6, 7]


def test_checkpoints_are_atomic_and_keep_the_previous_one(tmp_path, setup_factory, monkeypatch):
    s = setup_factory()
    s.trainer(tmp_path, max_steps=6, log_every=3, checkpoint_every=2).fit()
    assert sorted(p.name for p in tmp_path.iterdir()) == \
        ["checkpoint.npz", "checkpoint.prev.npz", "metrics.jsonl"]
    assert load_checkpoint(tmp_path / "checkpoint.npz")["step"] == 6
    assert load_checkpoint(tmp_path / "checkpoint.prev.npz")["step"] == 4

    # a crash while writing leaves the old files complete and no temporary file behind
    import scratchgen.serialization as ser

    def broken_write(entry, arr, allow_pickle=False):
        raise OSError("disk full")

    monkeypatch.setattr(ser.numpy.lib.format, "write_array", broken_write)
    t = setup_factory().trainer(tmp_path, max_steps=8, log_every=3, resume=True)
    with pytest.raises(OSError):
        t.fit()
    monkeypatch.undo()
    assert load_checkpoint(tmp_path / "checkpoint.npz")["step"] == 6
    assert load_checkpoint(tmp_path / "checkpoint.prev.npz")["step"] == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == \
        ["checkpoint.npz", "checkpoint.prev.npz", "metrics.jsonl"]

    # a damaged newest checkpoint: resume falls back to the previous one, and says so
    (tmp_path / "checkpoint.npz").write_bytes(b"garbage")
    err = io.StringIO()
    s2 = setup_factory(seed=4)
    t2 = s2.trainer(tmp_path, max_steps=6, log_every=3, resume=True, progress=True, stream=err)
    t2.fit()
    assert "warning" in err.getvalue() and "resumed" in err.getvalue()
    assert s2.calls == 2  # steps 5 and 6, after the previous checkpoint's step 4


def test_resume_without_checkpoint_starts_fresh_and_finished_runs_stay_finished(tmp_path,
                                                                                 setup_factory):
    s = setup_factory()
    err = io.StringIO()
    s.trainer(tmp_path, max_steps=5, resume=True, progress=True, stream=err).fit()
    assert "no checkpoint" in err.getvalue() and s.calls == 5
    again = setup_factory()
    r = again.trainer(tmp_path, max_steps=5, resume=True).fit()
    assert again.calls == 0 and r.step == 5


def test_mismatched_checkpoint_is_refused(tmp_path, setup_factory):
    s = setup_factory()
    s.trainer(tmp_path, max_steps=2).fit()
    t = Trainer(s.step, s.loader, tmp_path, max_steps=4, progress=False, resume=True,
                modules={"generator": s.model})
    with pytest.raises(ValueError, match="generator"):
        t.fit()


def test_samples_and_hooks_do_not_change_training(tmp_path, setup_factory):
    plain = setup_factory()
    plain.trainer(tmp_path / "plain", max_steps=12, log_every=4).fit()

    seen = []

    def on_sample(step, out_dir):
        assert not sg.is_grad_enabled()
        seen.append(step)
        hooked.model.eval()  # the loop puts the mode back
        z = sg.randn(4, 1, 5, 5)  # draws from the hook's own generator
        return z

    def on_epoch_end(trainer):
        np.random.standard_normal(10)
        return {"acc": 0.5 + trainer.epoch}

    hooked = setup_factory()
    r = hooked.trainer(tmp_path / "hooked", max_steps=12, log_every=4, sample_every=5,
                       on_sample=on_sample, on_epoch_end=on_epoch_end).fit()
    _same_state(plain, hooked)
    assert hooked.model.training
    assert seen == [5, 10, 12]
    names = sorted(p.name for p in (tmp_path / "hooked" / "samples").iterdir())
    assert names == ["step_000005.png", "step_000010.png", "step_000012.png"]
    evals = [rec for rec in r.history if "eval" in rec]
    assert [(e["step"], e["eval"]["acc"]) for e in evals] == [(6, 1.5), (12, 2.5)]
    assert read_metrics(tmp_path / "hooked" / "metrics.jsonl")["eval/acc"] == [(6, 1.5), (12, 2.5)]


def test_progress_line_styles(tmp_path, setup_factory):
    s = setup_factory()
    out = io.StringIO()
    s.trainer(None, max_steps=10, log_every=5, progress=True, stream=out, tty=False).fit()
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue()
    assert lines[0].startswith("step 5/10  epoch 0.83") and "it/s" in lines[0]
    assert "ETA" in lines[0] and "loss" in lines[0]
    assert len([ln for ln in lines if ln.startswith("step ")]) == 2

    s = setup_factory()
    out = io.StringIO()
    t = s.trainer(None, max_steps=10, log_every=5, progress=True, stream=out, tty=True)
    t.fit()
    assert "\rstep " in out.getvalue()


def test_argument_checks(setup_factory):
    s = setup_factory()
    with pytest.raises(ValueError, match="max_steps or epochs"):
        Trainer(s.step, s.loader)
    with pytest.raises(ValueError, match="out_dir"):
        Trainer(s.step, s.loader, max_steps=3, checkpoint_every=1)
    with pytest.raises(TypeError, match="state_dict"):
        Trainer(s.step, s.loader, max_steps=3, extras={"x": object()})


def test_plain_iterables_as_loaders(tmp_path):
    class Batches:  # an iterable without __len__ or state_dict
        def __iter__(self):
            return iter([1.0, 2.0, 3.0])

    seen = []

    def step(b):
        seen.append(b)
        return {"b": b}

    r = Trainer(step, Batches(), None, epochs=2, log_every=100, progress=False).fit()
    assert seen == [1.0, 2.0, 3.0] * 2 and (r.step, r.epoch) == (6, 2)
    assert r.losses == {"b": 2.0}  # the last (partial) window's mean

    seen.clear()
    r = Trainer(lambda b: step(b[0]), [[0.5], [1.5]], tmp_path, max_steps=3, log_every=100,
                progress=False).fit()
    assert seen == [0.5, 1.5, 0.5] and r.epoch == 1
    assert load_checkpoint(tmp_path / "checkpoint.npz")["loader"] is None


def test_training_applies_the_malloc_setting(tmp_path, setup_factory, monkeypatch):
    """Training, not importing, keeps freed memory in the heap (kernels.memory)."""
    from scratchgen.kernels import memory

    calls = []
    monkeypatch.setattr(memory, "configure_malloc", lambda: calls.append(1) or True)
    s = setup_factory()
    s.trainer(tmp_path, max_steps=2).fit()
    assert calls == [1]
