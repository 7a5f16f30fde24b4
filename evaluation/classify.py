"""A downstream text classifier over frozen word features (ELMo's recipe, Peters et al., 2018, section 3.3).

Three kinds of input per word k (`FeatureKind`):

    mix          ELMo_k = gamma * sum_j softmax(s)_j h_kj      the biLM's layers, learned ScalarMix
    static       gamma_x * x_k                                  the word's Word2Vec vector (a learned scale)
    static+mix   [gamma_x * x_k ; ELMo_k]                       the two concatenated, as ELMo adds to its baselines

    word inputs -> dropout -> BiLSTM (128 per direction) -> max-pool over words -> linear -> class logits

With output_mix (ELMo's section 3.3: "include ELMo at the output of the task RNN"), a second ScalarMix with its
own weights and scale is concatenated to each word's BiLSTM state before the max-pool: [h_k; ELMo'_k].

The biLM and Word2Vec are frozen, so each text's word vectors are computed once (float16, in memory) and the
classifier trains on them; only the mix, the scales, the BiLSTM and the output layer learn. Early stopping on
a held-out split of train (10% by default) picks the epoch.

With finetune_bilm, the biLM's LSTMs learn too (contextemb.evaluation.task_finetune): each text is kept as its
pieces and the biLM runs on every batch, with gradients.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Literal, NamedTuple, Optional, Sequence

import numpy as np
import torch
from torch import Tensor, nn
from tqdm import tqdm

from contextemb.alignment import word_spans
from contextemb.batching import sort_by_length
from contextemb.bilm import BiLM
from contextemb.embedder import Embedder
from contextemb.errors import ConfigError, DataFormatError
from contextemb.io import check_new_directory
from contextemb.scalar_mix import ScalarMix

from .probe_sets import read_tsv
from .task_finetune import FineTunedClassifier, PieceBatch, TextPieces, check_trainable, lstm_parameters, \
    text_pieces, trainable_copy, warmup_schedule
from .word2vec import StaticVectors

log = logging.getLogger(__name__)

FeatureKind = Literal["mix", "static", "static+mix"]
FEATURE_KINDS: tuple[FeatureKind, ...] = ("mix", "static", "static+mix")


def parse_feature_kinds(values: Sequence[str]) -> tuple[FeatureKind, ...]:
    """Feature kinds from option values, each one kind or a comma-separated list; duplicates dropped.

    >>> parse_feature_kinds(["static", "mix,static+mix"])
    ('static', 'mix', 'static+mix')
    """
    kinds: list[FeatureKind] = []
    for value in values:
        for kind in (part.strip() for part in value.split(",")):
            if kind not in FEATURE_KINDS:
                raise ConfigError(f"unknown feature kind {kind!r}; choose from {', '.join(FEATURE_KINDS)}")
            if kind not in kinds:
                kinds.append(kind)
    if not kinds:
        raise ConfigError(f"no feature kind given; choose from {', '.join(FEATURE_KINDS)}")
    return tuple(kinds)


def read_labelled(path: Path, text_column: str = "document", label_column: str = "label",
                  limit: Optional[int] = None) -> tuple[list[str], list[str]]:
    """Texts and labels of a TSV file with a header; rows with an empty text are kept (they get no words)."""
    texts, labels = [], []
    for _, row in read_tsv(path, (text_column, label_column)):
        if limit is not None and len(texts) >= limit:
            break
        texts.append(row[text_column])
        labels.append(row[label_column].strip())
    if len(set(labels)) < 2:
        raise DataFormatError(f"{path}: column {label_column!r} needs at least two different labels")
    return texts, labels


def contextual_features(embedder: Embedder, texts: Sequence[str], chunk: int = 8192,
                        progress: bool = True) -> list[np.ndarray]:
    """Per text, (layers, words, dim) float16 word vectors of every layer (words: whitespace-separated)."""
    features = []
    for begin in tqdm(range(0, len(texts), chunk), disable=not progress, desc="biLM features", unit="chunk"):
        for result in embedder.embed(list(texts[begin:begin + chunk])):
            features.append(result.vectors.astype(np.float16))
    return features


def static_features(static: StaticVectors, texts: Sequence[str]) -> list[np.ndarray]:
    """Per text, (words, static_dim) float16: each word's StaticVectors.vector (the same words as the biLM's,
    `alignment.word_spans`); a word none of whose pieces Word2Vec knows is a zero vector."""
    dim = static.vectors.vector_size
    known: dict[str, np.ndarray] = {}  # a word's static vector never changes: compute each distinct word once
    zero = np.zeros(dim, dtype=np.float16)
    features = []
    for text in texts:
        words = [text[span.char_start:span.char_end] for span in word_spans(text)]
        rows = np.zeros((len(words), dim), dtype=np.float16)
        for index, word in enumerate(words):
            if word not in known:
                try:
                    known[word] = static.vector(word).astype(np.float16)
                except KeyError:
                    known[word] = zero
            rows[index] = known[word]
        features.append(rows)
    return features


@dataclass(frozen=True)
class WordFeatures:
    """Word features of a list of texts. contextual: per text (layers, words, dim) float16 frozen biLM vectors, or
    None; static: per text (words, static_dim) float16, or None; pieces: instead of contextual, the texts' pieces
    for a biLM that runs with the classifier (task fine-tuning), or None. Two given: the same words in each text."""

    contextual: Optional[Sequence[np.ndarray]] = None
    static: Optional[Sequence[np.ndarray]] = None
    pieces: Optional[TextPieces] = None

    def __post_init__(self):
        if self.contextual is None and self.static is None and self.pieces is None:
            raise ValueError("WordFeatures needs contextual or static vectors, or pieces")
        if self.contextual is not None and self.pieces is not None:
            raise ValueError("WordFeatures takes frozen contextual vectors or pieces, not both")
        if self.pieces is not None and self.static is not None:
            if len(self.pieces) != len(self.static):
                raise ValueError(f"{len(self.pieces)} texts of pieces against {len(self.static)} static texts")
            for index, words in enumerate(self.static):
                if self.pieces.num_words(index) != words.shape[0]:
                    raise DataFormatError(f"text {index}: {self.pieces.num_words(index)} biLM words against "
                                          f"{words.shape[0]} Word2Vec words")
        if self.contextual is not None and self.static is not None:
            if len(self.contextual) != len(self.static):
                raise ValueError(f"{len(self.contextual)} contextual against {len(self.static)} static texts")
            for index, (layers, words) in enumerate(zip(self.contextual, self.static)):
                if layers.shape[1] != words.shape[0]:
                    raise DataFormatError(f"text {index}: {layers.shape[1]} biLM words against "
                                          f"{words.shape[0]} Word2Vec words")

    @classmethod
    def of_kind(cls, kind: FeatureKind, contextual=None, static=None,
                pieces: Optional[TextPieces] = None) -> "WordFeatures":
        """The features `kind` reads: mix the contextual ones (or the pieces), static the static ones,
        static+mix both."""
        if kind not in FEATURE_KINDS:
            raise ConfigError(f"unknown feature kind {kind!r}; choose from {', '.join(FEATURE_KINDS)}")
        if kind == "static+mix":
            # a text the tokenizer reduces to nothing (only zero-width characters, say) has no biLM words
            if pieces is not None:
                static = [words if pieces.num_words(index) else words[:0] for index, words in enumerate(static)]
            else:
                static = [words if layers.shape[1] else words[:0] for layers, words in zip(contextual, static)]
        reads_bilm = "mix" in kind
        return cls(contextual if reads_bilm and pieces is None else None, static if "static" in kind else None,
                   pieces if reads_bilm else None)

    def __len__(self) -> int:
        if self.contextual is not None:
            return len(self.contextual)
        return len(self.pieces if self.pieces is not None else self.static)

    def num_words(self, index: int) -> int:
        if self.contextual is not None:
            return self.contextual[index].shape[1]
        return self.pieces.num_words(index) if self.pieces is not None else self.static[index].shape[0]

    def length(self, index: int) -> int:
        """What batches are sorted by: a text's pieces where the biLM runs per batch (its steps; a text of one
        long word has many), else its words."""
        return len(self.pieces.piece_ids[index]) if self.pieces is not None else self.num_words(index)

    @property
    def num_layers(self) -> int:
        if self.pieces is not None:
            return self.pieces.num_layers
        return 0 if self.contextual is None else self.contextual[0].shape[0]

    @property
    def contextual_dim(self) -> int:
        if self.pieces is not None:
            return self.pieces.dim
        return 0 if self.contextual is None else self.contextual[0].shape[2]

    @property
    def static_dim(self) -> int:
        return 0 if self.static is None else self.static[0].shape[1]

    def subset(self, indices: Sequence[int]) -> "WordFeatures":
        pick = lambda items: None if items is None else [items[i] for i in indices]  # noqa: E731
        return WordFeatures(pick(self.contextual), pick(self.static),
                            None if self.pieces is None else self.pieces.subset(indices))

    def batch(self, indices: Sequence[int]) -> "Batch":
        """Pad the texts `indices` to their longest; an empty text gets one zero word (max-pool needs one)."""
        width = max(1, max(self.num_words(i) for i in indices))
        mask = np.zeros((len(indices), width), dtype=bool)
        contextual = None if self.contextual is None else \
            np.zeros((self.num_layers, len(indices), width, self.contextual_dim), dtype=np.float32)
        static = None if self.static is None else np.zeros((len(indices), width, self.static_dim), dtype=np.float32)
        for row, index in enumerate(indices):
            words = self.num_words(index)
            mask[row, :max(words, 1)] = True
            if contextual is not None:
                contextual[:, row, :words] = self.contextual[index]
            if static is not None:
                static[row, :words] = self.static[index]
        as_tensor = lambda array: None if array is None else torch.from_numpy(array)  # noqa: E731
        pieces = None if self.pieces is None else self.pieces.batch(indices, width)
        return Batch(as_tensor(contextual), as_tensor(static), torch.from_numpy(mask), pieces)


class Batch(NamedTuple):
    """contextual: (layers, batch, words, dim) float32 or None; static: (batch, words, static_dim) float32 or
    None; mask: (batch, words) bool, True on real words. Padding is zero. pieces: for a fine-tuned biLM, which
    fills in contextual (task_finetune.FineTunedClassifier), or None."""

    contextual: Optional[Tensor]
    static: Optional[Tensor]
    mask: Tensor
    pieces: Optional[PieceBatch] = None


class SequenceClassifier(nn.Module):
    """[gamma_x * x_k ; ScalarMix(h_k)] -> dropout -> BiLSTM -> max-pool -> linear; either part may be absent.
    layer_norm: normalise each biLM layer before mixing (ELMo's option where the layers' scales differ).
    output_mix: a second ScalarMix of the biLM layers beside each BiLSTM state, [s_k; ScalarMix'(h_k)], before
    the max-pool (needs contextual inputs)."""

    def __init__(self, num_layers: int, contextual_dim: int, static_dim: int, num_classes: int,
                 hidden: int = 128, dropout: float = 0.3, layer_norm: bool = False, output_mix: bool = False):
        super().__init__()
        if contextual_dim + static_dim < 1:
            raise ValueError("the classifier needs contextual or static inputs")
        if output_mix and not contextual_dim:
            raise ConfigError("the output mix needs the biLM's layers (mix or static+mix features)")
        self.mix = ScalarMix(num_layers, layer_norm=layer_norm) if contextual_dim else None
        self.output_mix = ScalarMix(num_layers, layer_norm=layer_norm) if output_mix else None
        # a learned scale for the static vectors, as gamma is for the mix: Word2Vec's vectors are small
        self.static_gamma = nn.Parameter(torch.tensor(1.0)) if static_dim else None
        self.num_layers, self.contextual_dim, self.static_dim = num_layers, contextual_dim, static_dim
        self.input_dim = contextual_dim + static_dim
        self.dropout = nn.Dropout(dropout)
        self.lstm = nn.LSTM(self.input_dim, hidden, batch_first=True, bidirectional=True)
        self.output = nn.Linear(2 * hidden + (contextual_dim if output_mix else 0), num_classes)

    def word_inputs(self, batch: Batch) -> Tensor:
        """(batch, words, input_dim): the static part first, then the mix (ELMo's [x_k; ELMo_k])."""
        parts = []
        if self.static_gamma is not None:
            parts.append(self.static_gamma * batch.static)
        if self.mix is not None:
            parts.append(self.mix(batch.contextual, batch.mask))
        return torch.cat(parts, dim=-1)

    def forward(self, batch: Batch) -> Tensor:
        """-> (batch, classes) logits; a text's logits never depend on the other texts in its batch."""
        inputs = self.dropout(self.word_inputs(batch))
        # packed, so that the backward direction starts at each text's last word, not at the batch's padding
        lengths = batch.mask.sum(dim=1).cpu()  # >= 1: an empty text has one zero word
        packed = nn.utils.rnn.pack_padded_sequence(inputs, lengths, batch_first=True, enforce_sorted=False)
        states, _ = nn.utils.rnn.pad_packed_sequence(self.lstm(packed)[0], batch_first=True,
                                                     total_length=inputs.shape[1])  # (batch, words, 2 * hidden)
        if self.output_mix is not None:  # (batch, words, 2 * hidden + contextual_dim)
            states = torch.cat([states, self.dropout(self.output_mix(batch.contextual, batch.mask))], dim=-1)
        states = states.masked_fill(~batch.mask.unsqueeze(-1), float("-inf"))
        return self.output(self.dropout(states.max(dim=1).values))


class ClassifierResult(NamedTuple):
    name: str
    test_accuracy: float
    dev_accuracy: float
    best_epoch: int
    epochs_run: int
    input_dim: int  # width of each word's input to the BiLSTM
    layer_weights: list[float]  # softmax of the mix's scalars (layer 0 = token layer); [] without a mix
    gamma: Optional[float]  # the mix's scale; None without a mix
    static_gamma: Optional[float]  # the Word2Vec vectors' scale; None without them
    seconds: float  # training and testing, not computing the features
    layer_norm: bool = False  # whether each biLM layer was normalised before the mix
    output_layer_weights: list[float] = []  # softmax of the output mix's scalars; [] without an output mix
    output_gamma: Optional[float] = None  # the output mix's scale; None without one
    bilm_lr: Optional[float] = None  # the biLM's LSTMs learned at this rate with the classifier; None: frozen
    frozen_epochs: int = 0  # fine-tuning: the first epochs, in which only the classifier learned


def _accuracy(model: nn.Module, features: WordFeatures, labels: np.ndarray, batch_size: int = 256) -> float:
    model.eval()
    order = sort_by_length([features.length(index) for index in range(len(features))])
    correct = 0
    with torch.inference_mode():
        for begin in range(0, len(order), batch_size):
            chunk = order[begin:begin + batch_size]
            correct += int((model(features.batch(chunk)).argmax(-1).numpy() == labels[chunk]).sum())
    return correct / len(features)


def _shuffled_batches(features: WordFeatures, ids: np.ndarray, batch_size: int,
                      rng: np.random.Generator) -> list[list[int]]:
    """Length-bucketed shuffled batches: a shuffled order, sorted by length within blocks of 50 batches."""
    order = rng.permutation(ids)
    block = batch_size * 50
    batches = []
    for begin in range(0, len(order), block):
        block_ids = order[begin:begin + block]
        part = [block_ids[i] for i in sort_by_length([features.length(index) for index in block_ids])]
        batches.extend(part[k:k + batch_size] for k in range(0, len(part), batch_size))
    rng.shuffle(batches)
    return batches


def _label_ids(train_labels: Sequence[str], test_labels: Sequence[str]) -> tuple[int, np.ndarray, np.ndarray]:
    """(number of classes, train label ids, test label ids); classes in sorted order."""
    classes = sorted(set(train_labels))
    unknown = set(test_labels) - set(classes)
    if unknown:
        raise DataFormatError(f"test labels {sorted(unknown)[:3]} never occur in train")
    class_index = {label: i for i, label in enumerate(classes)}
    return (len(classes), np.array([class_index[label] for label in train_labels]),
            np.array([class_index[label] for label in test_labels]))


class FittedClassifier(NamedTuple):
    """What fit_classifier trained: its scores, the classifier (in eval mode, at its best dev epoch), its
    classes (label strings, in the order of its outputs) and, where the biLM learned with it, that biLM's
    fine-tuned copy (else None)."""

    result: ClassifierResult
    head: SequenceClassifier
    classes: list[str]
    bilm: Optional[BiLM] = None


def train_and_test(name: str, train: WordFeatures, train_labels: Sequence[str], test: WordFeatures,
                   test_labels: Sequence[str], **options) -> ClassifierResult:
    """fit_classifier's scores alone (the same keyword options)."""
    return fit_classifier(name, train, train_labels, test, test_labels, **options).result


def fit_classifier(name: str, train: WordFeatures, train_labels: Sequence[str], test: WordFeatures,
                   test_labels: Sequence[str], *, epochs: int = 6, patience: int = 1, batch_size: int = 64,
                   lr: float = 1e-3, dev_fraction: float = 0.1, seed: int = 0, layer_norm: bool = False,
                   output_mix: bool = False, bilm: Optional[BiLM] = None, bilm_lr: float = 1e-4,
                   bilm_warmup: int = 500, frozen_epochs: int = 0, progress: bool = True) -> FittedClassifier:
    """Train on train (minus a dev split for early stopping) and report test accuracy and the learned mix.
    output_mix applies where train has the biLM's layers; a static-only classifier has none.

    Features with pieces (task fine-tuning) need `bilm`: a trainable copy of it learns with the classifier, its
    LSTMs at bilm_lr, warmed up linearly over the first bilm_warmup steps after the first frozen_epochs, in which
    only the classifier learns (gradual unfreezing); patience counts from the first epoch after them. `bilm`
    itself never changes."""
    if (train.pieces is not None) != (bilm is not None) or (train.pieces is None) != (test.pieces is None):
        raise ConfigError("task fine-tuning needs pieces in train and test and the biLM; frozen features neither")
    if frozen_epochs and bilm is None:
        raise ConfigError("frozen_epochs are the first epochs of fine-tuning the biLM: they need the biLM")
    started = time.perf_counter()
    num_classes, y_train, y_test = _label_ids(train_labels, test_labels)
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    permutation = rng.permutation(len(train))
    dev_size = max(1, int(len(permutation) * dev_fraction))
    dev_ids, fit_ids = permutation[:dev_size], permutation[dev_size:]
    dev = train.subset(dev_ids)
    head = SequenceClassifier(train.num_layers, train.contextual_dim, train.static_dim, num_classes,
                              layer_norm=layer_norm, output_mix=output_mix and train.num_layers > 0)
    model: nn.Module = head
    schedule = None
    if bilm is None:
        optimizer = torch.optim.Adam(head.parameters(), lr=lr)
    else:
        model = FineTunedClassifier(trainable_copy(bilm), head)
        optimizer = torch.optim.Adam([{"params": head.parameters(), "lr": lr},
                                      {"params": lstm_parameters(model.bilm), "lr": bilm_lr}])
        schedule = warmup_schedule(optimizer, bilm_group=1, steps=bilm_warmup)
    trained = [parameter for parameter in model.parameters() if parameter.requires_grad]
    best_accuracy, best_epoch, best_state, epoch = -1.0, 0, None, 0
    for epoch in range(1, epochs + 1):
        if bilm is not None:
            model.freeze_bilm(epoch <= frozen_epochs)
        model.train()
        batches = _shuffled_batches(train, fit_ids, batch_size, rng)
        losses = []
        for step, chunk in enumerate(tqdm(batches, disable=not progress, desc=f"{name} epoch {epoch}", leave=False)):
            loss = nn.functional.cross_entropy(model(train.batch(chunk)), torch.from_numpy(y_train[chunk]))
            optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(trained, 5.0)
            optimizer.step()
            if schedule is not None and not model.bilm_frozen:
                schedule.step()
            losses.append(float(loss.detach()))
            if (step + 1) % 500 == 0:  # fine-tuning epochs take many minutes on a CPU: say how it goes
                log.info("%s: epoch %d step %d of %d, mean loss of the last 500 %.4f (%.0f s)", name, epoch,
                         step + 1, len(batches), np.mean(losses[-500:]), time.perf_counter() - started)
        dev_accuracy = _accuracy(model, dev, y_train[dev_ids])
        log.info("%s: epoch %d dev accuracy %.4f", name, epoch, dev_accuracy)
        if dev_accuracy > best_accuracy:
            best_accuracy, best_epoch = dev_accuracy, epoch
            best_state = {k: v.clone() for k, v in model.state_dict().items()}
        elif epoch > frozen_epochs and epoch - max(best_epoch, frozen_epochs) > patience:
            break  # patience counts from the biLM's first epoch of learning, not from the frozen ones
    model.load_state_dict(best_state)
    result = ClassifierResult(
        name, _accuracy(model, test, y_test), best_accuracy, best_epoch, epoch, head.input_dim,
        [] if head.mix is None else head.mix.weights.detach().tolist(),
        None if head.mix is None else float(head.mix.gamma.detach()),
        None if head.static_gamma is None else float(head.static_gamma.detach()),
        time.perf_counter() - started, layer_norm,
        [] if head.output_mix is None else head.output_mix.weights.detach().tolist(),
        None if head.output_mix is None else float(head.output_mix.gamma.detach()),
        None if bilm is None else bilm_lr, 0 if bilm is None else min(frozen_epochs, epoch))
    log.info("%s: test accuracy %.4f (best epoch %d of %d, %.0f s), layer weights %s, gamma %s, static gamma %s"
             "%s%s", name, result.test_accuracy, best_epoch, epoch, result.seconds,
             [round(w, 3) for w in result.layer_weights], result.gamma, result.static_gamma,
             f", output mix weights {[round(w, 3) for w in result.output_layer_weights]} gamma {result.output_gamma}"
             if head.output_mix is not None else "",
             "" if bilm is None else f", biLM fine-tuned at lr {bilm_lr} after {result.frozen_epochs} frozen epochs")
    model.eval()
    return FittedClassifier(result, head, sorted(set(train_labels)), None if bilm is None else model.bilm)


class ClassifyReport(NamedTuple):
    results: list[ClassifierResult]  # one per feature kind, in the order asked
    contextual_seconds: float  # the biLM's word vectors of train and test (fine-tuning: their pieces; 0 if not needed)
    static_seconds: float  # looking up the Word2Vec vectors of train and test (0 if not needed)


def classify(embedder: Embedder, kinds: Sequence[FeatureKind], train_texts: Sequence[str],
             train_labels: Sequence[str], test_texts: Sequence[str], test_labels: Sequence[str], *,
             static: Optional[StaticVectors] = None, epochs: int = 6, patience: int = 1, seed: int = 0,
             layer_norm: bool = False, output_mix: bool = False, finetune_bilm: bool = False,
             bilm_lr: float = 1e-4, frozen_epochs: int = 0, batch_size: int = 64, progress: bool = True,
             on_result: Optional[Callable[[ClassifierResult], None]] = None,
             save_dir: Optional[Path] = None) -> ClassifyReport:
    """Train and test one classifier per feature kind; each kind's features are computed once and shared.
    on_result, if given, is called with each kind's result as soon as it is done (runs take hours on a CPU).
    finetune_bilm: the kinds that read the biLM train a copy of its LSTMs with the classifier (at bilm_lr)
    instead of reading frozen vectors, from epoch frozen_epochs + 1 on; the embedder needs float32 weights
    (task_finetune.check_trainable). save_dir: each kind's trained classifier (and its biLM, fine-tuned or not,
    and Word2Vec vectors) is saved to save_dir/KIND as soon as it is trained, for `TextClassifier` and
    `contextemb predict` (evaluation.saved_classifier); those directories must not exist yet."""
    from .saved_classifier import save_classifier  # it builds on this module

    if save_dir is not None:
        for kind in kinds:
            check_new_directory(Path(save_dir) / kind)  # now, not after hours of training
    if finetune_bilm and not any("mix" in kind for kind in kinds):
        raise ConfigError("fine-tuning the biLM needs a kind that reads it (mix or static+mix)")
    if finetune_bilm:
        check_trainable(embedder.bilm)  # refuses bf16 / int8 weights now, not after the static kinds' training
    if not bilm_lr > 0:
        raise ConfigError(f"the biLM's learning rate must be > 0, got {bilm_lr}")
    if frozen_epochs < 0:
        raise ConfigError(f"frozen_epochs must be >= 0, got {frozen_epochs}")
    if frozen_epochs and not finetune_bilm:
        raise ConfigError("frozen_epochs are the first epochs of fine-tuning the biLM: they need finetune_bilm")
    if finetune_bilm and frozen_epochs >= epochs:
        raise ConfigError(f"{frozen_epochs} frozen epochs of {epochs} leave the biLM no epoch to learn in")
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    if any("static" in kind for kind in kinds) and static is None:
        raise ConfigError("the static and static+mix features need Word2Vec vectors (--w2v)")
    if output_mix and not any("mix" in kind for kind in kinds):
        raise ConfigError("the output mix needs a kind that reads the biLM's layers (mix or static+mix)")
    started = time.perf_counter()
    contextual, pieces = {}, {}
    if any("mix" in kind for kind in kinds) and finetune_bilm:
        pieces = {"train": text_pieces(embedder, train_texts), "test": text_pieces(embedder, test_texts)}
    elif any("mix" in kind for kind in kinds):
        contextual = {"train": contextual_features(embedder, train_texts, progress=progress),
                      "test": contextual_features(embedder, test_texts, progress=progress)}
    contextual_seconds = time.perf_counter() - started
    if contextual or pieces:
        log.info("biLM %s of %d texts: %.0f s", "pieces" if pieces else "word vectors",
                 len(train_texts) + len(test_texts), contextual_seconds)
    started = time.perf_counter()
    static_vectors = {}
    if static is not None and any("static" in kind for kind in kinds):
        static_vectors = {"train": static_features(static, train_texts), "test": static_features(static, test_texts)}
    static_seconds = time.perf_counter() - started
    training = {"seed": seed, "epochs": epochs, "patience": patience, "batch_size": batch_size,
                "train_texts": len(train_texts), "test_texts": len(test_texts),
                "w2v": None if static is None else str(static.path)}
    results = []
    for kind in kinds:
        train, test = (WordFeatures.of_kind(kind, contextual.get(split), static_vectors.get(split), pieces.get(split))
                       for split in ("train", "test"))
        fine_tuned = finetune_bilm and "mix" in kind
        fitted = fit_classifier(kind, train, train_labels, test, test_labels, epochs=epochs, patience=patience,
                                batch_size=batch_size, seed=seed, layer_norm=layer_norm, output_mix=output_mix,
                                bilm=embedder.bilm if fine_tuned else None, bilm_lr=bilm_lr,
                                frozen_epochs=frozen_epochs if fine_tuned else 0, progress=progress)
        results.append(fitted.result)
        if save_dir is not None:
            saved = save_classifier(Path(save_dir) / kind, kind, fitted, embedder, static, training)
            log.info("%s: saved to %s", kind, saved)
        if on_result is not None:
            on_result(results[-1])
    return ClassifyReport(results, contextual_seconds, static_seconds)
