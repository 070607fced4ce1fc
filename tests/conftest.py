"""Shared fixtures: tiny random MusicGens (fast) and test-wide settings."""
import os
import warnings

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Idle OpenMP threads sleep instead of spinning: on a CPU shared with other busy processes, spinning
# made 2 torch threads 3-40x slower than 1 (read before torch is imported, hence here).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
warnings.filterwarnings("ignore", message=".*was never reached.*")


@pytest.fixture(scope="session")
def tiny():
    """A tiny random MusicGen (3 layers x 32 hidden); generation of 0.2 s takes well under a second."""
    import workbench as wb
    return wb.random_model("tiny", seed=0)


@pytest.fixture
def one_torch_thread():
    """The tiny model is latency-bound: on a shared 2-core CPU, 2 torch threads spin-wait (10x slower)."""
    import torch
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
