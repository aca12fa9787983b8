"""Signals: batched scorers of documents (safety, alignment, utility, PII) and calibration."""
