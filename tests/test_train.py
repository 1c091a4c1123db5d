"""`earthgen train` on real chips: config strictness, the overfit check, codec -> flow stages."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from earthgen_cli.data.chips import ChipDataset
from earthgen_cli.errors import EarthgenError
from earthgen_cli.inference.model_translator import ModelTranslator
from earthgen_cli.inference.translator import TileBatch
from earthgen_cli import checkpoint as ck
from earthgen_cli.train.config import load_train_config
from scene_fixtures import run_cli
from train_fixtures import BEMM_CONFIG, TINY, chips16, earthgen, read_log  # noqa: F401  (fixture)


@pytest.mark.parametrize("sets, message", [
    (["optim.stepz=3"], "unknown key optim.stepz"),
    (["optim.steps=three"], "optim.steps must be int"),
    (["model.hidden=abc"], "model.hidden must be int"),
    (["model.bands={rgb: 3}"], "model.bands comes from the dataset"),
    (["flow.modes=[1, 2]"], "flow.modes must have 3 items"),
    (["stage=diffusion"], "stage is 'diffusion'; expected one of codec, flow"),
    (["model.preset=huge"], "model.preset is 'huge'"),
    (["data.balance=sensor"], "data.balance must be chip or scene, not 'sensor'"),
    (["optim.direct_lr_mult=0"], "optim.direct_lr_mult must be > 0"),
])
def test_bad_config_is_one_line_error(tmp_path, sets, message):
    out = tmp_path / "run"
    args = ["train", "--config", str(TINY), "--set", f"run.out_dir={out}"]
    for s in sets:
        args += ["--set", s]
    proc = earthgen(*args, check=False)
    assert proc.returncode == 2
    assert proc.stderr.startswith("earthgen: error: ") and proc.stderr.count("\n") == 1, proc.stderr
    assert message in proc.stderr and "tiny.yaml" in proc.stderr
    assert not out.exists()


def test_config_files(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("optim: [1, 2\n")
    with pytest.raises(EarthgenError, match="bad.yaml: invalid YAML"):
        load_train_config(bad)
    with pytest.raises(EarthgenError, match="missing.yaml: cannot read config"):
        load_train_config(tmp_path / "missing.yaml")
    cfg = load_train_config(TINY, ["optim.steps=7", "flow.modes=[0, 1, 0]", "model.target=x0"])
    assert cfg.optim.steps == 7 and cfg.flow.modes == (0.0, 1.0, 0.0) and cfg.model["target"] == "x0"
    # YAML 1.1 reads 1e-4 (no dot) as a string; a float option takes it as the number it means
    assert load_train_config(TINY, ["optim.lr=1e-4", "flow.time_uniform=.5E+0"]).optim.lr == 1e-4
    with pytest.raises(EarthgenError, match="flow.time_uniform must be in"):
        load_train_config(TINY, ["flow.time_uniform=1.5"])
    with pytest.raises(EarthgenError, match="flow.time_one must be in"):
        load_train_config(TINY, ["flow.time_one=-0.1"])


def test_dataset_problems_are_one_line_errors(tmp_path, chips16):
    out = tmp_path / "run"
    proc = run_cli(["train", "--config", str(TINY), "--set", f"data.root={chips16}", "--set",
                    "data.modalities=[rgb, pan]", "--set", f"run.out_dir={out}"])
    assert proc.exit_code == 2 and "no modality pan" in proc.stderr and proc.stderr.count("\n") == 1
    proc = run_cli(["train", "--config", str(TINY), "--set", f"data.root={tmp_path / 'nothing'}",
                    "--set", f"run.out_dir={out}"])
    assert proc.exit_code == 2 and "nothing" in proc.stderr and proc.stderr.count("\n") == 1
    proc = run_cli(["train", "--config", str(TINY), "--set", f"data.root={chips16}", "--set",
                    "data.pairs=[rgb+pan]", "--set", f"run.out_dir={out}"])
    assert proc.exit_code == 2 and "data.pairs names 'rgb+pan'" in proc.stderr and proc.stderr.count("\n") == 1
    assert "pairs present: " in proc.stderr and "rgb+nir" in proc.stderr
    assert not out.exists()


def test_data_pairs_restricts_the_pairs_trained_on(tmp_path, chips16):
    run = tmp_path / "run"
    earthgen("train", "--config", str(TINY), "--set", f"data.root={chips16}", "--set", "data.pairs=[nir+rgb]",
             "--set", "optim.steps=6", "--set", f"run={{out_dir: {run}, save_every: 6, progress: false}}")
    info = ck.read_info(run / "checkpoints" / "step_000006")
    assert info.pairs_seen == {"nir+rgb": 6 * 4}  # every batch from the one pair named (either order)


def test_data_exclude_flags_keeps_flagged_scenes_out_of_the_batches(tmp_path, shared_data):
    """A scene flagged "heavily cloudy" (the dataset config's `flags:`) is built into the chips, and
    `data.exclude_flags: [cloud]` keeps its chips out of every pair; the other scenes stay."""
    import yaml

    from earthgen_cli.train.loop import open_dataset

    cfg = yaml.safe_load(BEMM_CONFIG.read_text())
    cfg["root"] = str(shared_data)
    cfg["sources"][0]["flags"] = {"bigearthnet_mm/*_87_48": "Heavily CLOUDY (test)"}
    (tmp_path / "data.yaml").write_text(yaml.safe_dump(cfg))
    earthgen("build-dataset", str(tmp_path / "d"), "--config", str(tmp_path / "data.yaml"), "--chip", "16", "-q")
    train = load_train_config(TINY, [f"data.root={tmp_path / 'd'}", "data.exclude_flags=[cloud]"])
    every = open_dataset(load_train_config(TINY, [f"data.root={tmp_path / 'd'}"]))
    kept = open_dataset(train)
    flagged = {i for i, c in enumerate(every.chips) if "cloudy" in c.flags.lower()}
    assert flagged and len(flagged) < len(every.chips)
    for pair, idx in every.pairs().items():
        assert set(kept.pairs()[pair]) == set(idx) - flagged
    assert kept[(next(iter(set(range(len(every.chips))) - flagged)), ("rgb", "nir"))]["images"]["rgb"].shape[-1] == 16


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(4.0 / np.mean((a - b) ** 2)))  # model space: range [-1, 1]


@pytest.mark.slow
def test_tiny_model_overfits_four_real_chips(tmp_path, chips16):
    """The whole chain (dataset -> codec -> flow -> sampler -> de-normalisation) can memorise 4 chips."""
    run = tmp_path / "run"
    earthgen("train", "--config", str(TINY), "--set", f"data.root={chips16}",
             "--set", "data.modalities=[rgb, nir]", "--set", "data.max_chips=4", "--set", "data.augment=false",
             "--set", "model={preset: tiny, target: x0, hidden: 64}",
             "--set", "optim={steps: 600, batch_size: 4, lr: 0.002, warmup: 20, ema: 0.9, precision: fp32}",
             # Conditional samples at high noise teach translation; with only 4 chips the InfoNCE
             # negatives are the very scenes to memorise, so the consistency term is off here.
             "--set", "flow={modes: [0, 1, 0], cond_drop: 0, lambda_sc: 0, time_mean: 3}",
             "--set", f"run={{out_dir: {run}, log_every: 1, save_every: 600, progress: false}}")
    log = [r for r in read_log(run) if "mse" in r]
    first, last = np.mean([r["mse"] for r in log[:5]]), np.mean([r["mse"] for r in log[-20:]])
    # (the first losses depend on the latent normalisation, whose std floor caps how far 4 nearly
    # flat chips are blown up; memorisation itself is checked by the PSNR below)
    assert first / last > 4, (first, last)
    ckpt = run / "checkpoints" / "step_000600"
    info = ck.read_info(ckpt)
    assert info.step == 600 and sum(info.pairs_seen.values()) == 2400

    # Translate the 4 chips through the real translator, from raw nir units to raw rgb units.
    ds = ChipDataset(chips16, "train", ["rgb", "nir"])
    samples = [ds[(i, ("rgb", "nir"))] for i in range(4)]
    scaling = info.scaling
    raw = {m: np.stack([scaling[m].from_model(s["images"][m].numpy()) for s in samples]) for m in ("rgb", "nir")}
    tr = ModelTranslator.load(ckpt, device="cpu", steps=4)
    for src, dst in (("nir", "rgb"), ("rgb", "nir")):
        batch = TileBatch({src: raw[src]}, np.ones((4, 16, 16), bool), tuple((0, 16 * i) for i in range(4)),
                          gsd=10.0, seed=0)
        out = tr.translate(batch, dst)
        p = _psnr(scaling[dst].to_model(out), scaling[dst].to_model(raw[dst]))
        mean_only = _psnr(np.broadcast_to(scaling[dst].to_model(raw[dst]).mean((0, 2, 3), keepdims=True),
                                          raw[dst].shape), scaling[dst].to_model(raw[dst]))
        print(f"{src}->{dst}: PSNR {p:.2f} dB (per-band mean baseline {mean_only:.2f} dB)")
        if src == "nir":
            assert p > 30.0 and p > mean_only + 5
    assert (run / "samples" / "step_000600.png").is_file()
    assert "modalities: rgb (3 bands), nir (1 bands)" in ck.describe_checkpoint(ckpt)


@pytest.mark.slow
def test_codec_stage_then_flow_stage(tmp_path, chips16):
    codec_run, flow_run = tmp_path / "codec", tmp_path / "flow"
    kl = "model={preset: tiny, codec: {kind: kl, factor: 2, latent_channels: 4, widths: [32, 32]}}"
    common = ["--config", str(TINY), "--set", f"data.root={chips16}", "--set", "data.modalities=[rgb, sar]", "--set", kl]
    earthgen("train", *common, "--set", "stage=codec", "--set", "optim.steps=3",
             "--set", f"run={{out_dir: {codec_run}, save_every: 3, progress: false}}")
    cinfo = ck.read_info(codec_run / "checkpoints" / "step_000003")
    assert cinfo.stage == "codec" and len(cinfo.latent_stats["sar"]["scale"]) == 4
    assert cinfo.latent_stats["rgb"]["scale"] != [1.0] * 4  # measured on the data
    # the two mistakes run in this process (CliRunner): a fresh interpreter costs seconds per call
    proc = run_cli(["train", *common, "--set", "optim.steps=2", "--set", f"run.out_dir={flow_run}"])
    assert proc.exit_code == 2 and "needs flow.codec_from" in proc.stderr
    earthgen("train", *common, "--set", "optim.steps=2", "--set", f"flow.codec_from={codec_run / 'checkpoints' / 'step_000003'}",
             "--set", f"run={{out_dir: {flow_run}, save_every: 2, progress: false}}")
    model, info = ck.load_model(flow_run / "checkpoints" / "step_000002")
    codec, _ = ck.load_model(codec_run / "checkpoints" / "step_000003")
    assert info.latent_stats == cinfo.latent_stats
    for k, v in codec.codecs.state_dict().items():  # frozen: the flow stage left them untouched
        assert torch.equal(model.codecs.state_dict()[k], v)
    tr = ModelTranslator.load(flow_run / "checkpoints" / "step_000002", device="cpu", steps=2)
    sar = np.full((2, 2, 16, 16), -12.0, np.float32)
    out = tr.translate(TileBatch({"sar": sar}, np.ones((2, 16, 16), bool), ((0, 0), (0, 16)), 10.0), "rgb")
    assert out.shape == (2, 3, 16, 16) and np.isfinite(out).all()
    proc = run_cli(["train", *common, "--set", "stage=codec", "--set", "model.preset=tiny", "--set", "model.codec=null",
                    "--set", f"run.out_dir={tmp_path / 'x'}"])
    assert proc.exit_code == 2, proc.stderr


def test_flow_init_from_starts_from_another_checkpoints_weights(tmp_path, chips16):
    """Fine-tuning: flow.init_from loads the EMA weights and latent statistics of a flow checkpoint
    (with lr 1e-12 they come through unchanged to 1e-9); another model or a missing folder is a one-line error."""
    base = ["train", "--config", str(TINY), "--set", f"data.root={chips16}", "--set", "data.pairs=[nir+rgb]"]
    src = tmp_path / "src"
    earthgen(*base, "--set", "optim.steps=3", "--set", f"run={{out_dir: {src}, save_every: 3, progress: false}}")
    src_ck = src / "checkpoints" / "step_000003"
    source, sinfo = ck.load_model(src_ck, ema=True)
    # fine-tuning while growing the pixel path (and drawing scene-balanced batches): the old weights and
    # latent statistics come through, the new part is there; the other way round (dropping a part) is
    # another model
    grown_run = tmp_path / "grown"
    earthgen(*base, "--set", "optim.steps=2", "--set", "optim.lr=1e-12", "--set", f"flow.init_from={src_ck}",
             "--set", "model.pixel_path=8", "--set", "data.balance=scene", "--set", "optim.direct_lr_mult=10",
             "--set", f"run={{out_dir: {grown_run}, save_every: 2, progress: false}}")
    grown, ginfo = ck.load_model(grown_run / "checkpoints" / "step_000002", ema=False)
    assert ginfo.latent_stats == sinfo.latent_stats
    assert ginfo.model.pixel_path == 8 and any(k.startswith("generator.pixel.") for k in grown.state_dict())
    for k, v in source.state_dict().items():
        assert torch.allclose(grown.state_dict()[k], v, rtol=0, atol=1e-9), k
    state = torch.load(grown_run / "checkpoints" / "step_000002" / "train_state.pt", weights_only=False)
    groups = state["optimizer"]["param_groups"]
    assert [g["lr_mult"] for g in groups] == [1.0, 10.0]  # the pixel path learns at 10x the rate
    assert abs(groups[1]["lr"] - 10 * groups[0]["lr"]) < 1e-20
    # flow.train_only: only the pixel path learns, everything else stays exactly the source's
    frozen = tmp_path / "frozen"
    earthgen(*base, "--set", "optim.steps=2", "--set", "optim.lr=1e-2", "--set", f"flow.init_from={src_ck}",
             "--set", "model.pixel_path=8", "--set", "flow.train_only=[generator.pixel.]",
             "--set", f"run={{out_dir: {frozen}, save_every: 2, progress: false}}")
    fz, _ = ck.load_model(frozen / "checkpoints" / "step_000002", ema=False)
    for k, v in source.state_dict().items():
        assert torch.equal(fz.state_dict()[k], v), k
    assert any(fz.state_dict()[k].abs().sum() > 0 for k in fz.state_dict() if k.startswith("generator.pixel.head."))
    # model.pixel_norm on a checkpoint whose pixel path has none re-makes the path (v7-v9's had died):
    # every other weight comes through, the path is the normalised one
    remade = tmp_path / "remade"
    earthgen(*base, "--set", "optim.steps=2", "--set", "optim.lr=1e-12", "--set", "model.pixel_path=8",
             "--set", "model.pixel_norm=true", "--set", f"flow.init_from={grown_run / 'checkpoints' / 'step_000002'}",
             "--set", f"run={{out_dir: {remade}, save_every: 2, progress: false}}")
    rm, rinfo = ck.load_model(remade / "checkpoints" / "step_000002", ema=False)
    assert rinfo.model.pixel_norm and any(isinstance(m, torch.nn.GroupNorm) for m in rm.generator.pixel.trunk)
    for k, v in grown.state_dict().items():
        if not k.startswith("generator.pixel."):
            assert torch.allclose(rm.state_dict()[k], v, rtol=0, atol=1e-9), k
    # model.pixel_pairs re-makes it too: a path per (source, target), every other weight as it was
    paired = tmp_path / "paired"
    earthgen(*base, "--set", "optim.steps=2", "--set", "optim.lr=1e-12", "--set", "model.pixel_path=8",
             "--set", "model.pixel_norm=true", "--set", "model.pixel_pairs=true",
             "--set", f"flow.init_from={remade / 'checkpoints' / 'step_000002'}",
             "--set", f"run={{out_dir: {paired}, save_every: 2, progress: false}}")
    pm, pinfo = ck.load_model(paired / "checkpoints" / "step_000002", ema=False)
    assert pinfo.model.pixel_pairs and "rgb_to_nir" in pm.generator.pixel.head
    for k, v in rm.state_dict().items():
        if not k.startswith("generator.pixel."):
            assert torch.allclose(pm.state_dict()[k], v, rtol=0, atol=1e-9), k
    # model.pixel_sees_pred widens each pair's stem (zero weights for the prediction's channels):
    # every weight comes through, the paths included
    seeing = tmp_path / "seeing"
    earthgen(*base, "--set", "optim.steps=2", "--set", "optim.lr=1e-12", "--set", "model.pixel_path=8",
             "--set", "model.pixel_norm=true", "--set", "model.pixel_pairs=true", "--set", "model.pixel_sees_pred=true",
             "--set", f"flow.init_from={paired / 'checkpoints' / 'step_000002'}",
             "--set", f"run={{out_dir: {seeing}, save_every: 2, progress: false}}")
    sm, sinfo = ck.load_model(seeing / "checkpoints" / "step_000002", ema=False)
    assert sinfo.model.pixel_sees_pred
    # pairs_seen carries on init_from's count: every stage's samples (inference refuses unseen pairs)
    before = ck.read_info(paired / "checkpoints" / "step_000002").pairs_seen
    assert set(before) <= set(sinfo.pairs_seen) and sum(sinfo.pairs_seen.values()) > sum(before.values())
    assert all(sinfo.pairs_seen[k] >= v for k, v in before.items())
    for k, v in pm.state_dict().items():
        w = sm.state_dict()[k]
        assert torch.allclose(w[:, :v.shape[1]] if w.dim() == 4 and k.startswith("generator.pixel.stem.") else w, v,
                              rtol=0, atol=1e-9), k
    # model.context_path grown and trained alone on masked-slot batches (flow.masked, which needs
    # model.token_times): only the context path learns, every other weight stays the source's
    masked = tmp_path / "masked"
    proc = run_cli([*base, "--set", "flow.masked=1", "--set", f"run.out_dir={masked}"])
    assert proc.exit_code == 2 and "model.token_times" in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr
    earthgen(*base, "--set", "optim.steps=2", "--set", "optim.lr=1e-2", "--set", f"flow.init_from={src_ck}",
             "--set", "model.token_times=true", "--set", "model.context_path=8", "--set", "flow.masked=1",
             "--set", "flow.train_only=[generator.context.]",
             "--set", f"run={{out_dir: {masked}, save_every: 2, progress: false}}")
    cm, cinfo = ck.load_model(masked / "checkpoints" / "step_000002", ema=False)
    assert cinfo.model.token_times and cinfo.model.context_path == 8
    for k, v in source.state_dict().items():
        assert torch.equal(cm.state_dict()[k], v), k
    assert any(cm.state_dict()[k].abs().sum() > 0 for k in cm.state_dict() if k.startswith("generator.context.head."))
    proc = run_cli([*base, "--set", "flow.train_only=[generator.nothing.]", "--set", f"run.out_dir={tmp_path / 'no'}"])
    assert proc.exit_code == 2 and "names no parameter" in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr
    # resuming it with another multiplier layout is a one-line error, not torch's traceback
    proc = run_cli([*base, "--set", "optim.steps=3", "--set", f"flow.init_from={src_ck}", "--set", "model.pixel_path=8",
                    "--set", f"run={{out_dir: {grown_run}, save_every: 2, progress: false}}", "--resume"])
    assert proc.exit_code == 2 and "parameter group(s)" in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr
    proc = run_cli([*base, "--set", f"flow.init_from={grown_run / 'checkpoints' / 'step_000002'}",
                    "--set", f"run.out_dir={tmp_path / 'shrunk'}"])
    assert proc.exit_code == 2 and "has another model" in proc.stderr, proc.stderr
    for sets, message in ((["model.hidden=48"], "has another model"), ([], "not a checkpoint directory")):
        target = src_ck if sets else tmp_path / "nowhere"
        proc = run_cli([*base, *sum((["--set", s] for s in sets), []), "--set", f"flow.init_from={target}",
                        "--set", f"run.out_dir={tmp_path / 'bad'}"])
        assert proc.exit_code == 2 and message in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr
        assert not (tmp_path / "bad" / "checkpoints").exists()


@pytest.mark.parametrize("crop, message", [("7", "data.crop 7 is not a multiple of"),
                                           ("64", "data.crop 64 is larger than the dataset's 16x16 chips")])
def test_impossible_crops_are_one_line_errors(tmp_path, chips16, crop, message):
    out = tmp_path / "run"
    proc = run_cli(["train", "--config", str(TINY), "--set", f"data.root={chips16}", "--set", f"data.crop={crop}",
                    "--set", f"run.out_dir={out}"])
    assert proc.exit_code == 2 and message in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr
    assert not (out / "checkpoints").exists()
