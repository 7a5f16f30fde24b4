"""pretrain(): tokenizer, then the forward and backward language models, each trained on its own.

The two directions share no parameters and no process state: with both directions and `parallel`, each
runs in its own spawned process with half the threads; each reads config.json and tokenizer.model from
the model directory, trains, checkpoints and writes `<direction>.safetensors` there.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import multiprocessing
import os
import resource
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence, Union

import torch
from tqdm import tqdm

from contextemb.config import CONFIG_FILE_NAME, ModelConfig, TrainConfig, read_config
from contextemb.devices import resolve_device
from contextemb.errors import ConfigError, ContextembError, TrainingError
from contextemb.evaluation.perplexity import HeldOutScore, score_batches
from contextemb.io import (DIRECTIONS, METRICS_FILE, TOKENIZER_FILE, append_jsonl, atomic_write, atomic_write_text,
                           checkpoint_path, directory_lock, weights_path)
from contextemb.model_dir import build_language_model, save_weights
from contextemb.tokenization import Tokenizer, char_vocab_size, train_sentencepiece

from .checkpoint import TrainingState, load_checkpoint, save_checkpoint
from .distributed import Ranks, init_distributed, shutdown_distributed
from .data import BatchStream, ReadStats, check_text_file, corpus_size, evaluation_batches, iter_text, log_read_stats

log = logging.getLogger(__name__)

VALID_LINES_DURING_TRAINING = 2000  # held-out lines scored at each evaluation; `contextemb perplexity` scores all


@dataclass(frozen=True)
class DirectionSummary:
    direction: str
    step: int
    tokens: int
    elapsed_s: float
    tokens_per_s: float
    valid_ppl: Optional[float]
    valid_bpc: Optional[float]
    interrupted: bool = False
    skipped_nonfinite: int = 0


# ---------------------------------------------------------------------------------------------
# the model directory


def prepare_model_dir(corpus: Path, out_dir: Path, config: ModelConfig, resume: bool) -> ModelConfig:
    """On a new run: train the tokenizer, fill in the vocabulary sizes, write tokenizer.model and config.json.

    On --resume: read them back; the architecture comes from config.json, the stop criteria from this run.
    """
    config_path = out_dir / CONFIG_FILE_NAME
    if resume:
        if not config_path.is_file():
            raise TrainingError(f"--resume: {out_dir} has no config.json; start a new run without --resume")
        saved = read_config(config_path)
        train = dataclasses.replace(saved.train, max_steps=config.train.max_steps,
                                    max_seconds=config.train.max_seconds, epochs=config.train.epochs,
                                    skip_nonfinite=config.train.skip_nonfinite, precision=config.train.precision)
        config = ModelConfig(lm=saved.lm, train=train)
        atomic_write_text(config_path, config.to_json())
        return config
    if config_path.exists() or any(weights_path(out_dir, d).exists() for d in DIRECTIONS):
        raise TrainingError(f"{out_dir} already holds a model; pass --resume to continue it or choose another --out")
    stats = ReadStats()

    def corpus_text():  # one fresh pass per call: sentencepiece may be retried at a lower character coverage
        nonlocal stats
        stats = ReadStats()
        return iter_text(corpus, stats)

    log.info("training a sentencepiece tokenizer (vocabulary %d) on %s", config.lm.vocab_size, corpus)
    model_proto = train_sentencepiece(corpus_text, config.lm.vocab_size)
    log_read_stats(corpus, stats)
    if stats.lines - stats.blank == 0:
        raise TrainingError(f"{corpus} holds no text to train on (empty, or only blank lines)")
    tokenizer = Tokenizer(model_proto)
    if tokenizer.vocab_size < config.lm.vocab_size:
        log.info("the corpus supports %d pieces (asked for %d)", tokenizer.vocab_size, config.lm.vocab_size)
    lm = dataclasses.replace(config.lm, pieces=tokenizer.vocab_size,
                             chars=char_vocab_size(tokenizer, config.lm.char_mode))
    config = ModelConfig(lm=lm, train=config.train)
    atomic_write(out_dir / TOKENIZER_FILE, lambda tmp: tmp.write_bytes(model_proto))
    atomic_write_text(config_path, config.to_json())
    return config


def pretrain(corpus: Path, out_dir: Path, config: ModelConfig, *, valid: Optional[Path] = None,
             directions: Sequence[str] = DIRECTIONS, threads: Optional[int] = None, resume: bool = False,
             parallel: bool = True, progress: bool = True, device: Union[str, torch.device, None] = None,
             distributed: bool = False) -> list[DirectionSummary]:
    """Train a tokenizer and the requested directions' language models into `out_dir`.

    Stops at max_steps, max_seconds (per invocation) or epochs, whichever comes first; with none given,
    one epoch. Safe to interrupt: SIGINT/SIGTERM finish the current step, checkpoint and return.
    device: "cpu" (default), "cuda" or "cuda:N". distributed: this process is one rank of a torchrun launch
    (see pretrain/distributed.py); the directions then train one after the other, each over all ranks.
    """
    corpus, out_dir = check_text_file(corpus), Path(out_dir)
    if valid is not None:
        check_text_file(valid, "held-out file")
    unknown = set(directions) - set(DIRECTIONS)
    if unknown or not directions:
        raise ConfigError(f"directions must be forward and/or backward, got {list(directions)}")
    if out_dir.exists() and not out_dir.is_dir():
        raise TrainingError(f"--out {out_dir} is a file, not a directory")
    train = config.train
    if train.max_steps is None and train.max_seconds is None and train.epochs is None:
        config = ModelConfig(lm=config.lm, train=dataclasses.replace(train, epochs=1.0))
    target = resolve_device(device)
    if distributed:
        return _pretrain_distributed(corpus, out_dir, config, valid, directions, threads, resume, progress, target)
    threads = threads or torch.get_num_threads()
    with directory_lock(out_dir):
        config = prepare_model_dir(corpus, out_dir, config, resume)
        if len(directions) > 1 and parallel:
            return _train_in_processes(corpus, out_dir, valid, directions, threads, resume, progress, target)
        torch.set_num_threads(threads)
        return [train_direction(corpus, out_dir, direction, valid=valid, resume=resume, progress=progress,
                                progress_position=index, device=target) for index, direction in enumerate(directions)]


def _pretrain_distributed(corpus, out_dir, config, valid, directions, threads, resume, progress, device
                          ) -> list[DirectionSummary]:
    ranks = init_distributed(device.type)
    try:
        if device.type == "cuda":
            device = torch.device("cuda", ranks.local_rank)
            torch.cuda.set_device(device)
        torch.set_num_threads(threads or torch.get_num_threads())  # torchrun sets OMP_NUM_THREADS=1 per rank
        with contextlib.ExitStack() as stack:
            failure = ""
            if ranks.is_main:  # rank 0 alone holds the lock and writes the tokenizer and config.json
                try:
                    stack.enter_context(directory_lock(out_dir))
                    prepare_model_dir(corpus, out_dir, config, resume)
                except ContextembError as error:
                    failure = str(error)
            if ranks.any(bool(failure), device):  # doubles as the barrier the other ranks wait at
                raise TrainingError(failure or "rank 0 could not prepare the model directory; see its error")
            return [train_direction(corpus, out_dir, direction, valid=valid, resume=resume,
                                    progress=progress and ranks.is_main, progress_position=index, device=device,
                                    ranks=ranks) for index, direction in enumerate(directions)]
    finally:
        shutdown_distributed()


def _train_in_processes(corpus, out_dir, valid, directions, threads, resume, progress, device
                        ) -> list[DirectionSummary]:
    context = multiprocessing.get_context("spawn")
    results = context.SimpleQueue()
    per_process = max(1, threads // len(directions))
    workers = [context.Process(target=_direction_worker, name=f"contextemb-{direction}",
                               args=(results, corpus, out_dir, direction, valid, resume, progress, index,
                                     per_process, logging.getLogger("contextemb").getEffectiveLevel(), str(device)))
               for index, direction in enumerate(directions)]
    for worker in workers:
        worker.start()

    def forward_signal(signum, _frame):  # let each worker checkpoint before it stops
        for worker in workers:
            if worker.is_alive():
                os.kill(worker.pid, signal.SIGTERM)

    previous = {sig: signal.signal(sig, forward_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        for worker in workers:
            worker.join()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    outcomes = {}
    while not results.empty():
        direction, kind, payload = results.get()
        outcomes[direction] = (kind, payload)
    summaries, errors = [], []
    for worker, direction in zip(workers, directions):
        kind, payload = outcomes.get(direction, ("died", None))
        if kind == "ok":
            summaries.append(DirectionSummary(**payload))
        elif kind == "error":
            errors.append(f"{direction}: {payload}")
        else:
            errors.append(f"the {direction} process died (exit code {worker.exitcode}); continue with --resume")
    if errors:
        raise TrainingError("; ".join(errors))
    return summaries


def _direction_worker(results, corpus, out_dir, direction, valid, resume, progress, position, threads, log_level,
                      device):
    logger = logging.getLogger("contextemb")
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter(f"%(asctime)s %(levelname)s [{direction}] %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(log_level)
    logger.propagate = False
    torch.set_num_threads(threads)
    try:
        summary = train_direction(corpus, out_dir, direction, valid=valid, resume=resume, progress=progress,
                                  progress_position=position, device=torch.device(device))
        results.put((direction, "ok", dataclasses.asdict(summary)))
    except ContextembError as error:
        results.put((direction, "error", str(error)))
    except Exception as error:  # a bug: report it rather than die silently
        results.put((direction, "error", f"{type(error).__name__}: {error}"))
        raise


# ---------------------------------------------------------------------------------------------
# one direction


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


class _StopFlag:
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


def train_direction(corpus: Path, out_dir: Path, direction: str, *, valid: Optional[Path] = None,
                    resume: bool = False, progress: bool = True, progress_position: int = 0,
                    device: torch.device = torch.device("cpu"), ranks: Ranks = Ranks()) -> DirectionSummary:
    """Train one direction's LM from (or, with resume, continuing) the model directory's config and tokenizer.

    With ranks from init_distributed, this process is one of ranks.world_size data-parallel trainers (see
    pretrain/distributed.py); only rank 0 writes metrics, checkpoints and weights.
    """
    out_dir = Path(out_dir)
    config = read_config(out_dir / CONFIG_FILE_NAME)
    train = config.train
    tokenizer = Tokenizer.from_file(out_dir / TOKENIZER_FILE)
    torch.manual_seed(train.seed + DIRECTIONS.index(direction))  # independent initialisations per direction
    model = build_language_model(config, tokenizer).to(device).train()
    optimizer = make_optimizer(model, train)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, learning_rate_factor(train))
    checkpoint = checkpoint_path(out_dir, direction)
    state = TrainingState(world_size=ranks.world_size)
    if resume and checkpoint.is_file():
        state = load_checkpoint(checkpoint, model, optimizer, scheduler)
        # this invocation's schedule (--max-steps may have changed) decides the next step's learning rate
        factor = learning_rate_factor(train)
        for group, base_lr in zip(optimizer.param_groups, scheduler.base_lrs):
            group["lr"] = base_lr * factor(scheduler.last_epoch)
        if state.world_size != ranks.world_size:
            raise TrainingError(f"{checkpoint} was written by {state.world_size} training process(es); resume it "
                                f"with the same number (now {ranks.world_size})")
        log.info("%s: resuming from step %d (%s)", direction, state.step, checkpoint)
    if ranks.rank > 0:  # same initial weights everywhere, but each rank its own dropout masks
        torch.manual_seed(train.seed + DIRECTIONS.index(direction) + 7919 * ranks.rank + state.step)
    trained: torch.nn.Module = model
    if ranks.distributed:
        trained = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None,
            find_unused_parameters=True)  # adaptive-softmax clusters with no target in a batch get no gradient
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=train.precision == "bf16")
    stream = BatchStream(corpus, tokenizer, direction, max_pieces=config.lm.max_pieces,
                         batch_tokens=train.batch_tokens, bucket_batches=train.bucket_batches,
                         seed=train.seed + DIRECTIONS.index(direction), start=state.position,
                         rank=ranks.rank, world_size=ranks.world_size)
    valid_batches = None
    if valid is not None:
        valid_batches = evaluation_batches(valid, tokenizer, direction, max_pieces=config.lm.max_pieces,
                                           batch_tokens=train.batch_tokens, max_lines=VALID_LINES_DURING_TRAINING)
    total_bytes = corpus_size(corpus) if train.epochs is not None else None
    run_start = time.monotonic()
    elapsed_before, tokens_before = state.elapsed_s, state.tokens
    window = {"nll": 0.0, "count": 0, "start": run_start, "tokens": 0}
    last_valid: Optional[HeldOutScore] = None
    metrics_path = out_dir / METRICS_FILE
    done = {"reported": -1, "evaluated": -1, "saved": -1}  # the last step each was done at

    def finished() -> bool:
        if train.max_steps is not None and state.step >= train.max_steps:
            return True
        if train.max_seconds is not None and time.monotonic() - run_start >= train.max_seconds:
            return True
        if total_bytes is not None:
            done = state.position.epoch + state.position.offset / max(total_bytes, 1)
            return done >= train.epochs
        return False

    def report(evaluate: bool) -> None:
        nonlocal last_valid
        now = time.monotonic()
        state.elapsed_s = elapsed_before + now - run_start
        record = {"direction": direction, "step": state.step, "tokens": state.tokens,
                  "elapsed_s": round(state.elapsed_s, 2),
                  "tokens_per_s": round(window["tokens"] / max(now - window["start"], 1e-9), 1),
                  "lr": scheduler.get_last_lr()[0]}
        if window["count"]:
            loss = window["nll"] / window["count"]
            record.update(loss=round(loss, 4), ppl=round(math.exp(min(loss, 50)), 2))
        done["reported"] = state.step
        if evaluate and valid_batches and ranks.is_main:
            done["evaluated"] = state.step
            last_valid = score_batches(model, valid_batches)
            record.update(valid_ppl=round(last_valid.perplexity, 3), valid_bpc=round(last_valid.bits_per_char, 4))
        record["max_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
        window.update(nll=0.0, count=0, start=time.monotonic(), tokens=0)
        if not ranks.is_main:
            return
        append_jsonl(metrics_path, record)
        bar.set_postfix({k: record[k] for k in ("loss", "ppl", "tokens_per_s", "valid_ppl") if k in record})
        log.info("%s", record)

    def save() -> None:
        done["saved"] = state.step
        if not ranks.is_main:
            return
        state.elapsed_s = elapsed_before + time.monotonic() - run_start
        try:
            save_checkpoint(checkpoint, model, optimizer, scheduler, state)
            save_weights(model, weights_path(out_dir, direction))
        except OSError as error:
            raise TrainingError(f"{direction}: writing the checkpoint failed at step {state.step} ({error}); "
                                f"the previous checkpoint in {checkpoint.parent} is intact") from None

    bar = tqdm(total=train.max_steps, initial=state.step, desc=direction, unit="step", position=progress_position,
               disable=not progress or None, dynamic_ncols=True, leave=True)
    interrupted = False
    with _StopFlag() as stop, bar:
        for batch, position in stream:
            if ranks.any(finished(), device):
                break
            with autocast:
                loss = trained(batch.piece_ids.to(device), batch.targets.to(device))
            # the global batch: every rank's pieces (one process: just this batch)
            nll_sum, count = ranks.sum([float(loss.nll_sum.detach()), loss.count], device)
            count = int(count)
            if not math.isfinite(nll_sum):
                if train.skip_nonfinite:
                    if ranks.distributed:  # DDP expects the backward pass it prepared for; its gradients are dropped
                        loss.nll_sum.backward()
                        optimizer.zero_grad(set_to_none=True)
                    state.skipped_nonfinite += 1
                    state.position = position
                    log.warning("%s: skipped a batch with loss %s (%d so far)", direction, nll_sum / max(count, 1),
                                state.skipped_nonfinite)
                    continue
                raise TrainingError(f"{direction}: loss became {nll_sum / max(count, 1)} at step {state.step + 1}; "
                                    f"stopped. The last good checkpoint is kept in {checkpoint.parent} "
                                    f"(lower --lr, or pass --skip-nonfinite)")
            optimizer.zero_grad(set_to_none=True)
            # DDP averages gradients over ranks, so each rank's share is scaled by world_size / global count
            objective = loss.mean if not ranks.distributed else loss.nll_sum * (ranks.world_size / max(count, 1))
            objective.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), train.clip_norm)
            optimizer.step()
            scheduler.step()
            state.step += 1
            state.tokens += count
            state.position = position
            window["nll"] += nll_sum
            window["count"] += count
            window["tokens"] += count
            bar.update(1)
            evaluate = state.step % train.eval_every == 0
            if state.step % train.log_every == 0 or evaluate:
                report(evaluate)
            if state.step % train.checkpoint_every == 0:
                save()
            if ranks.any(stop.raised, device):
                interrupted = True
                log.warning("%s: interrupted at step %d; checkpoint saved, continue with --resume", direction,
                            state.step)
                break
        if done["reported"] != state.step or (valid_batches and ranks.is_main and done["evaluated"] != state.step):
            report(evaluate=True)
        if done["saved"] != state.step:
            save()
    log_read_stats(corpus, stream.stats)
    total_s = time.monotonic() - run_start
    return DirectionSummary(
        direction=direction, step=state.step, tokens=state.tokens, elapsed_s=round(state.elapsed_s, 2),
        tokens_per_s=round((state.tokens - tokens_before) / max(total_s, 1e-9), 1),
        valid_ppl=None if last_valid is None else round(last_valid.perplexity, 3),
        valid_bpc=None if last_valid is None else round(last_valid.bits_per_char, 4),
        interrupted=interrupted, skipped_nonfinite=state.skipped_nonfinite)
