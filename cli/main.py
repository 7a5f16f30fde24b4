"""The `contextemb` command: one short function per sub-command, each calling one library function."""

from __future__ import annotations

import functools
import json
import logging
import os
import sys
import traceback
from pathlib import Path
from typing import get_args

import click

from contextemb.config import LMConfig, ModelConfig, TrainConfig
from contextemb.cpu_features import PRECISIONS
from contextemb.embedder import BATCH_PIECES, BATCH_TEXTS
from contextemb.errors import ContextembError
from contextemb.export import LayerChoice, OutputFormat

from .options import config_option, given


class UserError(click.ClickException):
    """A ContextembError shown as `Error: <message>` with exit code 2 (click's usage errors also exit 2)."""

    exit_code = 2


def reports_errors(command):
    """Turn a ContextembError (the library's typed errors for bad input) into one line on stderr and exit code 2.
    Anything else is a bug and keeps its traceback."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except ContextembError as error:
            if click.get_current_context().find_root().params.get("debug"):
                traceback.print_exc()
            raise UserError(str(error).splitlines()[0] if str(error) else type(error).__name__) from None

    return wrapper


@click.group()
@click.option("--debug", is_flag=True, help="Show tracebacks.")
@click.option("-q", "--quiet", is_flag=True, help="Only warnings and errors.")
@click.version_option(package_name="contextemb")
def cli(debug: bool, quiet: bool) -> None:
    """ELMo-style contextual word embeddings: pretrain, embed, probe."""
    _log_to_stderr(logging.DEBUG if debug else logging.WARNING if quiet else logging.INFO)


def _log_to_stderr(level: int) -> None:
    """Send the library's log records (loggers under "contextemb") to the current stderr, once."""
    logger = logging.getLogger("contextemb")
    for handler in [h for h in logger.handlers if getattr(h, "contextemb_cli", False)]:
        logger.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    handler.contextemb_cli = True
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False


def _positive(ctx, param, value):
    if value is not None and value <= 0:
        raise click.BadParameter("must be > 0")
    return value


precision_option = click.option(
    "--precision", type=click.Choice(list(PRECISIONS)), default="auto", show_default=True,
    help="auto: bf16 where the CPU computes it natively (AVX-512 BF16, AMX) or on a GPU, else int8 with AVX2, "
         "else float32. bf16 and int8 are faster, with vectors slightly off float32.")
quantize_alias = click.option("--quantize", is_flag=True, hidden=True, help="The same as --precision int8.")


LM_OPTIONS = ("vocab_size", "input", "char_mode", "num_layers", "hidden", "projection", "softmax", "dropout")
TRAIN_OPTIONS = ("optimizer", "lr", "warmup_steps", "batch_tokens", "max_steps", "max_seconds", "epochs",
                 "eval_every", "checkpoint_every", "log_every", "seed", "precision", "subword_sampling")


# what --resume takes from config.json, by option: given again with another value, it is refused, not ignored
RESUMED_FLAGS = {"vocab_size": "--vocab-size", "input": "--input", "char_mode": "--char-mode",
                 "boundary_piece": "--boundary-piece", "num_layers": "--layers", "hidden": "--hidden",
                 "projection": "--proj", "softmax": "--softmax", "dropout": "--dropout", "optimizer": "--optimizer",
                 "lr": "--lr", "warmup_steps": "--warmup-steps", "batch_tokens": "--batch-tokens",
                 "seed": "--seed", "subword_sampling": "--subword-sampling"}
# how often a run scores, checkpoints and logs: each invocation's own; --resume without them keeps the run's
CADENCE = ("eval_every", "checkpoint_every", "log_every")


def _saved_run(out_dir: Path):
    """The ModelConfig of the run in out_dir (its config.json), or None where there is none."""
    from contextemb.config import read_config

    config_path = out_dir / "config.json"
    return read_config(config_path) if config_path.is_file() else None


def _check_resumed_options(saved, given_options: dict) -> None:
    """--resume keeps the run's architecture and schedule (config.json): an option given again with the same
    value is fine, another value is refused in one line (the stop criteria, --precision and the cadence are this
    invocation's own)."""
    for name, value in given_options.items():
        kept = getattr(saved.lm if hasattr(saved.lm, name) else saved.train, name)
        if value != kept:
            what = "learning rate" if name == "lr" else RESUMED_FLAGS[name].lstrip("-")
            raise UserError(f"--resume keeps the run's {what} {_shown(kept)} (config.json); "
                            f"{RESUMED_FLAGS[name]} {_shown(value)} applies to a new run only (start one with "
                            f"--init from this run's directory to change it)")


def _shown(value) -> str:
    """An option's value as it is typed: 0.005 for a float, true for a flag."""
    if isinstance(value, bool):
        return str(value).lower()
    return f"{value:g}" if isinstance(value, float) else str(value)


@cli.command()
@click.argument("corpus", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path), help="Model directory to write.")
@click.option("--valid", type=click.Path(path_type=Path), help="Held-out text, one text per line.")
@click.option("--mix", help="Per-file weights (passes per epoch): NAME=WEIGHT,... (NAME: file name without "
                            ".txt/.txt.gz) or a file of NAME WEIGHT lines. Unnamed files weigh 1.")
@click.option("--init", "init", help="Start a new run from this model's weights and tokenizer (a packaged name "
                                     "or a model directory); its architecture is kept.")
@click.option("--tokenizer", "tokenizer", type=click.Path(path_type=Path),
              help="Use this sentencepiece model (e.g. another run's tokenizer.model) instead of training one; "
                   "--vocab-size then does not apply.")
@config_option(LMConfig, "input", "--input",
               help="Token input: subword embeddings, or ELMo's char-CNN over each piece's characters.")
@config_option(LMConfig, "char_mode", "--char-mode", help="Char-CNN symbols.")
@config_option(LMConfig, "vocab_size", "--vocab-size", help="Sentencepiece pieces (a soft limit).")
@click.option("--boundary-piece", is_flag=True,
              help='Train the tokenizer with "▁" (a space) always a piece of its own, so that a word has the same '
                   'pieces after a space, a digit or nothing (one more piece per word).')
@config_option(LMConfig, "num_layers", "--layers", help="Stacked LSTM layers.")
@config_option(LMConfig, "hidden", "--hidden", help="LSTM cell width.")
@config_option(LMConfig, "projection", "--proj", help="Projection (output) width of every layer.")
@config_option(LMConfig, "softmax", "--softmax", help="Softmax over the pieces.")
@config_option(LMConfig, "dropout", "--dropout", help="Dropout between layers.")
@click.option("--direction", type=click.Choice(["both", "forward", "backward"]), default="both", show_default=True)
@config_option(TrainConfig, "max_steps", "--max-steps", positive=True, help="Stop after this many steps.")
@config_option(TrainConfig, "max_seconds", "--max-seconds", positive=True, help="Wall-clock limit of this invocation.")
@config_option(TrainConfig, "epochs", "--epochs", positive=True,
               help="Passes over the corpus (default 1 if no limit given).")
@config_option(TrainConfig, "batch_tokens", "--batch-tokens", positive=True, help="Pieces per batch.")
@config_option(TrainConfig, "optimizer", "--optimizer")
@config_option(TrainConfig, "lr", "--lr", positive=True, help="Peak learning rate.")
@config_option(TrainConfig, "warmup_steps", "--warmup-steps", help="Linear warm-up steps.")
@config_option(TrainConfig, "eval_every", "--eval-every", positive=True, help="Steps between held-out scores.")
@config_option(TrainConfig, "checkpoint_every", "--checkpoint-every", positive=True, help="Steps between checkpoints.")
@config_option(TrainConfig, "log_every", "--log-every", positive=True, help="Steps between metrics records.")
@config_option(TrainConfig, "seed", "--seed")
@config_option(TrainConfig, "subword_sampling", "--subword-sampling",
               help="Subword regularization: train on segmentations sampled from the tokenizer with this "
                    "smoothing (0.1-0.5; lower is more varied), not the best one; 0: off. Scores and embeddings "
                    "always use the best one. A --resume of such a run is not bit-for-bit an unbroken run.")
@config_option(TrainConfig, "precision", "--precision",
               help="auto: bf16 autocast where the CPU computes bf16 natively (AVX-512 BF16, AMX) or on a GPU, "
                    "else float32.")
@click.option("--threads", type=int, callback=_positive, help="Torch threads in all (split between directions).")
@click.option("--resume", is_flag=True,
              help="Continue the run in --out from its last checkpoint, with its architecture and schedule "
                   "(another value for one of them is refused).")
@click.option("--skip-nonfinite", is_flag=True, help="Skip batches whose loss is NaN/inf instead of stopping.")
@click.option("--sequential", is_flag=True, help="With --direction both: one direction after the other, in-process.")
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda or cuda:N.")
@click.option("--distributed", is_flag=True,
              help="One rank of a torchrun launch: data-parallel DDP (gloo on CPU, nccl on GPU).")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@reports_errors
def pretrain(corpus, out_dir, valid, mix, init, tokenizer, boundary_piece, direction, threads, resume,
             skip_nonfinite, sequential, device, distributed, no_progress, **options):
    """Pretrain forward and backward LSTM language models on CORPUS: one or more text files (.txt or .txt.gz,
    one text per line), globs or directories, streamed interleaved (see --mix)."""
    from contextemb.pretrain.train import init_lm_config
    from contextemb.pretrain.train import pretrain as run_pretrain

    lm_given = given(options, LM_OPTIONS)
    if boundary_piece:
        lm_given["boundary_piece"] = True
    train_given = given(options, TRAIN_OPTIONS)
    saved = _saved_run(out_dir) if resume else None
    if saved is not None:  # without one, the resume itself reports the missing run
        _check_resumed_options(saved, {**lm_given, **given(options, RESUMED_FLAGS)})
        train_given = {**{name: getattr(saved.train, name) for name in CADENCE}, **train_given}
    lm = init_lm_config(init, lm_given) if init else LMConfig(**lm_given)
    train = TrainConfig(skip_nonfinite=skip_nonfinite, **train_given)
    config = ModelConfig(lm=lm, train=train)
    directions = ("forward", "backward") if direction == "both" else (direction,)
    summaries = run_pretrain(list(corpus), out_dir, config, valid=valid, directions=directions, threads=threads,
                             resume=resume, parallel=not sequential, progress=not no_progress, device=device,
                             distributed=distributed, mix=mix, init=init, tokenizer=tokenizer)
    if distributed and os.environ.get("RANK", "0") != "0":
        return  # rank 0 reports
    for summary in summaries:
        valid_text = "" if summary.valid_ppl is None else \
            f", held-out perplexity {summary.valid_ppl:.2f}, {summary.valid_bpc:.3f} bits/char"
        state = " (interrupted: continue with --resume)" if summary.interrupted else ""
        click.echo(f"{summary.direction}: {summary.step} steps, {summary.tokens} pieces, "
                   f"{summary.tokens_per_s:.0f} pieces/s{valid_text}{state}")
    if any(summary.interrupted for summary in summaries):
        sys.exit(130)


@cli.command()
@click.argument("corpus", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path),
              help="Writes OUT/train/<name>.txt for each file and OUT/heldout.txt.")
@click.option("--every", type=int, default=200, show_default=True, help="Hold out one line in this many (by hash).")
@reports_errors
def holdout(corpus, out_dir, every):
    """Hold out a fixed slice of CORPUS (files, globs, directories) for held-out scoring, by a hash of each line."""
    from contextemb.pretrain.holdout import split_heldout

    from contextemb.corpus import resolve_corpus

    split = split_heldout(resolve_corpus(list(corpus)), out_dir, every)
    click.echo(f"{split.train_lines} lines kept in {len(split.train_files)} files under {out_dir / 'train'}, "
               f"{split.heldout_lines} held out in {split.heldout_file}")


@cli.command()
@click.argument("model_dir", metavar="MODEL")
@click.argument("text_file", type=click.Path(path_type=Path))
@click.option("--direction", type=click.Choice(["both", "forward", "backward"]), default="both", show_default=True)
@click.option("--max-lines", type=int, callback=_positive, help="Score only the first N lines.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per direction.")
@reports_errors
def perplexity(model_dir, text_file, direction, max_lines, as_json):
    """Held-out perplexity per piece and bits per character of each direction's model."""
    from contextemb.evaluation.perplexity import perplexity as run_perplexity

    directions = ("forward", "backward") if direction == "both" else (direction,)
    for result in run_perplexity(model_dir, text_file, directions, max_lines=max_lines):
        if as_json:
            click.echo(json.dumps(result.to_dict()))
        else:
            click.echo(f"{result.direction:8s} perplexity {result.score.perplexity:8.2f} per piece   "
                       f"{result.score.bits_per_char:.3f} bits/char   "
                       f"({result.score.pieces} pieces, {result.score.characters} characters)")


@cli.command()
@click.argument("model_dir", metavar="MODEL")
@click.option("--prompt", default="", help="Text to continue.")
@click.option("--max-pieces", type=int, default=60, show_default=True, callback=_positive)
@click.option("--temperature", type=float, default=0.8, show_default=True, callback=_positive)
@click.option("--seed", type=int, help="Make the sample repeatable.")
@click.option("-n", "--num-samples", type=int, default=1, show_default=True, callback=_positive)
@reports_errors
def sample(model_dir, prompt, max_pieces, temperature, seed, num_samples):
    """Generate text with the forward language model."""
    from contextemb.model_dir import load_model_dir
    from contextemb.sampling import sample_text

    loaded = load_model_dir(model_dir, ("forward",))
    for index in range(num_samples):
        click.echo(sample_text(loaded.models["forward"], loaded.tokenizer, prompt, max_pieces=max_pieces,
                               temperature=temperature, seed=None if seed is None else seed + index))


@cli.command()
@click.argument("model")
@click.argument("input_file", type=click.Path(path_type=Path))
@click.argument("output_file", type=click.Path(path_type=Path))
@click.option("--layers", type=click.Choice(get_args(LayerChoice)), default="all", show_default=True)
@click.option("--format", "output_format", type=click.Choice(get_args(OutputFormat)), default="hdf5", show_default=True)
@click.option("--batch-size", type=int, default=BATCH_TEXTS, show_default=True, callback=_positive,
              help="At most this many lines in a batch.")
@click.option("--batch-pieces", type=int, default=BATCH_PIECES, show_default=True, callback=_positive,
              help="At most this many padded pieces in a batch (lines x longest line).")
@click.option("--threads", type=int, callback=_positive, help="Torch threads.")
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda or cuda:N.")
@precision_option
@quantize_alias
@click.option("--force", is_flag=True, help="Overwrite OUTPUT_FILE.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@reports_errors
def embed(model, input_file, output_file, layers, output_format, batch_size, batch_pieces, threads, device, quantize,
          precision, force, no_progress):
    """Embed every line of INPUT_FILE with MODEL (a packaged model's name or a model directory)."""
    from contextemb.embedder import load
    from contextemb.export import export_embeddings

    embedder = load(model, device=device, threads=threads, quantize=quantize, precision=precision)
    summary = export_embeddings(embedder, input_file, output_file, layers=layers, output_format=output_format,
                                batch_size=batch_size, batch_pieces=batch_pieces, force=force,
                                progress=not no_progress)
    click.echo(f"{summary.lines} lines, {summary.words} words -> {output_file} in {summary.seconds:.1f} s "
               f"({summary.lines / max(summary.seconds, 1e-9):.0f} sentences/s)")


@cli.command()
def models():
    """List the models packaged with contextemb."""
    from contextemb.packaged import list_models, packaged_models_dir

    names = list_models()
    if not names:
        click.echo("no packaged models")
    for name in names:
        click.echo(f"{name}\t{packaged_models_dir() / name}")


@cli.command()
@click.argument("model")
@click.argument("word")
@click.argument("first_text")
@click.argument("second_text")
@reports_errors
def similarity(model, word, first_text, second_text):
    """Cosine similarity, per layer, of WORD's vectors in two texts."""
    from contextemb.evaluation.similarity import word_similarity

    from contextemb.embedder import load

    rows = word_similarity(load(model), word, first_text, second_text)
    click.echo(f"{word!r} in  1: {first_text}\n{' ' * (len(repr(word)) + 4)}2: {second_text}")
    for row in rows:
        name = "token encoders" if row.layer == 0 else f"LSTM layer {row.layer}"
        click.echo(f"  layer {row.layer} ({name:14s})  cosine {row.cosine:+.3f}")


@cli.command()
@click.argument("model")
@click.option("--probes", "probe_file", type=click.Path(path_type=Path),
              help="Probe TSV (word, sense, gloss, text, start, end). Default: the bundled set of --language.")
@click.option("--language", type=click.Choice(["ko", "en"]), default="ko", show_default=True,
              help="Which bundled probe set to use without --probes.")
@click.option("--word", help="Only this word.")
@click.option("--dev-set", is_flag=True, help="The hand-labelled Korean development set (text read from the shared "
              "corpora, $CONTEXTEMB_DATA): also WiC-style pair accuracy per layer.")
@click.option("--w2v", "w2v_path", type=click.Path(path_type=Path), help="Word2Vec file from `contextemb word2vec`.")
@click.option("--plot", "plot_path", type=click.Path(path_type=Path), help="Write heatmaps and PCA scatters here.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per word and representation.")
@click.option("--json-out", "json_path", type=click.Path(path_type=Path),
              help="Also write those JSON objects to this file, one per line, while printing the table.")
@click.option("--bootstrap", type=int, default=1000, show_default=True, callback=_positive)
@precision_option
@quantize_alias
@reports_errors
def probe(model, probe_file, language, word, dev_set, w2v_path, plot_path, as_json, json_path, bootstrap, quantize,
          precision):
    """Do a word's vectors group by sense? Per layer, contextual against static Word2Vec."""
    from contextemb.evaluation.probe import format_table, run_probes, summarise
    from contextemb.evaluation.probe_sets import bundled_probe_file, read_probes

    from contextemb.embedder import load

    if dev_set and probe_file is not None:
        raise click.UsageError("--dev-set and --probes name two probe sets; give one")
    if dev_set:
        from contextemb.evaluation.dev_homographs import load_dev_probes

        probes = load_dev_probes(word=word)
    else:
        probes = read_probes(probe_file or bundled_probe_file(language), word=word)
    embedder = load(model, quantize=quantize, precision=precision)  # after the probes: bad input fails fast
    static = None
    if w2v_path is not None:
        from contextemb.evaluation.word2vec import StaticVectors

        static = StaticVectors(w2v_path, embedder.tokenizer)
    rows, grouped = run_probes(embedder, probes, static, samples=bootstrap)
    json_lines = [json.dumps({"word": row.word, "representation": row.representation, "occurrences": row.occurrences,
                              "senses": row.senses, **row.metrics._asdict()}, ensure_ascii=False) for row in rows]
    if as_json:
        for line in json_lines:
            click.echo(line)
    else:
        click.echo(format_table(rows))
        click.echo("\nmean over words:")
        for name, values in summarise(rows).items():
            click.echo(f"  {name:9s} 1-NN {values['accuracy']:.3f} (chance {values['chance']:.3f})  "
                       f"gap {values['gap']:+.3f}  silhouette {values['silhouette']:+.3f}")
    if dev_set:
        from contextemb.evaluation.dev_set import format_pairs, pair_accuracy

        pairs = pair_accuracy(grouped)
        pair_lines = [json.dumps({"task": "pairs", **result._asdict()}) for result in pairs.results]
        json_lines.extend(pair_lines)
        if as_json:
            for line in pair_lines:
                click.echo(line)
        else:
            click.echo("\n" + format_pairs(pairs))
    if json_path is not None:
        from contextemb.io import atomic_write_text

        atomic_write_text(json_path, "\n".join(json_lines) + "\n")
    if plot_path is not None:
        from contextemb.evaluation.plots import plot_probes

        plot_probes(grouped, plot_path)
        click.echo(f"plot: {plot_path}", err=as_json)


@cli.command()
@click.argument("corpus", type=click.Path(path_type=Path))
@click.option("--out", "out_path", required=True, type=click.Path(path_type=Path))
@click.option("--model", default="ko-general", show_default=True,
              help="The contextual model whose tokenizer gives the pieces (same pre-tokenisation).")
@click.option("--dim", type=int, default=300, show_default=True, callback=_positive)
@click.option("--epochs", type=int, default=5, show_default=True, callback=_positive)
@click.option("--min-count", type=int, default=5, show_default=True, callback=_positive)
@click.option("--workers", type=int, default=2, show_default=True, callback=_positive)
@reports_errors
def word2vec(corpus, out_path, model, dim, epochs, min_count, workers):
    """Train the static Word2Vec baseline on CORPUS, over MODEL's sentencepiece pieces."""
    from contextemb.corpus import check_text_file
    from contextemb.evaluation.word2vec import train_word2vec
    from contextemb.io import TOKENIZER_FILE
    from contextemb.packaged import resolve_model
    from contextemb.tokenization import Tokenizer

    tokenizer = Tokenizer.from_file(resolve_model(model) / TOKENIZER_FILE)
    result = train_word2vec(check_text_file(corpus), tokenizer, out_path, dim=dim, epochs=epochs,
                            min_count=min_count, workers=workers)
    click.echo(f"{result.pieces} piece vectors -> {out_path} in {result.seconds:.1f} s")


@cli.command()
@click.argument("model")
@click.option("--train", "train_path", required=True, type=click.Path(path_type=Path),
              help="WiC X.data.txt (with X.gold.txt beside it) or a pair TSV.")
@click.option("--test", "test_path", required=True, type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True)
@reports_errors
def wic(model, train_path, test_path, as_json):
    """Word-in-Context: same sense or not, from per-layer cosines; threshold chosen on train."""
    from contextemb.evaluation.wic import evaluate_wic, read_pairs

    from contextemb.embedder import load

    train, test = read_pairs(train_path), read_pairs(test_path)
    results = evaluate_wic(load(model), train, test)
    for result in results:
        if as_json:
            click.echo(json.dumps(result._asdict()))
        else:
            threshold = "" if result.threshold is None else f"threshold {result.threshold:+.3f}  "
            click.echo(f"{result.representation:22s} {threshold:18s} train {result.train_accuracy:.3f}  "
                       f"test {result.test_accuracy:.3f}")
    if not as_json:
        click.echo(f"({len(train)} train pairs, {len(test)} test pairs)")


@cli.command()
@click.argument("model")
@click.argument("treebank", type=click.Path(path_type=Path))
@click.option("--test-fraction", type=float, default=0.25, show_default=True, help="Sentences held out for testing.")
@click.option("--max-sentences", type=int, callback=_positive, help="Use only the first N sentences.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@reports_errors
def syntax(model, treebank, test_fraction, max_sentences, seed, as_json):
    """Which layer knows syntax? Dependency label of each word from its vector (KLUE-DP-style TSV)."""
    from contextemb.evaluation.syntax import evaluate_syntax, read_dependency_tsv

    from contextemb.embedder import load

    sentences = read_dependency_tsv(treebank)[:max_sentences]
    results = evaluate_syntax(load(model), sentences, test_fraction=test_fraction, seed=seed)
    for result in results:
        if as_json:
            click.echo(json.dumps(result._asdict()))
        else:
            click.echo(f"{result.representation:16s} train {result.train_accuracy:.3f}  test {result.test_accuracy:.3f}")
    if not as_json:
        words = sum(len(s.words) for s in sentences)
        click.echo(f"({len(sentences)} sentences, {words} words; logistic regression per representation)")


@cli.command()
@click.argument("model")
@click.option("--train", "train_path", required=True, type=click.Path(path_type=Path), help="Labelled TSV with a header.")
@click.option("--test", "test_path", required=True, type=click.Path(path_type=Path))
@click.option("--text-column", default="document", show_default=True)
@click.option("--label-column", default="label", show_default=True)
@click.option("--features", "feature_values", multiple=True, metavar="KIND[,KIND]",
              help="mix (the biLM's layers), static (Word2Vec), static+mix (both, concatenated per word); "
                   "repeat or comma-separate for several. Default: mix, and static too when --w2v is given.")
@click.option("--w2v", "w2v_path", type=click.Path(path_type=Path),
              help="Word2Vec vectors (`contextemb word2vec`) for the static features.")
@click.option("--max-train", type=int, callback=_positive, help="Use only the first N training rows.")
@click.option("--max-test", type=int, callback=_positive, help="Use only the first N test rows.")
@click.option("--epochs", type=int, default=6, show_default=True, callback=_positive)
@click.option("--patience", type=int, default=1, show_default=True, callback=_positive,
              help="Stop once more than this many epochs in a row bring no better dev accuracy "
                   "(the best epoch is kept).")
@click.option("--layer-norm", is_flag=True,
              help="Normalise each biLM layer before the learned mix (ELMo's option for layers of different scales).")
@click.option("--output-mix", is_flag=True,
              help="Also a second learned mix of the biLM's layers beside the classifier's BiLSTM states, before "
                   "pooling (ELMo's 'ELMo at the output'); for the kinds that read the biLM.")
@click.option("--finetune-bilm", is_flag=True,
              help="Train the biLM's LSTM layers with the classifier (task fine-tuning, past ELMo's frozen recipe) "
                   "instead of reading frozen vectors; much slower. Needs --precision float32.")
@click.option("--bilm-lr", type=float,
              help="With --finetune-bilm: the LSTMs' learning rate (warmed up over the first 500 steps)  "
                   "[default: 1e-4]")
@click.option("--frozen-epochs", type=click.IntRange(min=0), default=0, show_default=True,
              help="With --finetune-bilm: epochs in which only the classifier learns, before the biLM joins "
                   "(gradual unfreezing); --patience counts from the first epoch after them.")
@click.option("--batch-size", type=int, default=64, show_default=True, callback=_positive,
              help="Texts per classifier step.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--save", "save_dir", type=click.Path(path_type=Path),
              help="Keep each trained classifier in SAVE/KIND (with its biLM, fine-tuned or not, and Word2Vec "
                   "vectors) for `contextemb predict`; SAVE/KIND must not exist yet.")
@click.option("--precision", type=click.Choice(list(PRECISIONS)), default="float32",
              show_default=True, help="The biLM's arithmetic for the features (float32: the same on every CPU).")
@click.option("--threads", type=int, callback=_positive,
              help="Torch threads (1 is much faster on a CPU that other jobs keep busy).")
@click.option("--json", "as_json", is_flag=True)
@click.option("--no-progress", is_flag=True, help="No progress bars.")
@reports_errors
def classify(model, train_path, test_path, text_column, label_column, feature_values, w2v_path, max_train, max_test,
             epochs, patience, layer_norm, output_mix, finetune_bilm, bilm_lr, frozen_epochs, batch_size, seed,
             save_dir, precision, threads,
             as_json, no_progress):
    """Train a classifier over word features (the biLM's learned layer mix, Word2Vec, or both; the biLM frozen,
    or learning with the classifier under --finetune-bilm); report test accuracy and the learned weights."""
    from contextemb.evaluation.classify import classify as run_classify
    from contextemb.evaluation.classify import parse_feature_kinds, read_labelled
    from contextemb.evaluation.word2vec import StaticVectors

    from contextemb.embedder import load
    from contextemb.io import check_new_directory

    default = ["mix", "static"] if w2v_path is not None else ["mix"]
    kinds = parse_feature_kinds(feature_values or default)
    if output_mix and not any("mix" in kind for kind in kinds):
        raise UserError("--output-mix needs a kind that reads the biLM (mix or static+mix)")
    if finetune_bilm and not any("mix" in kind for kind in kinds):
        raise UserError("--finetune-bilm needs a kind that reads the biLM (mix or static+mix)")
    if finetune_bilm and precision != "float32":
        raise UserError(f"--finetune-bilm trains the biLM in float32; --precision {precision} is for frozen features")
    if bilm_lr is not None and not finetune_bilm:
        raise UserError("--bilm-lr is the learning rate of --finetune-bilm; add --finetune-bilm")
    bilm_lr = 1e-4 if bilm_lr is None else bilm_lr
    if not bilm_lr > 0:
        raise UserError(f"--bilm-lr must be > 0, got {bilm_lr}")
    if frozen_epochs and not finetune_bilm:
        raise UserError("--frozen-epochs are the first epochs of --finetune-bilm; add --finetune-bilm")
    if finetune_bilm and frozen_epochs >= epochs:
        raise UserError(f"--frozen-epochs {frozen_epochs} leaves the biLM no epoch to learn in (--epochs {epochs})")
    if save_dir is not None:
        for kind in kinds:
            check_new_directory(save_dir / kind)
    embedder = load(model, precision=precision, threads=threads)
    static = None if w2v_path is None else StaticVectors(w2v_path, embedder.tokenizer)
    train_texts, train_labels = read_labelled(train_path, text_column, label_column, max_train)
    test_texts, test_labels = read_labelled(test_path, text_column, label_column, max_test)

    def show(result):  # each kind's line as soon as it is done
        if as_json:
            click.echo(json.dumps(result._asdict()))
            return
        weights = ", ".join(f"{w:.3f}" for w in result.layer_weights)
        mix = f"  layer weights [{weights}] gamma {result.gamma:.3f}" if result.gamma is not None else ""
        scale = f"  static gamma {result.static_gamma:.3f}" if result.static_gamma is not None else ""
        if result.output_gamma is not None:
            scale += (f"  output mix [{', '.join(f'{w:.3f}' for w in result.output_layer_weights)}] "
                      f"gamma {result.output_gamma:.3f}")
        if result.bilm_lr is not None:
            scale += f"  biLM fine-tuned (lr {result.bilm_lr:g}, after {result.frozen_epochs} frozen epochs)"
        click.echo(f"{result.name:10s} test accuracy {result.test_accuracy:.4f}  (dev {result.dev_accuracy:.4f}, "
                   f"epoch {result.best_epoch} of {result.epochs_run}, {result.seconds:.0f} s, "
                   f"input {result.input_dim}){mix}{scale}")

    report = run_classify(embedder, kinds, train_texts, train_labels, test_texts, test_labels, static=static,
                          epochs=epochs, patience=patience, seed=seed, layer_norm=layer_norm,
                          output_mix=output_mix, finetune_bilm=finetune_bilm, bilm_lr=bilm_lr,
                          frozen_epochs=frozen_epochs, batch_size=batch_size,
                          progress=not no_progress, on_result=show, save_dir=save_dir)
    if not as_json:
        click.echo(f"({len(train_texts)} train rows, {len(test_texts)} test rows; features: biLM "
                   f"{report.contextual_seconds:.0f} s, Word2Vec {report.static_seconds:.0f} s)")
        if save_dir is not None:
            click.echo(f"saved: {', '.join(str(save_dir / kind) for kind in kinds)}; label new texts with "
                       f"`contextemb predict {save_dir / kinds[0]} TEXTS.txt`")


@cli.command()
@click.argument("classifier_dir", metavar="CLASSIFIER", type=click.Path(path_type=Path))
@click.argument("input_file", metavar="TEXTS", type=click.Path(path_type=Path))
@click.option("--out", "output_file", type=click.Path(path_type=Path),
              help="Write the TSV here (atomically) instead of to standard output.")
@click.option("--precision", type=click.Choice(list(PRECISIONS)), default="auto", show_default=True,
              help="The biLM's arithmetic (float32: exactly the vectors the classifier trained on).")
@click.option("--threads", type=int, callback=_positive, help="Torch threads.")
@reports_errors
def predict(classifier_dir, input_file, output_file, precision, threads):
    """Label every line of TEXTS (.txt or .txt.gz; - reads standard input) with a classifier saved by `classify
    --save`: a TSV with a header, then per line its label and each class's probability (blank lines included, so
    numbers align)."""
    from contextemb.evaluation.saved_classifier import predict_file

    summary = predict_file(classifier_dir, input_file, output_file, precision=precision, threads=threads)
    if output_file is not None:
        click.echo(f"{summary.lines} lines -> {output_file} in {summary.seconds:.1f} s")


@cli.command("export")
@click.argument("model_dir", metavar="MODEL")
@click.argument("out_dir", type=click.Path(path_type=Path))
@click.option("--float32", "full", is_flag=True, help="Keep float32 weights (default: float16, half the size).")
@click.option("--card", type=click.Path(path_type=Path), help="A JSON file describing the model, copied as model_card.json.")
@reports_errors
def export_command(model_dir, out_dir, full, card):
    """Copy a trained model for distribution: weights (float16 by default), config, tokenizer; no checkpoints."""
    from contextemb.model_dir import export_model_dir

    card_data = None
    if card is not None:
        try:
            card_data = json.loads(Path(card).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as error:
            raise UserError(f"--card {card}: {error}") from None
    out = export_model_dir(model_dir, out_dir, half=not full, card=card_data)
    size = sum(path.stat().st_size for path in out.iterdir() if path.is_file())
    click.echo(f"{out}: {size / 1e6:.1f} MB")


@cli.command()
@click.argument("model")
@click.argument("out_dir", type=click.Path(path_type=Path))
@click.option("--hidden", type=int, required=True, callback=_positive, help="LSTM cells per layer, above the model's.")
@click.option("--seed", type=int, default=0, show_default=True, help="Initialisation of the new cells.")
@reports_errors
def widen(model, out_dir, hidden, seed):
    """Widen MODEL's LSTM cells into a new model directory that computes the same thing; continue training it
    with `pretrain --init OUT_DIR`."""
    from contextemb.widen import widen_model_dir

    out = widen_model_dir(model, out_dir, hidden, seed=seed)
    click.echo(f"{out}: {model} widened to {hidden} LSTM cells per layer; train it with "
               f"`contextemb pretrain CORPUS --init {out} --out RUN`")


@cli.command("wic-pairs")
@click.option("--probes", "probe_file", type=click.Path(path_type=Path), help="Default: the bundled set of --language.")
@click.option("--language", type=click.Choice(["ko", "en"]), default="ko", show_default=True)
@click.option("--train", "train_out", required=True, type=click.Path(path_type=Path))
@click.option("--test", "test_out", required=True, type=click.Path(path_type=Path))
@click.option("--seed", type=int, default=0, show_default=True)
@reports_errors
def wic_pairs(probe_file, language, train_out, test_out, seed):
    """Build balanced WiC-style pair files (train/test, split by sentence) from a probe set."""
    from contextemb.evaluation.probe_sets import bundled_probe_file, read_probes
    from contextemb.evaluation.wic import pairs_from_probes, write_pair_tsv

    train, test = pairs_from_probes(read_probes(probe_file or bundled_probe_file(language)), seed=seed)
    write_pair_tsv(train, train_out)
    write_pair_tsv(test, test_out)
    click.echo(f"{len(train)} train pairs -> {train_out}, {len(test)} test pairs -> {test_out}")


if __name__ == "__main__":
    cli()
