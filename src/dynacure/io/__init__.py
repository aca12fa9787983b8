"""Corpus input/output: documents, readers, writers, attribute tables, quarantine, raw pool, demo corpus."""
