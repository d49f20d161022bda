"""``Trainer``: the one training loop every model uses.

A model brings its own train step, a callable ``train_step(batch) -> {"loss": 0.12, ...}``
that does the forward pass, the backward pass and the optimizer updates (a GAN's step updates
its discriminator and its generator with two optimizers; the step owns them). The loop brings
everything around it:

- the batches, epoch after epoch, until ``max_steps`` steps or ``epochs`` epochs;
- a progress line (step, epoch, it/s, ETA, running means of the losses) and ``metrics.jsonl``;
- sample grids from ``on_sample`` every ``sample_every`` steps (``samples/step_000500.png``);
- checkpoints every ``checkpoint_every`` steps and at least every ``checkpoint_seconds``
  seconds (a minute by default), at the end, and on Ctrl-C or SIGTERM, holding everything
  registered (modules, optimizers, schedulers, EMA and other ``extras``, the train step's own
  state if it has one), the DataLoader's position, every global random state and the counters;
- ``resume=True``: continue from the run folder's checkpoint, exactly where it stopped;
- a loss that turns NaN or infinite stops the run (``NonFiniteLossError``) before anything of
  that step is saved, so the last checkpoint holds finite weights (``allow_nonfinite=True``
  trains on and only warns).

Resume is exact: N steps in one go and N/2 steps + stop + resume for N/2 more give bit-identical
weights on the CPU, because the checkpoint holds every source of the next step's numbers (the
weights and optimizer moments, the loader's shuffling generator and position in the epoch, the
generators dropout and noise draw from), and the hooks (samples, evaluation) run on their own
random numbers so that they never shift the training stream. (On a GPU the checkpoint holds
the CPU generators only, as ``backend.get_rng_state`` does: a resumed CUDA run continues with
the same weights and batches, but its device generator starts again from the seed.)

Example::

    model = nn.Sequential(...); opt = optim.Adam(model.parameters(), lr=1e-3)

    def train_step(batch):
        x, y = batch
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(); loss.backward(); opt.step()
        return {"loss": loss.item()}

    trainer = Trainer(train_step, loader, "runs/mlp", epochs=5,
                      modules={"model": model}, optimizers={"opt": opt}, resume=True)
    result = trainer.fit()

A model's own training step (``scratchgen.models.steps``: ``TrainStep(model, opt)`` for a model
with one loss, ``GANTrainStep(G, D, ...)`` and the like for several players) is such a callable.
"""
from __future__ import annotations

import math
import os
import pathlib
import signal
import sys
import time
from typing import IO, Any, Callable, Iterable, Iterator, Mapping

from scratchgen import backend
from scratchgen.autograd import no_grad
from scratchgen.kernels import memory
from scratchgen.train.checkpoint import (
    CHECKPOINT_NAME, capture_rng_state, isolated_rng, load_checkpoint, load_latest,
    save_checkpoint,
)
from scratchgen.train.images import save_image_grid
from scratchgen.train.interrupts import NonFiniteLossError, TrainingInterrupted, _SignalGuard
from scratchgen.train.log import MetricsLog, ProgressLine, RunningMeans, as_float
from scratchgen.train.state import (
    TRAINER_STATE_FORMAT, FitResult, History, named_objects, restore_trainer_state, trainer_state,
)

__all__ = ["Trainer", "FitResult", "History", "TrainingInterrupted", "NonFiniteLossError",
           "TRAINER_STATE_FORMAT"]


class Trainer:
    """Runs ``train_step`` over ``loader`` with logs, sample grids, checkpoints and resume.

    Args:
        train_step: ``train_step(batch) -> {name: value}``, one optimization step on a batch.
            Values are floats (or 0-d Tensors/arrays) and are averaged between reports. If the
            callable has ``state_dict()`` / ``load_state_dict()`` (a step object with its own
            counters, say) its state is checkpointed too.
        loader: an iterable of batches, re-iterated once per epoch; a ``DataLoader`` (anything
            with ``state_dict()``) is checkpointed so that a resumed run gets the same batches
            (a plain iterable starts its epoch over on resume).
        out_dir: the run folder (``metrics.jsonl``, ``samples/``, ``checkpoint.npz``); ``None``
            writes nothing at all.
        max_steps, epochs: stop after this many steps in total, or epochs in total, whichever
            comes first (at least one is needed).
        modules, optimizers, schedulers, extras: the state to checkpoint, each a mapping
            name -> object with ``state_dict()`` / ``load_state_dict()`` (or a single object,
            or a list). ``extras`` is for anything else (an ``EMA``, a GAN's fixed noise
            holder...). Schedulers are stepped by the loop, after every train step
            (``scheduler_interval="step"``) or at the end of every epoch (``"epoch"``);
            a scheduler the train step steps itself belongs in ``extras``.
        log_every: report (progress line and one ``metrics.jsonl`` record) every this many steps.
        sample_every, on_sample: ``on_sample(step, samples_dir)`` every ``sample_every`` steps
            and at the end. It runs under ``no_grad`` on its own random numbers, and the
            modules' train/eval modes are restored after it. If it returns images
            ((N, C, H, W), Tensor or array) the loop saves them as
            ``samples/step_000500.png`` (scaled by ``sample_value_range``, default the batch's
            min and max), captioned with ``sample_caption`` (``{step}`` in it becomes the
            step; default ``"samples after step {step}"``); if it returns ``None`` it wrote
            its own files.
        on_epoch_end: ``on_epoch_end(trainer) -> {name: value} | None`` after each epoch
            (held like ``on_sample``); a returned dict is printed and logged as ``"eval"``.
        checkpoint_every: save every this many steps (``None``: by time only, at the end
            and on Ctrl-C / SIGTERM).
        checkpoint_seconds: also save when this many seconds have passed since the last save
            (or since the session started), so that a run killed without warning (``kill
            -9``, a power cut) loses at most that much work (``None``: by steps only).
        keep_previous: keep the checkpoint being replaced as ``checkpoint.prev.npz``.
        resume: continue from ``out_dir``'s checkpoint if there is one (else start afresh).
        resume_from: continue from this checkpoint file (implies ``resume``).
        progress: show the progress line; ``stream`` (default ``sys.stderr``) receives it and
            the loop's messages; ``tty`` forces the in-place (``True``) or line (``False``) style.
        device: where checkpoint tensors are loaded (modules and optimizers then move them to
            their own parameters' devices).
        handle_sigint: defer Ctrl-C (SIGINT) and SIGTERM to the end of the current step
            (main thread only); ``fit`` then saves and raises ``TrainingInterrupted``.
        allow_nonfinite: a NaN or infinite value from the train step only warns (at the next
            report) instead of stopping the run with ``NonFiniteLossError``.
        seed: seeds the hooks' private random numbers (hook at step s gets ``seed + s``).

    After ``fit``, ``trainer.step`` is the number of steps done and ``trainer.epoch`` the number
    of whole epochs done.
    """

    def __init__(self, train_step: Callable[[Any], Mapping[str, Any]], loader: Iterable[Any],
                 out_dir: str | os.PathLike | None = None, *, max_steps: int | None = None,
                 epochs: int | None = None, modules: Any = None, optimizers: Any = None,
                 schedulers: Any = None, extras: Any = None, scheduler_interval: str = "step",
                 log_every: int = 50, sample_every: int | None = None,
                 on_sample: Callable[[int, pathlib.Path], Any] | None = None,
                 sample_value_range: tuple[float, float] | None = None,
                 sample_caption: str | None = None,
                 on_epoch_end: Callable[["Trainer"], Mapping[str, Any] | None] | None = None,
                 checkpoint_every: int | None = None,
                 checkpoint_seconds: float | None = 60.0, keep_previous: bool = True,
                 resume: bool = False, resume_from: str | os.PathLike | None = None,
                 progress: bool = True, stream: IO[str] | None = None, tty: bool | None = None,
                 device: Any = "cpu", handle_sigint: bool = True, seed: int = 0,
                 allow_nonfinite: bool = False) -> None:
        if max_steps is None and epochs is None:
            raise ValueError("Trainer needs max_steps or epochs (or both) to know when to stop")
        for name, v in (("max_steps", max_steps), ("epochs", epochs), ("log_every", log_every),
                        ("sample_every", sample_every), ("checkpoint_every", checkpoint_every)):
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
                raise ValueError(f"Trainer: {name} must be a positive integer or None, got {v!r}")
        if checkpoint_seconds is not None and not (
                isinstance(checkpoint_seconds, (int, float)) and checkpoint_seconds > 0):
            raise ValueError(f"Trainer: checkpoint_seconds must be a positive number or None, "
                             f"got {checkpoint_seconds!r}")
        if scheduler_interval not in ("step", "epoch"):
            raise ValueError(f"scheduler_interval must be 'step' or 'epoch', got "
                             f"{scheduler_interval!r}")
        if out_dir is None and (checkpoint_every or resume or resume_from):
            raise ValueError("checkpoints and resume need an out_dir")
        self.train_step = train_step
        self.loader = loader
        self.out_dir = pathlib.Path(out_dir) if out_dir is not None else None
        self.max_steps, self.epochs = max_steps, epochs
        self.modules = named_objects(modules, "module")
        self.optimizers = named_objects(optimizers, "optimizer")
        self.schedulers = named_objects(schedulers, "scheduler")
        self.extras = named_objects(extras, "extra")
        self.scheduler_interval = scheduler_interval
        self.log_every = log_every
        self.sample_every = sample_every
        self.on_sample = on_sample
        self.sample_value_range = sample_value_range
        self.sample_caption = sample_caption or "samples after step {step}"
        self.on_epoch_end = on_epoch_end
        self.checkpoint_every = checkpoint_every
        self.checkpoint_seconds = checkpoint_seconds
        self.allow_nonfinite = bool(allow_nonfinite)
        self.keep_previous = keep_previous
        self.resume = bool(resume or resume_from)
        self.resume_from = pathlib.Path(resume_from) if resume_from is not None else None
        self.device = device
        self.handle_sigint = handle_sigint
        self.seed = int(seed)
        self.stream = stream if stream is not None else sys.stderr
        self.show_progress = progress
        self.tty = tty

        self.step = 0  # optimization steps done
        self.epoch = 0  # whole epochs done
        self.batch_in_epoch = 0  # steps done in the epoch in progress
        self.elapsed = 0.0  # training seconds over all sessions
        self.meter = RunningMeans()
        self.last_losses: dict[str, float] = {}
        self._iterator: Iterator[Any] | None = None
        self._saved_step = -1
        self._saved_at = time.monotonic()
        self._sampled_step = -1
        self._progress: ProgressLine | None = None
        self._eta_rate: float | None = None

    # ---- paths --------------------------------------------------------------------------------
    @property
    def checkpoint_path(self) -> pathlib.Path | None:
        return self.out_dir / CHECKPOINT_NAME if self.out_dir is not None else None

    @property
    def samples_dir(self) -> pathlib.Path | None:
        return self.out_dir / "samples" if self.out_dir is not None else None

    @property
    def metrics_path(self) -> pathlib.Path | None:
        return self.out_dir / "metrics.jsonl" if self.out_dir is not None else None

    def epoch_length(self) -> int | None:
        """Batches per epoch, when the loader knows (``len(loader)``)."""
        try:
            return len(self.loader)  # type: ignore[arg-type]
        except TypeError:
            return None

    @property
    def total_steps(self) -> int | None:
        """The step the run stops at, when it is known in advance."""
        n = self.epoch_length()
        by_epochs = self.epochs * n if self.epochs is not None and n is not None else None
        candidates = [s for s in (self.max_steps, by_epochs) if s is not None]
        return min(candidates) if candidates else None

    def fractional_epoch(self) -> float:
        n = self.epoch_length()
        return self.epoch + (self.batch_in_epoch / n if n else 0.0)

    # ---- state --------------------------------------------------------------------------------
    def state_dict(self, loader_state: Any = None, rng_state: Any = None) -> dict[str, Any]:
        """Everything a resumed run needs (see the module docstring and ``train.state``)."""
        return trainer_state(self, loader_state, rng_state)

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore a ``state_dict()``: the registered objects, the loader, the random state and
        the counters. Every registered name must be in the checkpoint (and vice versa)."""
        restore_trainer_state(self, state)
        self._iterator = None
        self._saved_step = self.step

    def save_checkpoint(self, path: str | os.PathLike | None = None, *, loader_state: Any = None,
                        rng_state: Any = None) -> pathlib.Path:
        """Write ``state_dict()`` to ``path`` (default ``out_dir/checkpoint.npz``) atomically."""
        target = pathlib.Path(path) if path is not None else self.checkpoint_path
        if target is None:
            raise ValueError("no path given and the Trainer has no out_dir")
        save_checkpoint(self.state_dict(loader_state, rng_state), target,
                        keep_previous=self.keep_previous)
        self._saved_step = self.step
        self._saved_at = time.monotonic()
        return target

    def _stop_nonfinite(self, values: Mapping[str, float]) -> None:
        """Raise ``NonFiniteLossError`` for the step about to be counted, which is neither
        logged nor saved: the last checkpoint keeps the weights of finite steps."""
        terms = ", ".join(f"{k} {v:.6g}" for k, v in values.items())
        path = self.checkpoint_path
        if self._saved_step < 0 or path is None or not path.exists():
            path = None
        kept = (f"the last checkpoint (step {self._saved_step}) is kept" if path is not None
                else "no checkpoint was saved")
        raise NonFiniteLossError(
            f"non-finite loss at step {self.step + 1} ({terms}); the run stopped and {kept}; "
            "allow_nonfinite=True (--allow-nonfinite) trains on anyway",
            self.step + 1, dict(values), path)

    def _resume(self) -> None:
        if self.resume_from is not None:
            path, state = self.resume_from, load_checkpoint(self.resume_from, self.device)
        else:
            assert self.out_dir is not None
            found = load_latest(self.out_dir, self.device, warn=self._message)
            if found is None:
                # a run stopped before its first save starts over; what it logged goes too
                if self.metrics_path is not None:
                    MetricsLog(self.metrics_path).truncate_after(0)
                self._message(f"no checkpoint in {self.out_dir}: starting from step 0")
                return
            path, state = found
        self.load_state_dict(state)
        if self.metrics_path is not None:
            MetricsLog(self.metrics_path).truncate_after(self.step)
        self._message(f"resumed from {path} at step {self.step} "
                      f"(epoch {self.fractional_epoch():.2f})")

    # ---- hooks --------------------------------------------------------------------------------
    def _run_hook(self, fn: Callable[..., Any], *args: Any) -> Any:
        """A hook runs without autograd, on private random numbers, and cannot leave modules in
        another train/eval mode than it found them."""
        modes = [(m, m.training) for mod in self.modules.values()
                 if hasattr(mod, "modules") for m in mod.modules()]
        try:
            with no_grad(), isolated_rng(self.seed + self.step):
                return fn(*args)
        finally:
            for m, mode in modes:
                object.__setattr__(m, "training", mode)

    def _sample(self) -> None:
        if self.on_sample is None or self.samples_dir is None or self._sampled_step == self.step:
            return
        self._sampled_step = self.step
        images = self._run_hook(self.on_sample, self.step, self.samples_dir)
        if images is not None:
            save_image_grid(images, self.samples_dir / f"step_{self.step:06d}.png",
                            value_range=self.sample_value_range,
                            caption=self.sample_caption.format(step=self.step))

    def _end_epoch(self, log: MetricsLog | None, history: list[dict[str, Any]]) -> None:
        self.epoch += 1
        self.batch_in_epoch = 0
        self._iterator = None
        if self.scheduler_interval == "epoch":
            for s in self.schedulers.values():
                s.step()
        if self.on_epoch_end is not None:
            values = self._run_hook(self.on_epoch_end, self)
            if values:
                values = {k: as_float(v) for k, v in values.items()}
                record = {"step": self.step, "epoch": float(self.epoch),
                          "time": round(self.elapsed, 3), "eval": values}
                history.append(record)
                if log is not None:
                    log.write(record)
                shown = "  ".join(f"{k} {v:.4f}" for k, v in values.items())
                self._message(f"epoch {self.epoch} (step {self.step}): {shown}")

    # ---- output -------------------------------------------------------------------------------
    def _message(self, text: str) -> None:
        if self.show_progress:
            if self._progress is not None:
                self._progress.message(text)
            else:
                self.stream.write(text + "\n")
                self.stream.flush()

    def _learning_rates(self) -> dict[str, float]:
        lrs = {}
        for name, opt in self.optimizers.items():
            groups = getattr(opt, "param_groups", None)
            if groups and "lr" in groups[0]:
                lrs[name] = float(groups[0]["lr"])
        return lrs

    def _done(self) -> bool:
        return ((self.max_steps is not None and self.step >= self.max_steps)
                or (self.epochs is not None and self.epoch >= self.epochs))

    # ---- the loop -----------------------------------------------------------------------------
    def fit(self) -> FitResult:
        """Train until ``max_steps`` / ``epochs``; returns a ``FitResult``.

        On Ctrl-C or SIGTERM a checkpoint is written and ``TrainingInterrupted`` (a
        ``KeyboardInterrupt``) is raised, its message naming the step and the checkpoint;
        ``resume=True`` continues from it. The first signal lets the current step finish, so
        the checkpoint holds whole steps only. A ``KeyboardInterrupt`` raised inside the step
        (a second signal, or the step's own code) is saved as of the start of that step: the
        loader's position and scratchgen's generators are rewound so the resumed run redoes
        the step, but updates the step had already applied to parameters are not undone.

        A NaN or infinite value from the train step raises ``NonFiniteLossError`` (unless
        ``allow_nonfinite``) before that step is logged or saved.
        """
        memory.configure_malloc()  # keep freed temporaries for the next step (kernels.memory)
        self._progress = ProgressLine(None, self.stream, self.tty) if self.show_progress else None
        if self.resume:
            self._resume()
        if self._progress is not None:
            self._progress.total_steps = self.total_steps
        if self.out_dir is not None:
            self.out_dir.mkdir(parents=True, exist_ok=True)
        log = MetricsLog(self.metrics_path) if self.metrics_path is not None else None
        history: list[dict[str, Any]] = []
        session_start = time.perf_counter()
        elapsed_at_start = self.elapsed
        window_start, window_step = session_start, self.step
        session_step = self.step
        self._eta_rate = None
        self._saved_at = time.monotonic()
        loader_before = rng_before = None
        in_step = False
        signum = signal.SIGINT

        def clock() -> float:
            return elapsed_at_start + time.perf_counter() - session_start

        try:
            with _SignalGuard(self.handle_sigint) as signals:
                while not self._done():
                    if self._iterator is None:
                        self._iterator = iter(self.loader)
                    # where the run stands before this step: what an interruption inside the
                    # step saves, so that the resumed run redoes the whole step (a few
                    # microseconds; NumPy's and Python's global generators cost 0.2 ms to
                    # copy, so for those an interruption saves their state at that moment)
                    sd = getattr(self.loader, "state_dict", None)
                    loader_before = sd() if callable(sd) else None
                    rng_before = backend.get_rng_state()
                    in_step = True
                    try:
                        batch = next(self._iterator)
                    except StopIteration:
                        in_step = False
                        if self.batch_in_epoch == 0:
                            raise RuntimeError("the loader gave no batches for a whole epoch")
                        self._end_epoch(log, history)
                        continue
                    values = self.train_step(batch)
                    in_step = False
                    values = {k: as_float(v) for k, v in values.items()} if values else {}
                    if not self.allow_nonfinite and not all(map(math.isfinite,
                                                                values.values())):
                        self._stop_nonfinite(values)
                    self.step += 1
                    self.batch_in_epoch += 1
                    self.elapsed = clock()
                    if values:
                        self.meter.update(values)
                    if self.scheduler_interval == "step":
                        for s in self.schedulers.values():
                            s.step()
                    n = self.epoch_length()
                    if n is not None and self.batch_in_epoch >= n:
                        self._end_epoch(log, history)

                    now = time.perf_counter()
                    rate = (self.step - window_step) / max(now - window_start, 1e-9)
                    self._eta_rate = (self.step - session_step) / max(now - session_start, 1e-9)
                    if self.step % self.log_every == 0:
                        self._report(log, history, rate)
                        window_start, window_step = time.perf_counter(), self.step
                    elif self._progress is not None:
                        self._progress.update(self.step, self.fractional_epoch(), rate,
                                              self.meter.means(), self._eta_rate)
                    if self.sample_every and self.step % self.sample_every == 0:
                        self._sample()
                    if self.out_dir is not None and (
                            (self.checkpoint_every and self.step % self.checkpoint_every == 0)
                            or (self.checkpoint_seconds is not None and time.monotonic()
                                - self._saved_at >= self.checkpoint_seconds)):
                        self.elapsed = clock()
                        self.save_checkpoint()
                    if signals.requested is not None:
                        signum = signals.requested
                        raise KeyboardInterrupt
            self.elapsed = clock()
            if len(self.meter):
                # a last, partial window: reported, but kept (and checkpointed) so that a
                # resumed run's next report averages the same steps as an uninterrupted run's
                rate = (self.step - window_step) / max(time.perf_counter() - window_start, 1e-9)
                self._report(log, history, rate, reset=False)
            self._sample()
            path = None
            if self.out_dir is not None:
                path = self.checkpoint_path if self._saved_step == self.step else \
                    self.save_checkpoint()
            self._message(f"done: step {self.step}, epoch {self.fractional_epoch():.2f}, "
                          f"{self.elapsed:.1f} s" + (f"; checkpoint {path}" if path else ""))
            return FitResult(self.step, self.epoch, self.elapsed, dict(self.last_losses),
                             history, path)
        except KeyboardInterrupt as exc:
            self.elapsed = clock()
            if isinstance(exc, TrainingInterrupted):
                signum = exc.signum
            path = None
            if self.out_dir is not None:
                if in_step:
                    rng = capture_rng_state()
                    rng["scratchgen"] = rng_before
                    path = self.save_checkpoint(loader_state=loader_before, rng_state=rng)
                else:
                    path = self.save_checkpoint()
            name = {signal.SIGINT: "Ctrl-C", signal.SIGTERM: "SIGTERM"}.get(signum, "signal")
            message = (f"stopped by {name} at step {self.step}"
                       + (f"; checkpoint saved to {path}; continue with resume=True "
                          "(--resume)" if path is not None else ""))
            raise TrainingInterrupted(message, signum, path) from None
        finally:
            if self._progress is not None:
                self._progress.close()
            self._progress = None

    def _report(self, log: MetricsLog | None, history: list[dict[str, Any]], rate: float,
                reset: bool = True) -> None:
        means = self.meter.means()
        if reset:
            self.meter.reset()
        self.last_losses = means
        record: dict[str, Any] = {"step": self.step, "epoch": round(self.fractional_epoch(), 4),
                                  "time": round(self.elapsed, 3), "losses": means}
        lrs = self._learning_rates()
        if lrs:
            record["lr"] = lrs
        history.append(record)
        if log is not None:
            log.write(record)
        if self._progress is not None:
            self._progress.report(self.step, self.fractional_epoch(), rate, means,
                                  self._eta_rate)
        if any(not math.isfinite(v) for v in means.values()):
            bad = [k for k, v in means.items() if not math.isfinite(v)]
            self._message(f"warning: non-finite {', '.join(bad)} at step {self.step}")
