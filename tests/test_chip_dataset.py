"""The torch side of a built dataset: ChipDataset samples, uniform pair batches, image pairs."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from earthgen_cli.data.chips import ChipDataset, PairBatchSampler
from earthgen_cli.io.dataset_store import open_dataset
from scene_fixtures import BEN_MM, read_real, run_cli, write_config


@pytest.fixture(scope="module")
def built(shared_data, tmp_path_factory):
    """One S1+S2 scene (4 modalities) and one S2-only scene: pairs are imbalanced."""
    tmp = tmp_path_factory.mktemp("chipds")
    cfg = write_config(tmp / "ds.yaml", shared_data, """  - name: mm
    scenes: bigearthnet_mm/S2A_MSIL2A_20170613T101031_87_48
    modalities:
      rgb: {file: s2_rgb.tif}
      nir: {file: s2_nir.tif}
      ms: {file: s2_ms20m.tif}
      sar: {file: s1_vvvh_db.tif}
  - name: s2
    scenes: bigearthnet_s2only/S2B_MSIL2A_201709*
    modalities:
      rgb: {file: s2_rgb.tif}
      nir: {file: s2_nir.tif}
""")
    out = tmp / "ds"
    res = run_cli(["build-dataset", out, "--config", cfg, "--chip", "32", "--split-by", "scene",
                   "--val-frac", "0", "--test-frac", "0", "--workers", "1", "--quiet"])
    assert res.exit_code == 0, res.stderr
    return out


def test_sample_holds_normalised_modalities_of_one_chip(built):
    ds = ChipDataset(built, split="train")
    meta = open_dataset(built).meta
    assert len(ds) == meta["splits"]["train"]
    i = next(i for i, c in enumerate(ds.chips) if "sar" in c.modalities)
    s = ds[i]
    assert s["modalities"] == ("rgb", "sar", "nir", "ms") and s["index"] == i
    assert ds.chip == 32 and ds.bands == {"rgb": 3, "sar": 2, "nir": 1, "ms": 6}
    img = s["images"]
    assert img["rgb"].shape == (3, 32, 32) and img["ms"].shape == (6, 32, 32)
    assert img["sar"].dtype == torch.float32 and s["valid"]["sar"].all()
    assert s["valid"]["sar"].shape == (32, 32)
    # dataset normalisation: the train p1/p99 of each band map to -1/+1
    lo, hi = meta["normalisation"]["sar"]["low"], meta["normalisation"]["sar"]["high"]
    import zarr

    raw = zarr.open_group(built / "chips.zarr", mode="r")["sar"][ds.chips[i].row]
    want = (raw - np.array(lo)[:, None, None]) * 2 / (np.array(hi) - np.array(lo))[:, None, None] - 1
    np.testing.assert_allclose(img["sar"].numpy(), want, rtol=1e-5, atol=1e-5)
    assert -3 < float(img["sar"].mean()) < 3
    # a subset of modalities, asked for explicitly
    sub = ds[(i, ("nir", "rgb"))]
    assert sub["modalities"] == ("nir", "rgb") and set(sub["images"]) == {"nir", "rgb"}
    # chips without SAR simply do not carry it
    j = next(i for i, c in enumerate(ds.chips) if "sar" not in c.modalities)
    assert "sar" not in ds[j]["images"] and "rgb" in ds[j]["images"]
    only = ChipDataset(built, split="train", modalities=["rgb", "sar"], require_all=True)
    assert all("sar" in c.modalities for c in only.chips) and 0 < len(only) < len(ds)


def test_pair_batches_are_uniform_over_pairs_and_load_in_workers(built):
    ds = ChipDataset(built, split="train")
    index = ds.pairs()
    assert len(index[("rgb", "nir")]) > 2 * len(index[("rgb", "sar")])  # imbalanced pairs
    sampler = PairBatchSampler(ds, batch_size=2, seed=5, steps=1200)
    counts = Counter(batch[0][1] for batch in sampler)
    assert set(counts) == set(index) and len(counts) == 6
    for n in counts.values():  # uniform over the 6 pairs: 200 each, binomial sd ~13
        assert abs(n - 200) < 60
    for batch in list(sampler)[:20]:
        pair = batch[0][1]
        assert all(p == pair and pair[0] in ds.chips[i].modalities and pair[1] in ds.chips[i].modalities
                   for i, p in batch)
    # same seed, same batches; resuming at step s gives exactly the batches from s on
    full = list(PairBatchSampler(ds, 2, seed=5, steps=30))
    assert full == list(PairBatchSampler(ds, 2, seed=5, steps=30))
    assert list(PairBatchSampler(ds, 2, seed=5, start_step=17, steps=13)) == full[17:]
    # DDP ranks draw different batches
    r0 = list(PairBatchSampler(ds, 2, seed=5, rank=0, world_size=2, steps=15))
    r1 = list(PairBatchSampler(ds, 2, seed=5, rank=1, world_size=2, steps=15))
    assert len(r0) == len(r1) == 15 and r0 != r1
    loader = DataLoader(ds, batch_sampler=PairBatchSampler(ds, 4, seed=1, steps=3), num_workers=1)
    for batch in loader:
        a, b = batch["modalities"][0][0], batch["modalities"][1][0]
        assert batch["images"][a].shape[0] == 4 and batch["images"][b].shape[0] == 4
        assert batch["valid"][a].shape == (4, 32, 32)


def test_scene_balanced_batches_draw_every_scene_equally(built):
    """balance="scene": for a pair, each scene holding it is drawn equally often whatever its chip
    count; "chip" (the default, unchanged) draws scenes in proportion to their chips."""
    from earthgen_cli.train.batches import ChipSubset

    full_ds = ChipDataset(built, split="train")
    order = [full_ds.chips[i].scene for i in range(len(full_ds))]
    first, second = order[0], next(s for s in order if s != order[0])
    # the chips up to 3 into the third scene: two whole scenes and a small one
    cut = next(i for i, s in enumerate(order) if s not in (first, second)) + 3
    ds = ChipSubset(full_ds, cut)
    chips = ds.pairs()[("rgb", "nir")]
    per_scene = Counter(ds.chips[i].scene for i in chips)
    assert len(per_scene) == 3 and max(per_scene.values()) >= 4 * min(per_scene.values())  # imbalanced
    draws = {}
    for balance in ("chip", "scene"):
        sampler = PairBatchSampler(ds, 8, seed=3, steps=3000, pairs=["rgb+nir"], balance=balance)
        draws[balance] = Counter(ds.chips[i].scene for batch in sampler for i, _ in batch)
        assert all(pair == ("rgb", "nir") for batch in list(sampler)[:5] for _, pair in batch)
    n = 3000 * 8
    for scene, count in draws["scene"].items():
        assert abs(count - n / len(per_scene)) < 0.05 * n / len(per_scene), (scene, count)
    for scene, count in draws["chip"].items():
        assert abs(count - n * per_scene[scene] / len(chips)) < 0.05 * n * per_scene[scene] / len(chips)
    # every chip of a scene is drawn, and the sampler stays stateless (resume = same batches)
    assert {i for batch in PairBatchSampler(ds, 8, seed=3, steps=3000, pairs=["rgb+nir"], balance="scene")
            for i, _ in batch} == set(chips)
    full = list(PairBatchSampler(ds, 4, seed=2, steps=20, balance="scene"))
    assert list(PairBatchSampler(ds, 4, seed=2, start_step=11, steps=9, balance="scene")) == full[11:]
    with pytest.raises(ValueError, match="balance"):
        PairBatchSampler(ds, 4, seed=2, balance="sensor")


def test_png_pairs_without_geometry(shared_data, tmp_path):
    """QXS-SAROPT-style folders: sar/x.png + opt/x.png, paired by name, no CRS."""
    sar, *_ = read_real(shared_data / BEN_MM / "s1_vvvh_db.tif")
    rgb, *_ = read_real(shared_data / BEN_MM / "s2_rgb.tif")
    (tmp_path / "qxs" / "sar").mkdir(parents=True)
    (tmp_path / "qxs" / "opt").mkdir(parents=True)
    for k, (r0, c0) in enumerate([(0, 0), (40, 40)]):
        v = np.clip((sar[0, r0:r0 + 80, c0:c0 + 80] + 25) / 30 * 255, 0, 255).astype(np.uint8)
        o = np.clip(rgb[:, r0:r0 + 80, c0:c0 + 80] / 3000 * 255, 0, 255).astype(np.uint8)
        Image.fromarray(v).save(tmp_path / "qxs" / "sar" / f"p{k}.png")
        Image.fromarray(o.transpose(1, 2, 0)).save(tmp_path / "qxs" / "opt" / f"p{k}.png")
    Image.fromarray(v).save(tmp_path / "qxs" / "sar" / "lonely.png")  # no optical partner
    cfg = write_config(tmp_path / "ds.yaml", tmp_path, """  - name: qxs
    kind: image_pairs
    scenes: qxs
    modalities:
      sar: {file: "sar/*.png"}
      rgb: {file: "opt/*.png"}
""")
    out = tmp_path / "out"
    res = run_cli(["build-dataset", out, "--config", cfg, "--chip", "40", "--split-by", "scene",
                   "--val-frac", "0", "--test-frac", "0", "--quiet", "--skip-bad"])
    assert res.exit_code == 0, res.stderr
    assert "skipped qxs/lonely: scene qxs/lonely: missing modality rgb" in res.stdout
    ds = open_dataset(out)
    assert {c.scene for c in ds.chips} == {"qxs/p0", "qxs/p1"} and len(ds.chips) == 8
    assert all(c.crs == "" and np.isnan(c.gsd) for c in ds.chips)
    assert "GSD: none (plain images)" in res.stdout
    import zarr

    arr = zarr.open_group(out / "chips.zarr", mode="r")
    chip = next(c for c in ds.chips if c.id == "qxs/p1/40_0")
    np.testing.assert_array_equal(arr["rgb"][chip.row],
                                  np.asarray(Image.open(tmp_path / "qxs/opt/p1.png"))
                                  .transpose(2, 0, 1)[:, 40:80, 0:40].astype(np.float32))


def test_in_memory_chips_equal_the_chips_read_one_by_one(built):
    disk = ChipDataset(built, "train")
    ram = ChipDataset(built, "train", in_memory=True)
    assert len(ram) == len(disk) > 0
    for i in range(len(disk)):
        a, b = disk[i], ram[i]
        assert a["modalities"] == b["modalities"]
        for m in a["modalities"]:
            assert torch.equal(a["images"][m], b["images"][m]) and torch.equal(a["valid"][m], b["valid"][m])
