"""A downstream text classifier on top of the frozen biLM with a learned ScalarMix (ELMo's recipe), and the
same classifier over static Word2Vec inputs as the baseline.

    words -> ScalarMix over the biLM's layers (softmax weights, gamma) -> dropout -> BiLSTM -> max-pool -> linear

The biLM is frozen, so its per-word vectors of every layer are computed once (float16, in memory) and the
classifier trains on them; only the mix, the BiLSTM and the output layer learn. Early stopping on a
held-out split of train (10% by default) picks the epoch.
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import NamedTuple, Optional, Sequence

import numpy as np
import torch
from torch import Tensor, nn
from tqdm import tqdm

from contextemb.embedder import Embedder
from contextemb.errors import DataFormatError
from contextemb.scalar_mix import ScalarMix

from .probe_sets import read_tsv

log = logging.getLogger(__name__)


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


def contextual_features(embedder: Embedder, texts: Sequence[str], batch_size: int = 64,
                        chunk: int = 2048, progress: bool = True) -> list[np.ndarray]:
    """Per text, (layers, words, dim) float16 word vectors of every layer."""
    features = []
    for begin in tqdm(range(0, len(texts), chunk), disable=not progress, desc="biLM features", unit="chunk"):
        for result in embedder.embed(list(texts[begin:begin + chunk]), batch_size=batch_size):
            features.append(result.vectors.astype(np.float16))
    return features


def static_features(static, texts: Sequence[str]) -> list[np.ndarray]:
    """Per text, (1, words, dim) float16: each whitespace word's vector is the mean of the Word2Vec vectors of
    the pieces it is spelled with (as the biLM's words pool their pieces); unknown pieces are skipped."""
    tokenizer, vectors = static.tokenizer, static.vectors
    dim = vectors.vector_size
    features = []
    for text in texts:
        words = text.split()
        rows = np.zeros((1, len(words), dim), dtype=np.float16)
        for index, ids in enumerate(tokenizer.encode(words) if words else []):
            known = [vectors[tokenizer.pieces[i]] for i in ids if tokenizer.pieces[i] in vectors.key_to_index]
            if known:
                rows[0, index] = np.mean(known, axis=0)
        features.append(rows)
    return features


class SequenceClassifier(nn.Module):
    def __init__(self, num_layers: int, dim: int, num_classes: int, hidden: int = 128, dropout: float = 0.3):
        super().__init__()
        self.mix = ScalarMix(num_layers)
        self.dropout = nn.Dropout(dropout)
        self.lstm = nn.LSTM(dim, hidden, batch_first=True, bidirectional=True)
        self.output = nn.Linear(2 * hidden, num_classes)

    def forward(self, layers: Tensor, mask: Tensor) -> Tensor:
        """layers: (layers, batch, words, dim) float; mask: (batch, words) bool -> (batch, classes) logits."""
        mixed = self.dropout(self.mix(layers, mask))  # (batch, words, dim)
        states, _ = self.lstm(mixed)  # (batch, words, 2 * hidden)
        states = states.masked_fill(~mask.unsqueeze(-1), float("-inf"))
        return self.output(self.dropout(states.max(dim=1).values))


def _batch(features: Sequence[np.ndarray], indices: Sequence[int]) -> tuple[Tensor, Tensor]:
    """Pad a batch: (layers, batch, words, dim) float32 and (batch, words) bool; an empty text gets one zero word."""
    layers, _, dim = features[indices[0]].shape
    width = max(1, max(features[i].shape[1] for i in indices))
    padded = np.zeros((layers, len(indices), width, dim), dtype=np.float32)
    mask = np.zeros((len(indices), width), dtype=bool)
    for row, index in enumerate(indices):
        words = features[index].shape[1]
        padded[:, row, :words] = features[index]
        mask[row, :max(words, 1)] = True
    return torch.from_numpy(padded), torch.from_numpy(mask)


class ClassifierResult(NamedTuple):
    name: str
    test_accuracy: float
    dev_accuracy: float
    best_epoch: int
    layer_weights: list[float]
    gamma: float
    seconds: float


def _accuracy(model: SequenceClassifier, features, labels: np.ndarray, batch_size: int = 256) -> float:
    model.eval()
    order = sorted(range(len(features)), key=lambda i: features[i].shape[1])
    correct = 0
    with torch.inference_mode():
        for begin in range(0, len(order), batch_size):
            chunk = order[begin:begin + batch_size]
            layers, mask = _batch(features, chunk)
            correct += int((model(layers, mask).argmax(-1).numpy() == labels[chunk]).sum())
    return correct / len(features)


def train_and_test(name: str, train_features, train_labels: Sequence[str], test_features, test_labels: Sequence[str],
                   *, epochs: int = 6, patience: int = 1, batch_size: int = 64, lr: float = 1e-3,
                   dev_fraction: float = 0.1, seed: int = 0, progress: bool = True) -> ClassifierResult:
    """Train on train (minus a dev split for early stopping) and report test accuracy and the learned mix."""
    started = time.perf_counter()
    classes = sorted(set(train_labels))
    class_index = {label: i for i, label in enumerate(classes)}
    unknown = set(test_labels) - set(classes)
    if unknown:
        raise DataFormatError(f"test labels {sorted(unknown)[:3]} never occur in train")
    y_train = np.array([class_index[label] for label in train_labels])
    y_test = np.array([class_index[label] for label in test_labels])
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    permutation = rng.permutation(len(train_features))
    dev_size = max(1, int(len(permutation) * dev_fraction))
    dev_ids, fit_ids = permutation[:dev_size], permutation[dev_size:]
    dev_features = [train_features[i] for i in dev_ids]
    layers, _, dim = train_features[0].shape
    model = SequenceClassifier(layers, dim, len(classes))
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    best = (-1.0, 0, None)
    for epoch in range(1, epochs + 1):
        model.train()
        # length-bucketed shuffled batches: sort a shuffled order by length within blocks of 50 batches
        order = rng.permutation(fit_ids)
        block = batch_size * 50
        batches = []
        for begin in range(0, len(order), block):
            part = sorted(order[begin:begin + block], key=lambda i: train_features[i].shape[1])
            batches.extend(part[k:k + batch_size] for k in range(0, len(part), batch_size))
        rng.shuffle(batches)
        for chunk in tqdm(batches, disable=not progress, desc=f"{name} epoch {epoch}", leave=False):
            inputs, mask = _batch(train_features, chunk)
            loss = nn.functional.cross_entropy(model(inputs, mask), torch.from_numpy(y_train[chunk]))
            optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            optimizer.step()
        dev_accuracy = _accuracy(model, dev_features, y_train[dev_ids])
        log.info("%s: epoch %d dev accuracy %.4f", name, epoch, dev_accuracy)
        if dev_accuracy > best[0]:
            best = (dev_accuracy, epoch, {k: v.clone() for k, v in model.state_dict().items()})
        elif epoch - best[1] > patience:
            break
    model.load_state_dict(best[2])
    test_accuracy = _accuracy(model, test_features, y_test)
    return ClassifierResult(name, test_accuracy, best[0], best[1], model.mix.weights.detach().tolist(),
                            float(model.mix.gamma.detach()), time.perf_counter() - started)
