"""Report writers, read back: report.json round trip (inf included), report.md tables with the
papers' layout, and grid.png tiles at the positions the layout says."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from PIL import Image

from earthgen_cli.errors import EarthgenError
from earthgen_cli.evaluate.contact_sheet import GridSection, display_rgb, write_grid
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
    table = _table(md, "sar→rgb PSNR (ref range)↑")
    header, rows = table[0], {r[0]: r[1:] for r in table[1:]}
    assert header[1:8] == ["sar→rgb PSNR (ref range)↑", "sar→rgb SSIM↑", "sar→rgb RMSE↓", "sar→rgb FID↓",
                           "sar→rgb KID↓", "sar→rgb CAS↑", "rgb→pan PSNR (ref range)↑"]
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
    pan = _table(md, "rgb→pan PSNR (ref range)↑")
    assert pan[0] == ["method", "rgb→pan PSNR (ref range)↑", "rgb→pan SSIM↑", "rgb→pan RMSE↓", "rgb→pan FID↓"]
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


def _claims_report(unified_corr=0.6, chips=8, scenes=2):
    rows = {"unified (sample)": (24.0, unified_corr), "unified (mean)": (27.5, unified_corr),
            "oracle-mean": (25.0, 0.0), "mean": (12.0, 0.0), "shuffled-source (sample)": (23.8, 0.05),
            "shuffled-source (mean)": (26.0, 0.1), "pixel-regression": (26.0, 0.7)}
    results = tuple(MethodScores("rgb:nir", m, {"psnr": p, "corr": c, "psnr_dataset": p + 10}, chips)
                    for m, (p, c) in rows.items())
    results += (MethodScores("joint:pan,osm", "unified", {"fid_pan": 3.0}, 8),)
    return Report(results, {}, {"held_out": {"rgb:nir": {"chips": chips, "scenes": scenes}}}, {})


def test_claims_table_comes_first_with_psnr_and_corr_per_method_and_the_verdict(tmp_path):
    from earthgen_cli.evaluate.report import claims_table

    table = claims_table(_claims_report()).splitlines()
    assert table[0] == ("| direction | unified (sample) | unified (mean) | oracle-mean | mean | shuffled-source (sample) "
                        "| shuffled-source (mean) | pixel-regression | chips | scenes | verdict |")
    assert table[2] == ("| rgb→nir | 24.00 / 0.60 | 27.50 / 0.60 | 25.00 / 0.00 | 12.00 / 0.00 | 23.80 / 0.05 "
                        "| 26.00 / 0.10 | 26.00 / 0.70 | 8 | 2 | validated (unified (mean)) |")
    assert len(table) == 3  # joint scores have no claim
    weak = claims_table(_claims_report(unified_corr=0.12, chips=6)).splitlines()[2]
    assert weak.endswith("| 6 | 2 | not validated (unified (mean)): corr 0.12 < 0.3; 6 chips < 8 |")
    md = write_markdown(_claims_report(), tmp_path / "report.md").read_text()
    assert md.index("## Claims by direction") < md.index("## Every metric")
    assert "PSNR (ref range)" in md and "PSNR (dataset range)" in md
    back = json.loads(write_json(_claims_report(), tmp_path / "report.json").read_text())
    assert back["claims"]["rgb:nir"]["validated"] and back["claims"]["rgb:nir"]["estimate"] == "unified (mean)"
    assert back["format"] == 2 and "oracle-mean" in back["claim_rule"]


def test_a_format_1_report_is_refused_with_the_reason(tmp_path):
    old = tmp_path / "old.json"
    old.write_text(json.dumps({"format": 1, "results": []}))
    with pytest.raises(EarthgenError, match="format 1.*run earthgen evaluate again"):
        read_report(old)
