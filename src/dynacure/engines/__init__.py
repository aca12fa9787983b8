"""Engines: run the same per-batch code over corpus shards locally (process pool) or on Ray Data."""
