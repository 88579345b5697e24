from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from golden import SqzRunner

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
PRETRAINED = SHARED / "pretrained"


# TensorFlow's quantizer in this process, not in a child per conversion (a TensorFlow start-up,
# 3-4 s, each): converter/frontend/quantize.py. The child's own tests clear it.
os.environ.setdefault("SQZ_QUANTIZE_IN_PROCESS", "1")


@pytest.fixture(autouse=True)
def _pio_glue_in_tmp(tmp_path, monkeypatch):
    """sqz-convert retargets the checkout's PlatformIO build; tests must not."""
    monkeypatch.setenv("SQZ_PIO_GLUE", str(tmp_path / "sqz_pio.ini"))


@pytest.fixture(scope="session")
def sqz_runner(tmp_path_factory) -> SqzRunner:
    return SqzRunner(tmp_path_factory.mktemp("sqz"), sanitize=False, opt="-O1")


@pytest.fixture(scope="session")
def sqz_runner_asan(tmp_path_factory) -> SqzRunner:
    if shutil.which("cc") is None:
        pytest.skip("no C compiler (cc) on this machine")
    return SqzRunner(tmp_path_factory.mktemp("sqz-asan"), sanitize=True, opt="-O1")
