"""One direction's training loop: train_step() over the batch stream, with logging, evaluation and checkpoints.

Reads top to bottom like nanoGPT's train.py: build the model, optimizer and stream (`DirectionTrainer`), then

    for batch, position in stream:
        stop if finished;  train_step(batch);  log / evaluate / checkpoint on their steps;  stop on a signal

with the running figures in small dataclasses instead of string-keyed dicts. Orchestration (processes, DDP, the
model directory) lives in pretrain/train.py.
"""

from __future__ import annotations

import logging
import math
import resource
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import torch
from tqdm import tqdm

from contextemb.config import CONFIG_FILE_NAME, Direction, TrainConfig, read_config
from contextemb.corpus import MixedReader, log_read_stats, source_name
from contextemb.cpu_features import choose_precision
from contextemb.errors import TrainingError
from contextemb.heldout import HeldOutScore, evaluation_batches, score_batches
from contextemb.io import DIRECTIONS, METRICS_FILE, TOKENIZER_FILE, append_jsonl, checkpoint_path, weights_path
from contextemb.model_dir import build_language_model, load_weights, save_weights
from contextemb.packaged import resolve_model
from contextemb.sequences import Batch
from contextemb.tokenization import Tokenizer

from .checkpoint import TrainingState, load_checkpoint, save_checkpoint
from .data import BatchStream, open_corpus
from .distributed import Ranks

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CorpusSpec:
    """The corpus files of a run and their --mix weights (picklable: it travels to spawned workers)."""

    files: tuple[Path, ...]
    weights: tuple[float, ...]

    @property
    def names(self) -> list[str]:
        return [source_name(path) for path in self.files]

    def open(self, train: TrainConfig) -> MixedReader:
        return open_corpus(self.files, self.weights, batch_tokens=train.batch_tokens,
                           bucket_batches=train.bucket_batches)


@dataclass(frozen=True)
class DirectionSummary:
    direction: Direction
    step: int
    tokens: int
    elapsed_s: float
    tokens_per_s: float
    valid_ppl: Optional[float]
    valid_bpc: Optional[float]
    interrupted: bool = False
    skipped_nonfinite: int = 0
    precision: str = "float32"


@dataclass
class Window:
    """Sums since the last log record."""

    nll: float = 0.0
    count: int = 0
    start: float = field(default_factory=time.monotonic)


@dataclass
class Milestones:
    """The last step at which each was done (so the end of a run does what is still missing, once)."""

    reported: int = -1
    evaluated: int = -1
    saved: int = -1


def learning_rate_factor(train: TrainConfig):
    """Linear warm-up over warmup_steps; then, with max_steps, linear decay to min_lr_ratio at max_steps."""

    def factor(step: int) -> float:
        warm = min(1.0, (step + 1) / train.warmup_steps) if train.warmup_steps else 1.0
        if train.max_steps is None or step < train.warmup_steps:
            return warm
        progress = min(1.0, (step - train.warmup_steps) / max(1, train.max_steps - train.warmup_steps))
        return warm * (1.0 - progress * (1.0 - train.min_lr_ratio))

    return factor


def make_optimizer(model: torch.nn.Module, train: TrainConfig) -> torch.optim.Optimizer:
    if train.optimizer == "adagrad":
        return torch.optim.Adagrad(model.parameters(), lr=train.lr, initial_accumulator_value=0.1)
    return torch.optim.Adam(model.parameters(), lr=train.lr)


class StopFlag:
    """SIGINT/SIGTERM set a flag; the loop finishes the current step, checkpoints and stops."""

    def __init__(self):
        self.raised = False
        self.previous = {}

    def __enter__(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self.previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread: no handlers
                pass
        return self

    def _handle(self, signum, _frame):
        self.raised = True

    def __exit__(self, *exc):
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


class DirectionTrainer:
    """Everything one direction's run holds: model, optimizer, schedule, counters, batch stream, held-out set.

    With ranks from init_distributed, this process is one of ranks.world_size data-parallel trainers (see
    pretrain/distributed.py); only rank 0 writes metrics, checkpoints and weights.
    """

    def __init__(self, corpus: CorpusSpec, out_dir: Path, direction: Direction, *, valid: Optional[Path],
                 resume: bool, device: torch.device, ranks: Ranks):
        self.out_dir, self.direction, self.device, self.ranks = Path(out_dir), direction, device, ranks
        config = read_config(self.out_dir / CONFIG_FILE_NAME)
        self.train = train = config.train
        tokenizer = Tokenizer.from_file(self.out_dir / TOKENIZER_FILE)
        torch.manual_seed(train.seed + DIRECTIONS.index(direction))  # independent initialisations per direction
        self.model = build_language_model(config, tokenizer).to(device).train()
        self.optimizer = make_optimizer(self.model, train)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, learning_rate_factor(train))
        self.checkpoint = checkpoint_path(self.out_dir, direction)
        self.state = self._restore(resume, corpus.names)
        if ranks.rank > 0:  # same initial weights everywhere, but each rank its own dropout masks
            torch.manual_seed(train.seed + DIRECTIONS.index(direction) + 7919 * ranks.rank + self.state.step)
        self.trained: torch.nn.Module = self.model
        if ranks.distributed:
            self.trained = torch.nn.parallel.DistributedDataParallel(
                self.model, device_ids=[device.index] if device.type == "cuda" else None,
                find_unused_parameters=True)  # adaptive-softmax clusters with no target in a batch get no gradient
        self.precision = choose_precision(train.precision, device, training=True)
        self.reader = corpus.open(train)
        self.stream = BatchStream(self.reader, tokenizer, direction, max_pieces=config.lm.max_pieces,
                                  batch_tokens=train.batch_tokens, seed=train.seed + DIRECTIONS.index(direction),
                                  start=self.state.position, rank=ranks.rank, world_size=ranks.world_size,
                                  subword_sampling=train.subword_sampling)
        if train.subword_sampling:
            log.info("%s: subword regularization, training segmentations sampled with alpha %g", direction,
                     train.subword_sampling)
            if self.state.step:
                log.warning("%s: resumed with --subword-sampling: the reader continues where it stopped, but the "
                            "segmentations drawn from here differ from an unbroken run's (sentencepiece's "
                            "sampling is not reproducible across processes)", direction)
        self.valid_batches: Optional[list[Batch]] = None
        if valid is not None:
            self.valid_batches = evaluation_batches(valid, tokenizer, direction, max_pieces=config.lm.max_pieces,
                                                    batch_tokens=train.batch_tokens, max_lines=train.valid_lines)
        self.last_valid: Optional[HeldOutScore] = None
        self.window, self.milestones = Window(), Milestones()
        self.run_start = time.monotonic()
        self.elapsed_before, self.tokens_before = self.state.elapsed_s, self.state.tokens

    def _restore(self, resume: bool, corpus_names: list[str]) -> TrainingState:
        """The counters to start from: the checkpoint's with --resume, else fresh (from --init's weights)."""
        if not (resume and self.checkpoint.is_file()):
            if self.train.init_from:
                init_weights = weights_path(resolve_model(self.train.init_from), self.direction)
                load_weights(self.model, init_weights)
                log.info("%s: starting from the weights of %s", self.direction, init_weights)
            return TrainingState(world_size=self.ranks.world_size, corpus=corpus_names)
        state = load_checkpoint(self.checkpoint, self.model, self.optimizer, self.scheduler)
        # this invocation's schedule (--max-steps may have changed) decides the next step's learning rate
        factor = learning_rate_factor(self.train)
        for group, base_lr in zip(self.optimizer.param_groups, self.scheduler.base_lrs):
            group["lr"] = base_lr * factor(self.scheduler.last_epoch)
        if state.world_size != self.ranks.world_size:
            raise TrainingError(f"{self.checkpoint} was written by {state.world_size} training process(es); "
                                f"resume it with the same number (now {self.ranks.world_size})")
        if state.corpus and state.corpus != corpus_names:
            raise TrainingError(f"--resume reads the run's corpus files in their order ({', '.join(state.corpus)}); "
                                f"got {', '.join(corpus_names)}")
        state.corpus = corpus_names
        log.info("%s: resuming from step %d (%s)", self.direction, state.step, self.checkpoint)
        return state

    # -----------------------------------------------------------------------------------------
    # the loop

    def run(self, progress: bool = True, progress_position: int = 0) -> DirectionSummary:
        self.bar = tqdm(total=self.train.max_steps, initial=self.state.step, desc=self.direction, unit="step",
                        position=progress_position, disable=not progress or None, dynamic_ncols=True, leave=True)
        interrupted = False
        with StopFlag() as stop, self.bar:
            for batch, position in self.stream:
                if self.ranks.any(self.finished(), self.device):
                    break
                if not self.train_step(batch, position):
                    continue
                self.bar.update(1)
                step, train = self.state.step, self.train
                if step % train.log_every == 0 or step % train.eval_every == 0:
                    self.report(evaluate=step % train.eval_every == 0)
                if step % train.checkpoint_every == 0:
                    self.save()
                if self.ranks.any(stop.raised, self.device):
                    interrupted = True
                    log.warning("%s: interrupted at step %d; checkpoint saved, continue with --resume",
                                self.direction, step)
                    break
            self._finish_milestones()
        log_read_stats(", ".join(source_name(s.path) for s in self.reader.sources), self.reader.stats)
        return self._summary(interrupted)

    def train_step(self, batch: Batch, position) -> bool:
        """One optimizer step on `batch` (all ranks' batches together); False if it was skipped (non-finite)."""
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16"):
            loss = self.trained(batch.piece_ids.to(self.device), batch.targets.to(self.device))
        # the global batch: every rank's pieces (one process: just this batch)
        nll_sum, count = self.ranks.sum([float(loss.nll_sum.detach()), loss.count], self.device)
        count = int(count)
        if not math.isfinite(nll_sum):
            self._non_finite(loss, nll_sum / max(count, 1))
            self.state.position = position
            return False
        self.optimizer.zero_grad(set_to_none=True)
        # DDP averages gradients over ranks, so each rank's share is scaled by world_size / global count
        ranks = self.ranks
        objective = loss.mean if not ranks.distributed else loss.nll_sum * (ranks.world_size / max(count, 1))
        objective.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.train.clip_norm)
        self.optimizer.step()
        self.scheduler.step()
        self.state.step += 1
        self.state.tokens += count
        self.state.position = position
        self.window.nll += nll_sum
        self.window.count += count
        return True

    def _non_finite(self, loss, value: float) -> None:
        if not self.train.skip_nonfinite:
            raise TrainingError(f"{self.direction}: loss became {value} at step {self.state.step + 1}; stopped. "
                                f"The last good checkpoint is kept in {self.checkpoint.parent} "
                                f"(lower --lr, or pass --skip-nonfinite)")
        if self.ranks.distributed:  # DDP expects the backward pass it prepared for; its gradients are dropped
            loss.nll_sum.backward()
            self.optimizer.zero_grad(set_to_none=True)
        self.state.skipped_nonfinite += 1
        log.warning("%s: skipped a batch with loss %s (%d so far)", self.direction, value,
                    self.state.skipped_nonfinite)

    def finished(self) -> bool:
        train, state = self.train, self.state
        if train.max_steps is not None and state.step >= train.max_steps:
            return True
        if train.max_seconds is not None and time.monotonic() - self.run_start >= train.max_seconds:
            return True
        if train.epochs is not None and state.position.mix.sources:
            return self.reader.epochs_done(state.position.mix) >= train.epochs
        return False

    # -----------------------------------------------------------------------------------------
    # records and files

    def report(self, evaluate: bool) -> None:
        now = time.monotonic()
        state, window = self.state, self.window
        state.elapsed_s = self.elapsed_before + now - self.run_start
        record = {"direction": self.direction, "step": state.step, "tokens": state.tokens,
                  "elapsed_s": round(state.elapsed_s, 2),
                  "tokens_per_s": round(window.count / max(now - window.start, 1e-9), 1),
                  "lr": self.scheduler.get_last_lr()[0]}
        if window.count:
            loss = window.nll / window.count
            record.update(loss=round(loss, 4), ppl=round(math.exp(min(loss, 50)), 2))
        self.milestones.reported = state.step
        if evaluate and self.valid_batches and self.ranks.is_main:
            self.milestones.evaluated = state.step
            self.last_valid = score_batches(self.model, self.valid_batches)
            record.update(valid_ppl=round(self.last_valid.perplexity, 3),
                          valid_bpc=round(self.last_valid.bits_per_char, 4))
        record["max_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
        self.window = Window()
        if not self.ranks.is_main:
            return
        append_jsonl(self.out_dir / METRICS_FILE, record)
        self.bar.set_postfix({k: record[k] for k in ("loss", "ppl", "tokens_per_s", "valid_ppl") if k in record})
        log.info("%s", record)

    def save(self) -> None:
        self.milestones.saved = self.state.step
        if not self.ranks.is_main:
            return
        self.state.elapsed_s = self.elapsed_before + time.monotonic() - self.run_start
        try:
            save_checkpoint(self.checkpoint, self.model, self.optimizer, self.scheduler, self.state)
            save_weights(self.model, weights_path(self.out_dir, self.direction))
        except OSError as error:
            raise TrainingError(f"{self.direction}: writing the checkpoint failed at step {self.state.step} "
                                f"({error}); the previous checkpoint in {self.checkpoint.parent} is intact") from None

    def _finish_milestones(self) -> None:
        step, milestones = self.state.step, self.milestones
        needs_eval = self.valid_batches and self.ranks.is_main and milestones.evaluated != step
        if milestones.reported != step or needs_eval:
            self.report(evaluate=True)
        if milestones.saved != step:
            self.save()

    def _summary(self, interrupted: bool) -> DirectionSummary:
        total_s = time.monotonic() - self.run_start
        valid = self.last_valid
        return DirectionSummary(
            direction=self.direction, step=self.state.step, tokens=self.state.tokens,
            elapsed_s=round(self.state.elapsed_s, 2),
            tokens_per_s=round((self.state.tokens - self.tokens_before) / max(total_s, 1e-9), 1),
            valid_ppl=None if valid is None else round(valid.perplexity, 3),
            valid_bpc=None if valid is None else round(valid.bits_per_char, 4),
            interrupted=interrupted, skipped_nonfinite=self.state.skipped_nonfinite, precision=self.precision)


def train_direction(corpus: CorpusSpec, out_dir: Path, direction: Direction, *, valid: Optional[Path] = None,
                    resume: bool = False, progress: bool = True, progress_position: int = 0,
                    device: torch.device = torch.device("cpu"), ranks: Ranks = Ranks()) -> DirectionSummary:
    """Train one direction's LM from (or, with resume, continuing) the model directory's config and tokenizer."""
    trainer = DirectionTrainer(corpus, out_dir, direction, valid=valid, resume=resume, device=device, ranks=ranks)
    return trainer.run(progress, progress_position)
