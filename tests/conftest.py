"""Shared test fixtures: where the public data lives, and a clear skip when it is absent."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# One Ray auth mode for the whole session: the 2-node cluster test starts its nodes with token auth off, and
# Ray's client keeps the mode it first read, so a later local ray.init in the same process would start a GCS
# that asks for a token the client does not send.
os.environ.setdefault("RAY_AUTH_MODE", "disabled")

from dynacure.io.public_data import default_data_dir  # noqa: E402


@pytest.fixture(scope="session")
def shared_data():
    """Path to ../shared/data; tests using it skip with a stated reason when it is absent."""
    path = default_data_dir()
    if not path.exists():
        pytest.skip(f"public datasets not found at {path} (set DYNACURE_DATA)")
    return path
