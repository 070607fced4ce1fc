"""Fixtures for the real-browser tests: skip (with the reason) only when chromium is absent."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from lab_harness import chromium_missing_reason  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts" / "browser"


@pytest.fixture
def need_chromium():
    reason = chromium_missing_reason()
    if reason:
        pytest.skip(reason)


@pytest.fixture
def artifacts_dir() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS
