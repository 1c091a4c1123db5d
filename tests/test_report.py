"""Report writers, read back: report.json round trip (inf included), report.md tables with the
papers' layout, and grid.png tiles at the positions the layout says."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from PIL import Image

from earthgen_cli.errors import EarthgenError
from earthgen_cli.evaluate.grid import GridSection, display_rgb, write_grid
from earthgen_cli.evaluate.report import (
    MethodScores,
    Report,
    directory_identity,
    read_report,
    write_json,
    write_markdown,
)


def _report(tmp_path):
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    (ckpt / "config.json").write_text('{"preset": "tiny"}')
    (ckpt / "model.safetensors").write_bytes(b"weights")
    results = (
        MethodScores("sar:rgb", "unified", {"psnr": 14.5, "ssim": 0.31, "rmse": 48.2, "fid": 120.0,
                                            "kid": 0.05, "kid_std": 0.01}, 12),
        MethodScores("sar:rgb", "mean", {"psnr": 15.25, "ssim": 0.28, "rmse": 44.0, "fid": 300.0,
                                         "kid": 0.3, "kid_std": 0.02}, 12),
        MethodScores("rgb:pan", "unified", {"psnr": 30.0, "ssim": 0.9, "rmse": 8.0}, 12),
        MethodScores("rgb:pan", "luminance", {"psnr": math.inf, "ssim": 1.0, "rmse": 0.0}, 12),
        MethodScores("sar:rgb", "real pairs", {"cas": 61.0}, 12),
        MethodScores("rgb:pan", "mean", {"psnr": 20.0, "ssim": math.nan, "rmse": 20.0, "fid": -1e-5}, 12),
    )
    return Report(results, config={"steps": 4, "seed": 0, "directions": ["sar:rgb", "rgb:pan"]},
                  data={"path": "/data/ds", "split": "test", "chips": 12},
                  checkpoint=directory_identity(ckpt), warnings=("CAS left out: no encoder for sar,rgb",))


def test_report_json_round_trips_every_number(tmp_path):
    report = _report(tmp_path)
    path = write_json(report, tmp_path / "report.json")
    raw = json.loads(path.read_text())  # strict JSON: no Infinity/NaN tokens
    assert "Infinity" not in path.read_text() and "NaN" not in path.read_text()
    assert raw["checkpoint"]["files"] == 2 and len(raw["checkpoint"]["sha256"]) == 64
    back = read_report(path)
    assert back.config == report.config and back.data == report.data
    assert back.checkpoint == report.checkpoint and back.warnings == report.warnings
    for a, b in zip(back.results, report.results):
        assert (a.direction, a.method, a.n_images) == (b.direction, b.method, b.n_images)
        assert a.metrics.keys() == b.metrics.keys()
        for k in a.metrics:
            assert a.metrics[k] == b.metrics[k] or (math.isnan(a.metrics[k]) and math.isnan(b.metrics[k]))


def test_directory_identity_changes_with_the_weights(tmp_path):
    before = _report(tmp_path).checkpoint
    (tmp_path / "ckpt" / "model.safetensors").write_bytes(b"other weights")
    after = directory_identity(tmp_path / "ckpt")
    assert after["sha256"] != before["sha256"] and after["path"] == before["path"]
    with pytest.raises(EarthgenError, match="no such"):
        directory_identity(tmp_path / "missing")


def test_read_report_rejects_other_json(tmp_path):
    other = tmp_path / "x.json"
    other.write_text('{"hello": 1}')
    with pytest.raises(EarthgenError, match="not an earthgen report"):
        read_report(other)
    other.write_text("{broken")
    with pytest.raises(EarthgenError, match="not a readable"):
        read_report(other)


def _table(md: str, first_header: str) -> list[list[str]]:
    lines = md.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| method") and first_header in line)
    rows = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        rows.append([c.strip() for c in line.strip("|").split("|")])
    return [rows[0]] + rows[2:]  # drop the |---| line


def test_markdown_table_has_methods_as_rows_and_direction_metric_columns(tmp_path):
    md = write_markdown(_report(tmp_path), tmp_path / "report.md", directions_per_table=2).read_text()
    assert "> warning: CAS left out" in md and "split test, 12 chips" in md
    table = _table(md, "sar→rgb PSNR↑")
    header, rows = table[0], {r[0]: r[1:] for r in table[1:]}
    assert header[1:8] == ["sar→rgb PSNR↑", "sar→rgb SSIM↑", "sar→rgb RMSE↓", "sar→rgb FID↓",
                           "sar→rgb KID↓", "sar→rgb CAS↑", "rgb→pan PSNR↑"]
    assert not any("kid_std" in h for h in header)
    assert list(rows) == ["unified", "mean", "luminance", "real pairs"]  # the reference row last
    # best per column in bold, respecting the arrow
    assert rows["mean"][0] == "**15.25**" and rows["unified"][0] == "14.50"
    assert rows["unified"][2] == "48.20" and rows["mean"][2] == "**44.00**"
    assert rows["unified"][3] == "**120.00**"
    assert rows["luminance"][:6] == ["–"] * 6  # not evaluated on sar→rgb
    assert rows["luminance"][6] == "**∞**" and rows["mean"][7] == "n/a"
    assert rows["real pairs"][:6] == ["–"] * 5 + ["61.00"]  # alone in its column: nothing in bold
    assert header[-1] == "rgb→pan FID↓" and rows["mean"][-1] == "0.00"  # never "-0.00"


def test_markdown_splits_directions_into_tables(tmp_path):
    md = write_markdown(_report(tmp_path), tmp_path / "report.md", directions_per_table=1).read_text()
    pan = _table(md, "rgb→pan PSNR↑")
    assert pan[0] == ["method", "rgb→pan PSNR↑", "rgb→pan SSIM↑", "rgb→pan RMSE↓", "rgb→pan FID↓"]
    assert [r[0] for r in pan[1:]] == ["unified", "mean", "luminance"]  # no row without numbers


def test_grid_png_places_each_chip_where_the_layout_says(tmp_path):
    g = np.random.default_rng(0)
    sar = g.random((2, 40, 40))
    rgb = [g.random((3, 40, 40)) for _ in range(3)]
    ms = g.random((6, 40, 40))
    sections = [
        GridSection("sar:rgb", ("source sar", "unified", "mean", "target rgb"),
                    ((sar, rgb[0], rgb[1], rgb[2]), (sar, rgb[2], rgb[1], rgb[0]))),
        GridSection("ms:nir", ("source ms", "pixel-regression", "target nir"),
                    ((ms, ms[:1], ms[1:2]),)),
    ]
    layout = write_grid(tmp_path / "grid.png", sections)
    img = np.asarray(Image.open(tmp_path / "grid.png").convert("RGB"))
    assert (img.shape[1], img.shape[0]) == layout.size
    assert len(layout.boxes) == 2 * 4 + 3
    for (si, ri, ci), (x0, y0, x1, y1) in layout.boxes.items():
        expected = display_rgb(sections[si].chips[ri][ci])
        assert x1 - x0 >= 128 and (x1 - x0) % 40 == 0
        scale = (x1 - x0) // 40
        assert np.array_equal(img[y0:y1:scale, x0:x1:scale], expected), (si, ri, ci)
    # display conventions: grey for one band, (VV, VH, VV) for SAR, SWIR false colour for MS
    assert np.array_equal(display_rgb(ms[:1])[..., 0], display_rgb(ms[:1])[..., 2])
    assert np.array_equal(display_rgb(sar)[..., 0], display_rgb(sar)[..., 2])
    assert np.array_equal(display_rgb(ms)[..., 0], np.round(ms[5] * 255).astype(np.uint8))


def test_grid_refuses_ragged_rows(tmp_path):
    with pytest.raises(ValueError, match="columns"):
        GridSection("sar:rgb", ("a", "b"), ((np.zeros((1, 4, 4)),),))


def test_summary_table_has_one_row_per_direction_and_the_mean_verdict():
    from earthgen_cli.evaluate.report import summary_table

    results = (MethodScores("rgb:nir", "unified", {"psnr": 21.0}, 8), MethodScores("rgb:nir", "mean", {"psnr": 12.0}, 8),
               MethodScores("sar:rgb", "unified", {"psnr": 15.0}, 3), MethodScores("sar:rgb", "mean", {"psnr": 17.5}, 3),
               MethodScores("joint:pan,osm", "unified", {"fid_pan": 3.0}, 8))
    table = summary_table(Report(results, {}, {}, {})).splitlines()
    assert table[0] == "| direction | unified | mean | chips | unified > mean |"
    assert table[2] == "| rgb→nir | **21.00** | 12.00 | 8 | yes |"
    assert table[3] == "| sar→rgb | 15.00 | **17.50** | 3 | no |"
    assert len(table) == 4  # joint scores have no PSNR row
