"""Engines: executors (inline, process pool, Ray tasks) whose workers read and write their own shards."""
