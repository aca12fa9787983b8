"""Signals: batched scorers of documents (safety, alignment, utility, PII) and calibration."""

# Registers the ``toxicity_transformer`` signal (base._load_builtin lists the older signal modules). The
# module's imports are light: torch and transformers load only when a model is trained or loaded.
from dynacure.signals import transformer as _transformer  # noqa: E402, F401
