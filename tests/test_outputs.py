"""No user data lost by any command's output (issue 12, "Data loss"), through the real CLI.

An output is never an input (same path, symlink or hard link), an output folder never holds an
input, --overwrite replaces only earthgen's own kind of folder, --preview is never the output, and
without --overwrite an output that appears while a command runs is left as it is. Every refusal:
exit 2, one stderr line, no traceback, the input byte-identical, nothing new left behind.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest

from conftest import write_geotiff
from earthgen_cli.errors import EarthgenError
from earthgen_cli.inference import translator as translators
from earthgen_cli.io import publish
from generate_fixtures import random_checkpoint
from scene_fixtures import run_cli
from test_translate import assert_one_line_error


def snapshot(folder: Path) -> dict[str, str]:
    """Every file below `folder` (hidden ones too) with the hash of its bytes."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() or p.is_symlink()}


def refused(args, before: dict[str, str], root: Path, *needles: str) -> None:
    assert_one_line_error(run_cli(args), *needles)
    assert snapshot(root) == before  # inputs untouched; no output, temporary or staging folder left


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return random_checkpoint(tmp_path_factory.mktemp("rand") / "ck")


@pytest.fixture
def sar(tmp_path) -> Path:
    data = np.random.default_rng(0).normal(-12, 3, (2, 32, 32)).astype(np.float32)
    return write_geotiff(tmp_path / "sar.tif", data, nodata=float("nan"))


@pytest.fixture
def rgb(tmp_path) -> Path:
    data = np.random.default_rng(1).integers(1, 3000, (3, 32, 32)).astype(np.uint16)
    return write_geotiff(tmp_path / "rgb.tif", data, nodata=0)


def translate(src, out, *extra):
    return ["translate", "--model", "identity", src, "--from", "sar", "--to", "sar", "-q", "-o", out, *extra]


@pytest.mark.parametrize("alias", ["same", "symlink", "hardlink", "dotdot"])
def test_translate_output_is_never_the_input(sar, tmp_path, alias):
    out = {"same": sar, "symlink": tmp_path / "link.tif", "hardlink": tmp_path / "hard.tif",
           "dotdot": tmp_path / "sub" / ".." / "sar.tif"}[alias]
    (tmp_path / "sub").mkdir()
    if alias == "symlink":
        out.symlink_to(sar)
    elif alias == "hardlink":
        os.link(sar, out)
    refused(translate(sar, out, "--overwrite"), snapshot(tmp_path), tmp_path, str(out), "is also an input")


def test_translate_cond_and_confidence_are_inputs_too(sar, tmp_path):
    other = write_geotiff(tmp_path / "nir.tif", np.ones((1, 32, 32), np.uint16))
    refused(translate(sar, other, "--cond", f"nir={other}", "--overwrite"), snapshot(tmp_path), tmp_path,
            "is also an input")


@pytest.mark.parametrize("which", ["output", "input"])
def test_preview_equal_to_output_or_input_is_refused(sar, tmp_path, which):
    out = tmp_path / "o.tif"
    preview = out if which == "output" else sar
    needle = "is also an output" if which == "output" else "is also an input"
    refused(translate(sar, out, "--preview", preview, "--overwrite"), snapshot(tmp_path), tmp_path,
            "--preview" if which == "output" else str(sar), needle)


def test_inpaint_output_is_never_the_input_or_the_mask(ckpt, rgb, tmp_path):
    mask = write_geotiff(tmp_path / "mask.tif", np.ones((1, 32, 32), np.uint8))
    before = snapshot(tmp_path)
    for out in (rgb, mask):
        refused(["inpaint", rgb, "--from", "rgb", "--mask", mask, "-m", ckpt, "-o", out, "--overwrite", "-q"],
                before, tmp_path, str(out), "is also an input")


def test_extend_output_is_never_the_input(ckpt, rgb, tmp_path):
    refused(["extend", rgb, "--from", "rgb", "--by", "8", "-m", ckpt, "-o", rgb, "--overwrite", "-q"],
            snapshot(tmp_path), tmp_path, str(rgb), "is also an input")


def test_joint_never_writes_over_its_condition(ckpt, rgb, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    cond = write_geotiff(out / "rgb.tif", np.ones((3, 32, 32), np.uint16))
    refused(["joint", "--pair", "rgb,sar", "--bbox", "500000,4649680,500320,4650000", "--bbox-crs", "EPSG:32633",
             "--crs", "EPSG:32633", "--gsd", "10", "--cond", f"rgb={cond}", "-m", ckpt, "-o", out, "--overwrite",
             "-q"], snapshot(tmp_path), tmp_path, "rgb.tif", "is also an input")


def test_render_osm_output_is_never_the_like_raster(rgb, tmp_path):
    src = tmp_path / "roads.geojson"
    src.write_text(json.dumps({"type": "FeatureCollection", "features": []}))
    refused(["render-osm", src, "--like", rgb, "-o", rgb, "--overwrite"], snapshot(tmp_path), tmp_path,
            str(rgb), "is also an input")


def test_export_into_the_run_folder_holding_the_checkpoint_is_refused(ckpt, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(ckpt, run / "checkpoints" / "step_000001")
    (run / "config.yaml").write_text("seed: 0\n")
    before = snapshot(tmp_path)
    refused(["export", run / "checkpoints" / "step_000001", "-o", run, "--overwrite"], before, tmp_path,
            str(run), "holds the input")
    # a folder of something else is never deleted by --overwrite
    other = tmp_path / "notes"
    other.mkdir()
    (other / "todo.txt").write_text("keep me\n")
    refused(["export", run / "checkpoints" / "step_000001", "-o", other, "--overwrite"], snapshot(tmp_path),
            tmp_path, str(other), "not an earthgen checkpoint folder")
    # an earlier export is earthgen's own: --overwrite replaces it
    model = tmp_path / "model"
    assert run_cli(["export", run / "checkpoints" / "step_000001", "-o", model]).exit_code == 0
    r = run_cli(["export", run / "checkpoints" / "step_000001", "-o", model, "--overwrite"])
    assert r.exit_code == 0, r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model", "notes", "run"]


def test_export_target_that_appears_meanwhile_is_left_as_it_is(ckpt, tmp_path, monkeypatch):
    from earthgen_cli import checkpoint

    out = tmp_path / "model"
    real = checkpoint.export_model

    def racing(checkpoint, staging, **kw):
        out.mkdir()
        (out / "theirs.txt").write_text("theirs")
        return real(checkpoint, staging, **kw)

    monkeypatch.setattr(checkpoint, "export_model", racing)
    assert_one_line_error(run_cli(["export", ckpt, "-o", out]), str(out), "appeared while this command ran")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"] and os.listdir(out) == ["theirs.txt"]


@pytest.fixture
def source_dir(tmp_path) -> Path:
    """A folder holding the scenes and the build-dataset config that describes them."""
    src = tmp_path / "mine"
    (src / "scenes" / "a").mkdir(parents=True)
    rng = np.random.default_rng(2)
    write_geotiff(src / "scenes" / "a" / "rgb.tif", rng.integers(1, 3000, (3, 32, 32)).astype(np.uint16))
    write_geotiff(src / "scenes" / "a" / "sar.tif", rng.normal(-12, 3, (2, 32, 32)).astype(np.float32))
    (src / "dataset.yaml").write_text("root: .\nsources:\n  - name: s\n    scenes: scenes/*\n    modalities:\n"
                                      "      rgb: {file: rgb.tif}\n      sar: {file: sar.tif, units: db}\n")
    return src


def test_build_dataset_never_replaces_the_folder_of_its_sources(source_dir, tmp_path):
    refused(["build-dataset", source_dir, "-c", source_dir / "dataset.yaml", "--chip", "16", "--overwrite", "-q"],
            snapshot(tmp_path), tmp_path, str(source_dir), "holds the input")


def test_build_dataset_overwrite_needs_a_dataset_folder(source_dir, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    (other / "thesis.tex").write_text("\\begin{document}\n")
    refused(["build-dataset", other, "-c", source_dir / "dataset.yaml", "--chip", "16", "--overwrite", "-q"],
            snapshot(tmp_path), tmp_path, str(other), "not an earthgen dataset folder")


def test_evaluate_never_replaces_its_data_or_a_foreign_folder(tmp_path):
    data = tmp_path / "ds"
    data.mkdir()
    (data / "dataset.json").write_text(json.dumps({"format": "earthgen-dataset"}))
    refused(["evaluate", "--data", data, "-o", data, "--overwrite", "-q"], snapshot(tmp_path), tmp_path,
            str(data), "is also an input")
    refused(["evaluate", "--data", data, "-o", tmp_path, "--overwrite", "-q"], snapshot(tmp_path), tmp_path,
            str(tmp_path), "holds the input")
    other = tmp_path / "photos"
    other.mkdir()
    (other / "a.jpg").write_bytes(b"\xff\xd8")
    refused(["evaluate", "--data", data, "-o", other, "--overwrite", "-q"], snapshot(tmp_path), tmp_path,
            str(other), "not an earthgen evaluation report folder")


def test_sample_data_overwrite_needs_a_sample_data_folder(tmp_path):
    other = tmp_path / "home"
    other.mkdir()
    (other / "README.md").write_text("# my notes\n")
    refused(["sample-data", other, "--overwrite"], snapshot(tmp_path), tmp_path, str(other),
            "not an earthgen sample-data folder")


class RacingTranslator(translators.IdentityTranslator):
    """Another process writes the same output while this one is translating."""

    name = "racing"
    target: Path | None = None

    def translate(self, batch, target):
        if not self.target.exists():
            self.target.write_bytes(b"the other process's result")
        return super().translate(batch, target)


def test_output_that_appears_while_translating_is_left_as_it_is(sar, tmp_path, monkeypatch):
    out = tmp_path / "o.tif"
    monkeypatch.setattr(RacingTranslator, "target", out)
    monkeypatch.setitem(translators.ANALYTIC_TRANSLATORS, "racing", RacingTranslator)
    r = run_cli(["translate", sar, "--from", "sar", "--to", "sar", "--model", "racing", "-q", "-o", out])
    assert_one_line_error(r, str(out), "appeared while this command ran")
    assert out.read_bytes() == b"the other process's result"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.tif", "sar.tif"]


def test_publish_file_without_hard_links_still_refuses_a_new_target(tmp_path, monkeypatch):
    def no_links(src, dst):
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    target = tmp_path / "t.txt"
    with publish.staged_file(target, overwrite=False) as tmp:
        tmp.write_text("first")
    assert target.read_text() == "first"
    with pytest.raises(EarthgenError, match="appeared while this command ran"):
        with publish.staged_file(target, overwrite=False) as tmp:
            tmp.write_text("second")
    assert target.read_text() == "first" and sorted(p.name for p in tmp_path.iterdir()) == ["t.txt"]


def test_folder_that_appears_while_building_is_left_as_it_is(tmp_path):
    target = tmp_path / "ds"
    with pytest.raises(EarthgenError, match="appeared while this command ran"):
        with publish.staged_dir(target, overwrite=False, marker=publish.DATASET) as staging:
            (staging / "dataset.json").write_text("{}")
            target.mkdir()
            (target / "theirs.txt").write_text("theirs")
    assert snapshot(tmp_path) == {"ds/theirs.txt": hashlib.sha256(b"theirs").hexdigest()}
    # with --overwrite, what appeared is still replaced only when it is a dataset
    with pytest.raises(EarthgenError, match="not an earthgen dataset folder"):
        with publish.staged_dir(target, overwrite=True, marker=publish.DATASET) as staging:
            (staging / "dataset.json").write_text("{}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]
    (target / "dataset.json").write_text(json.dumps({"format": "earthgen-dataset"}))
    with publish.staged_dir(target, overwrite=True, marker=publish.DATASET) as staging:
        (staging / "new.txt").write_text("new")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"] and sorted(os.listdir(target)) == ["new.txt"]
