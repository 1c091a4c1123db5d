"""Issue 12: a read-only output folder is a one-line error naming the folder, for every command
that writes, and nothing is computed in vain or left behind.

The sessions and CI run as root, for whom mode 0555 does not stop a write, so the folder is made
immutable with `chattr +i` (ext4, xfs, btrfs) when running as root, and read-only with chmod
otherwise. Where neither stops a write the test is skipped (see conftest.ALLOWED_SKIPS).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from conftest import write_geotiff
from scene_fixtures import run_cli
from test_translate import assert_one_line_error
from train_fixtures import TINY, chips16  # noqa: F401  (fixture)


@pytest.fixture
def read_only(tmp_path):
    folder = tmp_path / "read-only"
    folder.mkdir()
    root = os.geteuid() == 0
    if root:
        made = subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode == 0
    else:
        folder.chmod(0o555)
        made = True
    try:
        (folder / "probe").touch()
        writable = True
        (folder / "probe").unlink()
    except OSError:
        writable = False
    if not made or writable:
        pytest.skip("this file system cannot make a folder read-only for this user (chattr +i / chmod)")
    yield folder
    if root:
        subprocess.run(["chattr", "-i", str(folder)], check=True)
    else:
        folder.chmod(0o755)


def assert_refused(result, folder: Path, *needles: str) -> None:
    assert_one_line_error(result, str(folder), *needles)
    assert list(folder.iterdir()) == []


def test_translate_and_joint(read_only, tmp_path):
    src = write_geotiff(tmp_path / "in.tif", np.ones((3, 16, 16), np.uint16))
    assert_refused(run_cli(["translate", src, "--to", "rgb", "--model", "identity", "-q", "-o", read_only / "o.tif"]),
                   read_only, "not writable")
    # joint checks before it samples anything
    r = run_cli(["joint", "--pair", "osm,pan", "--bbox", "24.93,60.16,24.94,60.165", "--gsd", "10", "--steps", "1",
                 "-q", "-o", read_only / "j"])
    assert_refused(r, read_only, "not writable")


def test_build_dataset_train_evaluate_export(read_only, chips16, shared_data, tmp_path):  # noqa: F811
    r = run_cli(["build-dataset", read_only / "ds", "--config", Path(__file__).parent.parent / "configs" / "datasets"
                 / "bigearthnet-mm.yaml", "--data-root", shared_data, "--chip", "16", "-q"])
    assert_refused(r, read_only, "not writable")
    config = tmp_path / "tiny.yaml"
    config.write_text(TINY.read_text().replace("out_dir: runs/tiny", f"out_dir: {read_only / 'run'}")
                      .replace("root: data/sample16", f"root: {chips16}"))
    assert_refused(run_cli(["train", "--config", config]), read_only, "cannot create the folder")
    r = run_cli(["evaluate", "--data", chips16, "--directions", "rgb:nir", "--max-chips", "2", "--no-fid", "-q",
                 "-o", read_only / "ev"])
    assert_refused(r, read_only, "cannot write")
    from earthgen_cli.inference.default_model import default_model_dir

    assert_refused(run_cli(["export", default_model_dir(), "-o", read_only / "exp"]), read_only, "cannot write")
