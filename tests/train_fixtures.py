"""Shared by the training tests: a real built dataset from ../shared/data and a CLI runner."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TINY = ROOT / "configs" / "tiny.yaml"

BEMM_CONFIG = ROOT / "configs" / "datasets" / "bigearthnet-mm.yaml"


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


def earthgen(*args: str, check: bool = True, **kw) -> subprocess.CompletedProcess:
    """The real command in a fresh process (what a user runs)."""
    proc = subprocess.run([sys.executable, "-m", "earthgen_cli", *args], capture_output=True, text=True,
                          env=env(), cwd=ROOT, **kw)
    if check and proc.returncode != 0:
        raise AssertionError(f"earthgen {' '.join(args)} failed:\n{proc.stderr[-3000:]}")
    return proc


def build_chips(shared_data: Path, out: Path, chip: int = 16) -> Path:
    earthgen("build-dataset", str(out), "--config", str(BEMM_CONFIG), "--data-root", str(shared_data),
             "--chip", str(chip), "--quiet")
    return out


def read_log(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]


@pytest.fixture(scope="session")
def chips16(shared_data, tmp_path_factory) -> Path:
    """BigEarthNet-MM (rgb, nir, sar) as 16 px chips: 8x8 latents with the tiny preset."""
    return build_chips(shared_data, tmp_path_factory.mktemp("data") / "bemm16")
