"""A trained classifier kept as a directory (`classify --save`), and labelling texts with it (`contextemb predict`).

One directory per feature kind:

    classifier.json          format, kind, classes, the classifier's shape, its scores (ClassifierResult)
    classifier.safetensors   the classifier's weights: mix, scales, BiLSTM, output layer
    bilm/                    (mix, static+mix) a model directory with the biLM it read: a copy of the model's
                             files, or, with --finetune-bilm, the LSTMs as they learned with the classifier
                             (float32; `contextemb.load` reads it like any model)
    tokenizer.model          (static) the pieces Word2Vec's vectors belong to
    w2v.bin, w2v.bin.json    (static, static+mix) the Word2Vec vectors

Loading never unpickles: weights are safetensors, the rest JSON, sentencepiece and word2vec binary files. The
directory appears whole or not at all (contextemb.io.atomic_directory).
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path
from typing import NamedTuple, Optional, Sequence, TextIO, Union

import numpy as np
import torch

from contextemb.batching import sort_by_length
from contextemb.config import CONFIG_FILE_NAME
from contextemb.corpus import check_text_file, read_stream_lines
from contextemb.embedder import Embedder, check_texts, load
from contextemb.errors import ConfigError, ModelFormatError
from contextemb.export import chunked, read_all_lines
from contextemb.io import TOKENIZER_FILE, atomic_directory, atomic_write, load_tensors, save_tensors, weights_path
from contextemb.model_dir import save_weights
from contextemb.packaged import resolve_model
from contextemb.tokenization import Tokenizer

from .classify import FEATURE_KINDS, FeatureKind, FittedClassifier, SequenceClassifier, WordFeatures, \
    contextual_features, static_features
from .word2vec import StaticVectors

CLASSIFIER_FILE = "classifier.json"
WEIGHTS_FILE = "classifier.safetensors"
BILM_DIR = "bilm"
W2V_FILE = "w2v.bin"
FORMAT = "contextemb-classifier"
FORMAT_VERSION = 1
STDIN = "-"  # predict_file's input_path for standard input
_MODEL_FILES = (CONFIG_FILE_NAME, TOKENIZER_FILE, "model_card.json")


def save_classifier(directory: Union[str, Path], kind: FeatureKind, fitted: FittedClassifier,
                    embedder: Embedder, static: Optional[StaticVectors] = None,
                    training: Optional[dict] = None) -> Path:
    """Write what `predict` needs to label new texts as `fitted` did into the new directory `directory`.
    training: how it was trained (seed, epochs, rows, ...), kept in classifier.json so the run can be repeated."""
    head = fitted.head
    if "static" in kind and static is None:
        raise ConfigError(f"a {kind} classifier needs its Word2Vec vectors to be saved")
    with atomic_directory(Path(directory)) as tmp:
        if "mix" in kind:
            _write_bilm(tmp / BILM_DIR, embedder, fitted)
        else:
            (tmp / TOKENIZER_FILE).write_bytes(embedder.tokenizer.model_proto)
        if "static" in kind:
            shutil.copyfile(static.path, tmp / W2V_FILE)
            sidecar = static.path.with_name(static.path.name + ".json")
            if sidecar.is_file():
                shutil.copyfile(sidecar, tmp / (W2V_FILE + ".json"))
        save_tensors(tmp / WEIGHTS_FILE, {name: tensor.detach().cpu().contiguous()
                                          for name, tensor in head.state_dict().items()},
                     metadata={"format": FORMAT, "format_version": str(FORMAT_VERSION)})
        meta = {"format": FORMAT, "format_version": FORMAT_VERSION, "kind": kind, "classes": fitted.classes,
                "num_layers": head.num_layers, "contextual_dim": head.contextual_dim, "static_dim": head.static_dim,
                "hidden": head.lstm.hidden_size, "dropout": head.dropout.p,
                "layer_norm": fitted.result.layer_norm, "output_mix": head.output_mix is not None,
                "bilm_fine_tuned": fitted.bilm is not None, "model": embedder.name,
                "result": fitted.result._asdict(), "training": dict(training or {})}
        (tmp / CLASSIFIER_FILE).write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return Path(directory)


def _write_bilm(out: Path, embedder: Embedder, fitted: FittedClassifier) -> None:
    """The biLM the classifier read, as a model directory: its fine-tuned copy, or the model's own files."""
    out.mkdir()
    if fitted.bilm is None:
        source = resolve_model(embedder.name)
        for name in _MODEL_FILES + tuple(weights_path(source, d).name for d in ("forward", "backward")):
            if (source / name).is_file():
                shutil.copyfile(source / name, out / name)
        return
    (out / TOKENIZER_FILE).write_bytes(embedder.tokenizer.model_proto)
    for direction, model in (("forward", fitted.bilm.forward_lm), ("backward", fitted.bilm.backward_lm)):
        save_weights(model, weights_path(out, direction))
    card = {"name": f"{Path(embedder.name).name} fine-tuned with a classifier",
            "what": "the biLM's LSTM layers as they learned with a classifier (contextemb classify --finetune-bilm); "
                    "the token layer and the softmax were not trained, so perplexity and samples are no longer "
                    "the language model's",
            "fine_tuned_from": embedder.name, "classifier_result": fitted.result._asdict()}
    (out / "model_card.json").write_text(json.dumps(card, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    (out / CONFIG_FILE_NAME).write_text(embedder.config.to_json(), encoding="utf-8")


class TextClassifier:
    """A classifier saved by `classify --save` (save_classifier): texts -> labels and class probabilities.

    precision: of the biLM, as in contextemb.load ("auto" by default; "float32" gives exactly the vectors a
    fine-tuned biLM trained with). A text is split into words as in training; an empty text gets the answer
    the classifier learned for texts without words."""

    def __init__(self, directory: Union[str, Path], precision: str = "auto", threads: Optional[int] = None):
        directory = Path(directory)
        meta = _read_meta(directory / CLASSIFIER_FILE)
        self.directory = directory
        self.kind: FeatureKind = meta["kind"]
        self.classes: list[str] = list(meta["classes"])
        self.result: dict = meta.get("result", {})
        self.embedder: Optional[Embedder] = None
        if "mix" in self.kind:
            self.embedder = load(directory / BILM_DIR, precision=precision, threads=threads)
            tokenizer = self.embedder.tokenizer
        else:
            tokenizer = Tokenizer.from_file(directory / TOKENIZER_FILE)
        self.static = StaticVectors(directory / W2V_FILE, tokenizer) if "static" in self.kind else None
        self.head = SequenceClassifier(meta["num_layers"], meta["contextual_dim"], meta["static_dim"],
                                       len(self.classes), hidden=meta["hidden"], dropout=meta["dropout"],
                                       layer_norm=meta["layer_norm"], output_mix=meta["output_mix"])
        tensors, _ = load_tensors(directory / WEIGHTS_FILE)
        try:
            self.head.load_state_dict(tensors)
        except RuntimeError as error:
            first = str(error).splitlines()[0]
            raise ModelFormatError(f"{directory / WEIGHTS_FILE} does not match {CLASSIFIER_FILE}: {first}") from None
        self.head.eval()

    def probabilities(self, texts: Sequence[str], batch_size: int = 256) -> np.ndarray:
        """(texts, classes) float32: each text's class probabilities, classes in the order of `classes`."""
        texts = check_texts(texts, "TextClassifier")
        out = np.zeros((len(texts), len(self.classes)), dtype=np.float32)
        if not texts:
            return out
        contextual = contextual_features(self.embedder, texts, progress=False) if self.embedder else None
        static = static_features(self.static, texts) if self.static is not None else None
        features = WordFeatures.of_kind(self.kind, contextual, static)
        order = sort_by_length([features.num_words(index) for index in range(len(texts))])
        with torch.inference_mode():
            for begin in range(0, len(order), batch_size):
                chunk = order[begin:begin + batch_size]
                out[chunk] = torch.softmax(self.head(features.batch(chunk)), dim=-1).numpy()
        return out

    def predict(self, texts: Sequence[str]) -> list[str]:
        """Each text's most probable class (a label as it was in the training file)."""
        return [self.classes[index] for index in self.probabilities(texts).argmax(axis=1)]


def _read_meta(path: Path) -> dict:
    if not path.is_file():
        raise ModelFormatError(f"{path} not found: a classifier directory is written by `contextemb classify --save`")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ModelFormatError(f"{path} is not valid JSON ({error})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ModelFormatError(f"{path} is not a contextemb classifier (format {FORMAT!r})")
    if meta.get("format_version") != FORMAT_VERSION:
        raise ModelFormatError(f"{path} has format_version {meta.get('format_version')!r}; this contextemb reads "
                               f"version {FORMAT_VERSION}")
    missing = [key for key in ("kind", "classes", "num_layers", "contextual_dim", "static_dim", "hidden", "dropout",
                               "layer_norm", "output_mix") if key not in meta]
    if missing:
        raise ModelFormatError(f"{path} lacks {', '.join(missing)}")
    if meta["kind"] not in FEATURE_KINDS:
        raise ModelFormatError(f"{path}: unknown feature kind {meta['kind']!r}")
    return meta


class PredictSummary(NamedTuple):
    lines: int
    seconds: float


def predict_file(classifier: Union[str, Path, TextClassifier], input_path: Path, output_path: Optional[Path] = None,
                 *, precision: str = "auto", threads: Optional[int] = None, chunk_lines: int = 4096) -> PredictSummary:
    """Label every line of a text file (.txt or .txt.gz; blank lines too, so line numbers align), or of standard
    input when input_path is "-": a TSV whose header is `label` and `p_CLASS` per class, then per line its label
    and class probabilities (4 decimals). Written atomically to output_path, or to standard output when it is None,
    chunk_lines lines at a time."""
    from_stdin = str(input_path) == STDIN
    if not from_stdin:
        input_path = check_text_file(Path(input_path), "input")
    model = classifier if isinstance(classifier, TextClassifier) else TextClassifier(classifier, precision, threads)
    started = time.perf_counter()
    lines = 0

    def write(handle: TextIO) -> None:
        nonlocal lines
        handle.write("\t".join(["label"] + [f"p_{name}" for name in model.classes]) + "\n")
        source = read_stream_lines(sys.stdin.buffer) if from_stdin else read_all_lines(input_path)
        for texts in chunked(source, chunk_lines):
            for row in model.probabilities(texts):
                handle.write("\t".join([model.classes[int(row.argmax())]] + [f"{p:.4f}" for p in row]) + "\n")
            handle.flush()  # a pipe reading standard output gets each chunk as it is done
            lines += len(texts)

    if output_path is None:
        write(sys.stdout)
    else:
        def write_file(tmp: Path) -> None:
            with open(tmp, "w", encoding="utf-8") as handle:
                write(handle)
        atomic_write(Path(output_path), write_file)
    return PredictSummary(lines, time.perf_counter() - started)
