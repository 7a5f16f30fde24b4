"""contextemb: ELMo-style contextual word embeddings (forward and backward LSTM language models).

    import contextemb
    emb = contextemb.load("ko-general")
    out = emb.embed(["삼성, 사상 첫 통합우승 4연패"])
"""

from .contextual_embedder import ContextualEmbedder, ContextualOutput
from .embedder import EmbeddedText, Embedder, load
from .errors import (ConfigError, ContextembError, CorpusError, DataFormatError, ModelFormatError,
                     TokenizerError, TrainingError)
from .packaged import list_models
from .scalar_mix import ScalarMix

__all__ = [
    "load", "list_models", "Embedder", "EmbeddedText", "ScalarMix", "ContextualEmbedder", "ContextualOutput",
    "ContextembError", "CorpusError", "DataFormatError", "TokenizerError", "ModelFormatError", "ConfigError", "TrainingError",
]
