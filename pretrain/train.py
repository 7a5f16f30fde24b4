"""pretrain(): tokenizer, then the forward and backward language models, each trained on its own.

The two directions share no parameters and no process state: with both directions and `parallel`, each
runs in its own spawned process with half the threads; each reads config.json and tokenizer.model from
the model directory, trains (pretrain/loop.py), checkpoints and writes `<direction>.safetensors` there.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence, Union

import torch

from contextemb.config import CONFIG_FILE_NAME, Direction, LMConfig, ModelConfig, read_config
from contextemb.corpus import ReadStats, check_text_file, log_read_stats, mixture_text, parse_mix, resolve_corpus
from contextemb.devices import resolve_device
from contextemb.errors import ConfigError, ContextembError, TrainingError
from contextemb.io import DIRECTIONS, TOKENIZER_FILE, atomic_write, atomic_write_text, directory_lock, weights_path
from contextemb.packaged import resolve_model
from contextemb.tokenization import Tokenizer, char_vocab_size, train_sentencepiece

from .distributed import init_distributed, shutdown_distributed
from .loop import CorpusSpec, DirectionSummary, learning_rate_factor, make_optimizer, train_direction  # noqa: F401

log = logging.getLogger(__name__)

TOKENIZER_SAMPLE_BYTES = 64 << 20  # the tokenizer reads this much of the mixture (every source by its weight)
# LMConfig fields that may differ from an --init model's: they change training, not the weights' shapes
INIT_FREE_FIELDS = ("dropout", "max_pieces", "vocab_size", "pieces", "chars")


# ---------------------------------------------------------------------------------------------
# the corpus and the model directory


def corpus_spec(corpus: Union[str, Path, Sequence[Union[str, Path]]], mix: Optional[str] = None) -> CorpusSpec:
    """Files, globs and directories (see contextemb.corpus.resolve_corpus) and their --mix weights."""
    specs = [corpus] if isinstance(corpus, (str, Path)) else list(corpus)
    files = resolve_corpus(specs)
    return CorpusSpec(tuple(files), tuple(parse_mix(mix, files)))


def init_lm_config(init: Union[str, Path], overrides: Optional[dict] = None) -> LMConfig:
    """The LMConfig of the --init model, with `overrides` (the options a user gave) applied where allowed.

    An override of an architecture field that differs from the model's is refused in one line.
    """
    saved = read_config(resolve_model(init) / CONFIG_FILE_NAME).lm
    overrides = dict(overrides or {})
    for name, value in overrides.items():
        if name not in INIT_FREE_FIELDS and getattr(saved, name) != value:
            raise ConfigError(f"--init {init}: {name} {value!r} does not match the model's {getattr(saved, name)!r}; "
                              f"drop the option (the architecture comes from the model) or start without --init")
    return dataclasses.replace(saved, **{k: v for k, v in overrides.items() if k in ("dropout", "max_pieces")})


def _check_init_matches(init: Union[str, Path], lm: LMConfig) -> LMConfig:
    saved = read_config(resolve_model(init) / CONFIG_FILE_NAME).lm
    for field in dataclasses.fields(LMConfig):
        if field.name not in INIT_FREE_FIELDS and getattr(saved, field.name) != getattr(lm, field.name):
            raise ConfigError(f"--init {init}: {field.name} {getattr(lm, field.name)!r} does not match the model's "
                              f"{getattr(saved, field.name)!r}; use the model's architecture")
    return dataclasses.replace(saved, dropout=lm.dropout, max_pieces=lm.max_pieces)


def _resumed_config(config_path: Path, config: ModelConfig) -> ModelConfig:
    """config.json's architecture and schedule, with this invocation's stop criteria, precision and cadence
    (eval_every, checkpoint_every, log_every: the CLI fills in the run's own where none is given)."""
    saved = read_config(config_path)
    train = dataclasses.replace(saved.train, max_steps=config.train.max_steps,
                                max_seconds=config.train.max_seconds, epochs=config.train.epochs,
                                skip_nonfinite=config.train.skip_nonfinite, precision=config.train.precision,
                                eval_every=config.train.eval_every, checkpoint_every=config.train.checkpoint_every,
                                log_every=config.train.log_every)
    return ModelConfig(lm=saved.lm, train=train)


def _train_tokenizer(corpus: CorpusSpec, config: ModelConfig) -> bytes:
    stats = ReadStats()

    def corpus_text():  # one fresh pass per call: sentencepiece may be retried at a lower character coverage
        nonlocal stats
        reader = corpus.open(config.train)
        stats = reader.stats
        return mixture_text(reader, TOKENIZER_SAMPLE_BYTES)

    names = ", ".join(corpus.names)
    log.info("training a sentencepiece tokenizer (vocabulary %d%s) on %s", config.lm.vocab_size,
             ', "▁" a piece of its own' if config.lm.boundary_piece else "", names)
    model_proto = train_sentencepiece(corpus_text, config.lm.vocab_size, boundary_piece=config.lm.boundary_piece)
    log_read_stats(names, stats)
    return model_proto


def prepare_model_dir(corpus: CorpusSpec, out_dir: Path, config: ModelConfig, resume: bool,
                      init: Union[str, Path, None] = None, tokenizer: Optional[Path] = None) -> ModelConfig:
    """On a new run: the tokenizer (trained, given, or the --init model's), the vocabulary sizes, config.json.

    On --resume: read them back; the architecture comes from config.json, the stop criteria and cadence from
    this run.
    """
    config_path = out_dir / CONFIG_FILE_NAME
    if resume:
        if not config_path.is_file():
            raise TrainingError(f"--resume: {out_dir} has no config.json; start a new run without --resume")
        config = _resumed_config(config_path, config)
        atomic_write_text(config_path, config.to_json())
        return config
    if config_path.exists() or any(weights_path(out_dir, d).exists() for d in DIRECTIONS):
        raise TrainingError(f"{out_dir} already holds a model; pass --resume to continue it or choose another --out")
    if init is not None:
        lm = _check_init_matches(init, config.lm)
        model_proto = (resolve_model(init) / TOKENIZER_FILE).read_bytes()
        train = dataclasses.replace(config.train, init_from=str(init))
        config = ModelConfig(lm=lm, train=train)
    elif tokenizer is not None:
        if config.lm.boundary_piece:
            raise ConfigError("--boundary-piece trains a tokenizer; it does not apply to the one --tokenizer gives")
        model_proto = Path(tokenizer).read_bytes()
        config = ModelConfig(lm=config.lm, train=dataclasses.replace(config.train, tokenizer_from=str(tokenizer)))
    else:
        model_proto = _train_tokenizer(corpus, config)
    pieces = Tokenizer(model_proto, source=str(tokenizer or TOKENIZER_FILE))
    if tokenizer is not None:
        log.info("tokenizer %s: %d pieces (--vocab-size does not apply)", tokenizer, pieces.vocab_size)
    elif pieces.vocab_size < config.lm.vocab_size and init is None:
        log.info("the corpus supports %d pieces (asked for %d)", pieces.vocab_size, config.lm.vocab_size)
    lm = dataclasses.replace(config.lm, pieces=pieces.vocab_size,
                             chars=char_vocab_size(pieces, config.lm.char_mode))
    config = ModelConfig(lm=lm, train=config.train)
    atomic_write(out_dir / TOKENIZER_FILE, lambda tmp: tmp.write_bytes(model_proto))
    atomic_write_text(config_path, config.to_json())
    return config


# ---------------------------------------------------------------------------------------------
# processes


def pretrain(corpus: Union[str, Path, Sequence[Union[str, Path]], CorpusSpec], out_dir: Path, config: ModelConfig, *,
             valid: Optional[Path] = None, directions: Sequence[str] = DIRECTIONS, threads: Optional[int] = None,
             resume: bool = False, parallel: bool = True, progress: bool = True,
             device: Union[str, torch.device, None] = None, distributed: bool = False, mix: Optional[str] = None,
             init: Union[str, Path, None] = None, tokenizer: Union[str, Path, None] = None
             ) -> list[DirectionSummary]:
    """Train a tokenizer and the requested directions' language models into `out_dir`.

    corpus: a text file, or several files, globs and directories (.txt, .txt.gz), streamed interleaved with
    the weights of `mix` ("nsmc=2,wiki=0.5" or a weights file; see contextemb.corpus). init: a packaged model
    name or model directory whose tokenizer and weights a new run starts from (its architecture must match).
    tokenizer: a sentencepiece model file (e.g. another run's tokenizer.model) a new run uses instead of
    training one, so that runs compared with each other share their pieces. Stops at max_steps, max_seconds
    (per invocation) or epochs, whichever comes first; with none given, one epoch. Safe to interrupt: SIGINT/SIGTERM finish the current step, checkpoint and return.
    device: "cpu" (default), "cuda" or "cuda:N". distributed: this process is one rank of a torchrun launch
    (see pretrain/distributed.py); the directions then train one after the other, each over all ranks.
    """
    spec = corpus if isinstance(corpus, CorpusSpec) else corpus_spec(corpus, mix)
    out_dir = Path(out_dir)
    if valid is not None:
        check_text_file(valid, "held-out file")
    if init is not None and resume:
        raise ConfigError("--init starts a new run from a model; --resume continues a run: give one of them")
    if init is not None:
        resolve_model(init)  # a clear error for an unknown model before anything is written
    if tokenizer is not None:
        if init is not None or resume:
            raise ConfigError("--tokenizer gives a new run its pieces; --init and --resume bring their own")
        tokenizer = Path(tokenizer)
        if not tokenizer.is_file():
            raise ConfigError(f"--tokenizer {tokenizer}: no such file")
        Tokenizer(tokenizer.read_bytes(), source=str(tokenizer))  # refused here, before anything is written
    unknown = set(directions) - set(DIRECTIONS)
    if unknown or not directions:
        raise ConfigError(f"directions must be forward and/or backward, got {list(directions)}")
    if out_dir.exists() and not out_dir.is_dir():
        raise TrainingError(f"--out {out_dir} is a file, not a directory")
    train = config.train
    if train.max_steps is None and train.max_seconds is None and train.epochs is None:
        config = ModelConfig(lm=config.lm, train=dataclasses.replace(train, epochs=1.0))
    target = resolve_device(device)
    options = RunOptions(spec, out_dir, valid, resume, progress, target)
    if distributed:
        _check_no_sampling_across_ranks(out_dir, config, resume)
        return _pretrain_distributed(options, config, directions, threads, init, tokenizer)
    threads = threads or torch.get_num_threads()
    with directory_lock(out_dir):
        config = prepare_model_dir(spec, out_dir, config, resume, init, tokenizer)
        if len(directions) > 1 and parallel:
            return _train_in_processes(options, directions, threads)
        torch.set_num_threads(threads)
        return [train_direction(spec, out_dir, direction, valid=valid, resume=resume, progress=progress,
                                progress_position=index, device=target) for index, direction in enumerate(directions)]


@dataclass(frozen=True)
class RunOptions:
    """What every direction's trainer of one invocation shares (picklable: it travels to spawned workers)."""

    corpus: CorpusSpec
    out_dir: Path
    valid: Optional[Path]
    resume: bool
    progress: bool
    device: torch.device


def _check_no_sampling_across_ranks(out_dir: Path, config: ModelConfig, resume: bool) -> None:
    """Ranks must cut each pool into the same batches; sampled segmentations differ from process to process
    (see Tokenizer.encode_sampled), so their batch counts would too and the ranks would fall out of step."""
    config_path = out_dir / CONFIG_FILE_NAME
    train = read_config(config_path).train if resume and config_path.is_file() else config.train
    if train.subword_sampling:
        raise ConfigError("--subword-sampling cannot train --distributed: each rank would draw other "
                          "segmentations of the same text and cut it into a different number of batches")


def _pretrain_distributed(options: RunOptions, config: ModelConfig, directions, threads, init, tokenizer
                          ) -> list[DirectionSummary]:
    ranks = init_distributed(options.device.type)
    device = options.device
    try:
        if device.type == "cuda":
            device = torch.device("cuda", ranks.local_rank)
            torch.cuda.set_device(device)
        torch.set_num_threads(threads or torch.get_num_threads())  # torchrun sets OMP_NUM_THREADS=1 per rank
        with contextlib.ExitStack() as stack:
            failure = ""
            if ranks.is_main:  # rank 0 alone holds the lock and writes the tokenizer and config.json
                try:
                    stack.enter_context(directory_lock(options.out_dir))
                    prepare_model_dir(options.corpus, options.out_dir, config, options.resume, init, tokenizer)
                except ContextembError as error:
                    failure = str(error)
            if ranks.any(bool(failure), device):  # doubles as the barrier the other ranks wait at
                raise TrainingError(failure or "rank 0 could not prepare the model directory; see its error")
            summaries = [train_direction(options.corpus, options.out_dir, direction, valid=options.valid,
                                         resume=options.resume, progress=options.progress and ranks.is_main,
                                         progress_position=index, device=device, ranks=ranks)
                         for index, direction in enumerate(directions)]
            # every rank done before any tears down: a rank that left while another was still in its last
            # collective made gloo abort that one at exit ("terminate called without an active exception")
            ranks.barrier()
            return summaries
    finally:
        shutdown_distributed()


@dataclass(frozen=True)
class WorkerArgs:
    """One direction's spawned trainer."""

    options: RunOptions
    direction: Direction
    progress_position: int
    threads: int
    log_level: int


def _train_in_processes(options: RunOptions, directions: Sequence[str], threads: int) -> list[DirectionSummary]:
    context = multiprocessing.get_context("spawn")
    results = context.SimpleQueue()
    per_process = max(1, threads // len(directions))
    log_level = logging.getLogger("contextemb").getEffectiveLevel()
    workers = [context.Process(target=_direction_worker, name=f"contextemb-{direction}",
                               args=(results, WorkerArgs(options, direction, index, per_process, log_level)))
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
    return _collect(results, workers, directions)


def _collect(results, workers, directions) -> list[DirectionSummary]:
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


def _stop_when_parent_dies() -> None:
    """In a spawned worker: should the parent die without stopping it (kill -9, the OOM killer), signal this
    worker as the parent would have, so that it checkpoints and stops instead of training on, unsupervised and
    outside the parent's directory lock, while a --resume may already be writing the same checkpoints."""
    parent = multiprocessing.parent_process()
    if parent is None:
        return

    def watch():
        multiprocessing.connection.wait([parent.sentinel])  # ready when the parent process has ended
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="contextemb-parent-watch", daemon=True).start()


def _direction_worker(results, args: WorkerArgs):
    _stop_when_parent_dies()
    logger = logging.getLogger("contextemb")
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter(f"%(asctime)s %(levelname)s [{args.direction}] %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(args.log_level)
    logger.propagate = False
    torch.set_num_threads(args.threads)
    options = args.options
    try:
        summary = train_direction(options.corpus, options.out_dir, args.direction, valid=options.valid,
                                  resume=options.resume, progress=options.progress,
                                  progress_position=args.progress_position, device=options.device)
        results.put((args.direction, "ok", dataclasses.asdict(summary)))
    except ContextembError as error:
        results.put((args.direction, "error", str(error)))
    except Exception as error:  # a bug: report it rather than die silently
        results.put((args.direction, "error", f"{type(error).__name__}: {error}"))
        raise
