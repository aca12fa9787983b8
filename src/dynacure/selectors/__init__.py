"""Selectors: strategies that turn attributes (and optionally the current model) into selection decisions."""
