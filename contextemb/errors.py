"""Typed errors raised by contextemb; the CLI turns each into one line and exit code 2."""


class ContextembError(Exception):
    """Base class of every error contextemb raises on purpose."""


class CorpusError(ContextembError):
    """A corpus or text file cannot be read or holds no usable text."""


class TokenizerError(ContextembError):
    """The sentencepiece model cannot be trained, loaded or used."""


class ModelFormatError(ContextembError):
    """A model directory, weights file or checkpoint is missing, corrupt or of another format."""


class ConfigError(ContextembError, ValueError):
    """A configuration value or argument is invalid, or a config.json cannot be understood.

    Also a ValueError, so code written against the older library, which raised ValueError for bad arguments,
    still catches it."""


class TrainingError(ContextembError):
    """Training cannot go on (non-finite loss, a locked output directory, a failed write)."""


class DataFormatError(ContextembError, ValueError):
    """A probe, pair or labelled-data file (or a span given by hand) has missing columns, wrong offsets or
    duplicate rows."""
