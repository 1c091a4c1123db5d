"""torchrun on CPU (gloo) and SIGKILL + --resume: real processes, real checkpoints."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest
from safetensors.torch import load_file

from earthgen_cli import checkpoint as ck
from train_fixtures import ROOT, TINY, chips16, earthgen, env, read_log  # noqa: F401  (fixture)


def _args(chips, out, steps, save_every, extra=()):
    return ["train", "--config", str(TINY), "--set", f"data.root={chips}", "--set", "data.modalities=[rgb, sar]",
            "--set", f"optim.steps={steps}", "--set",
            f"run={{out_dir: {out}, log_every: 1, save_every: {save_every}, keep_last: 2, progress: false}}", *extra]


def _same_weights(a, b) -> bool:
    sa, sb = load_file(str(a)), load_file(str(b))
    return sa.keys() == sb.keys() and all((sa[k] == sb[k]).all() for k in sa)


@pytest.mark.slow
def test_torchrun_two_processes(tmp_path, chips16):
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "earthgen_cli", *_args(chips16, out, 6, 3, ["--set", "optim.accum=2"])]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env(), cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = read_log(out)
    steps = [r for r in log if "loss_by_rank" in r]
    assert [r["step"] for r in steps] == [1, 2, 3, 4, 5, 6]
    for r in steps:  # the logged loss is the mean over the ranks, which saw different data
        assert r["loss"] == pytest.approx(sum(r["loss_by_rank"]) / 2, abs=2e-6)
    assert any(r["loss_by_rank"][0] != r["loss_by_rank"][1] for r in steps)
    assert log[-1] == {"step": 6, "processes": 2, "ranks_identical": True}
    info = ck.read_info(out / "checkpoints" / "step_000006")
    assert sum(info.pairs_seen.values()) == 6 * 2 * 2 * 4  # steps x accum x ranks x batch


@pytest.mark.slow
def test_sigkill_then_resume_matches_uninterrupted_run(tmp_path, chips16):
    steps, every = 24, 4
    ref = tmp_path / "ref"
    earthgen(*_args(chips16, ref, steps, every))

    run = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "earthgen_cli", *_args(chips16, run, steps, every)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env(), cwd=ROOT)
    deadline = time.time() + 120
    while ck.newest_checkpoint(run / "checkpoints") is None or \
            ck.newest_checkpoint(run / "checkpoints").name < "step_000008":
        assert proc.poll() is None and time.time() < deadline, "the run ended before it could be killed"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL
    killed_at = ck.newest_checkpoint(run / "checkpoints")
    assert killed_at.name < f"step_{steps:06d}"

    earthgen(*_args(chips16, run, steps, every), "--resume")
    final, ref_final = run / "checkpoints" / f"step_{steps:06d}", ref / "checkpoints" / f"step_{steps:06d}"
    for name in ("model.safetensors", "ema.safetensors"):
        assert _same_weights(final / name, ref_final / name), name
    assert ck.read_info(final).pairs_seen == ck.read_info(ref_final).pairs_seen
    # log.jsonl holds every step once (the steps logged after the last checkpoint and lost are
    # logged again by the resumed run), with the losses of the uninterrupted run
    strip = lambda log: [{k: v for k, v in r.items() if k != "samples_per_s"} for r in log]  # noqa: E731
    assert strip(read_log(run)) == strip(read_log(ref))
    # Resuming a finished run, or starting over a run that has checkpoints, is refused.
    again = earthgen(*_args(chips16, run, steps, every), "--resume", check=False)
    assert again.returncode == 2 and "nothing to do" in again.stderr
    fresh = earthgen(*_args(chips16, run, steps, every), check=False)
    assert fresh.returncode == 2 and "--resume" in fresh.stderr


@pytest.mark.slow
def test_torchrun_shares_unet_directions_between_processes(tmp_path, chips16):
    """Stage unet under torchrun: each process trains its own directions (no collectives)."""
    out = tmp_path / "unets"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "earthgen_cli", "train", "--config", str(ROOT / "configs" / "pairwise-unet.yaml"),
           "--set", f"data.root={chips16}", "--set", "optim.steps=2", "--set", "optim.batch_size=4",
           "--set", "unet.directions=[rgb:sar, sar:rgb, rgb:nir]", "--set", f"run.out_dir={out}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env(), cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = read_log(out)
    assert sorted((r["item"], r["rank"]) for r in log) == [("rgb:nir", 0), ("rgb:sar", 0), ("sar:rgb", 1)]
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["unet_rgb_nir", "unet_rgb_sar", "unet_sar_rgb"]


def test_resume_before_the_first_checkpoint_starts_from_step_zero(tmp_path, chips16):
    """The README's crash advice ("run it again with --resume") works after a crash that came
    before any checkpoint: a one-line notice, then the whole run."""
    run = tmp_path / "early"
    (run / "checkpoints" / "step_000002.tmp").mkdir(parents=True)  # what a crash mid-save leaves
    (run / "log.jsonl").write_text('{"step": 1, "loss": 1.0}\n{"step": 2, "lo')
    proc = earthgen(*_args(chips16, run, 2, 2), "--resume")
    assert "no complete checkpoint yet; starting from step 0" in proc.stderr
    assert ck.newest_checkpoint(run / "checkpoints").name == "step_000002"
    assert [r["step"] for r in read_log(run) if "loss" in r] == [1, 2]
