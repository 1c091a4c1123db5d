"""Nothing left behind (issue 12): SIGTERM and SIGHUP clean up as Ctrl-C does and exit 128 + the
signal; scratch lives beside the output in a per-run folder; what a SIGKILLed run left is removed by
the next run; an earlier output stays intact throughout.

Signals sent to this very process (from inside the command, so always while it runs) exercise the
real handlers cheaply; SIGKILL needs a child process.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import write_geotiff
from earthgen_cli.inference import translator as translators
from earthgen_cli.io import scratch
from scene_fixtures import run_cli
from test_translate import assert_one_line_error


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def leftovers(*folders: Path) -> list[str]:
    return sorted(p.name for f in folders for p in f.iterdir() if p.name.startswith(scratch.PREFIX))


@pytest.fixture
def tmpdir_env(tmp_path, monkeypatch) -> Path:
    """A private system temporary folder, so that scratch put there can be checked."""
    import tempfile

    folder = tmp_path / "systmp"
    folder.mkdir()
    monkeypatch.setenv("TMPDIR", str(folder))
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


@pytest.fixture
def scene(tmp_path) -> Path:
    data = np.random.default_rng(0).integers(1, 3000, (3, 64, 64)).astype(np.uint16)
    return write_geotiff(tmp_path / "rgb.tif", data, nodata=0)


@pytest.fixture
def previous(tmp_path) -> Path:
    out = tmp_path / "out"
    out.mkdir()
    old = write_geotiff(out / "o.tif", np.full((3, 64, 64), 7, np.uint16))
    return old


class SignalledTranslator(translators.IdentityTranslator):
    """Sends `signum` to this process on its second batch, when the output and scratch exist."""

    name = "signalled"
    signum = signal.SIGTERM
    calls = 0

    def translate(self, batch, target):
        type(self).calls += 1
        if type(self).calls == 2:
            # to the main thread, where Python runs signal handlers (sent to the process, another
            # thread may take the signal and the main thread's sleep is not interrupted)
            signal.pthread_kill(threading.main_thread().ident, self.signum)
            time.sleep(5)  # the handler raises long before this ends
        return super().translate(batch, target)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_translate_terminated_cleans_up_and_keeps_the_previous_output(scene, previous, tmpdir_env, monkeypatch,
                                                                      signum):
    monkeypatch.setattr(SignalledTranslator, "signum", signum)
    monkeypatch.setattr(SignalledTranslator, "calls", 0)
    monkeypatch.setitem(translators.ANALYTIC_TRANSLATORS, "signalled", SignalledTranslator)
    before = digest(previous)
    # earthgen leaves SIGHUP ignored when it starts ignored (under nohup: a user's explicit wish), so
    # the test starts from the default disposition however pytest itself was launched.
    inherited = signal.signal(signum, signal.SIG_DFL)
    t0 = time.perf_counter()
    try:
        r = run_cli(["translate", scene, "--to", "rgb", "--model", "signalled", "--tile", "16", "--overlap", "4",
                     "--batch-size", "1", "-q", "-o", previous, "--overwrite"])
        assert signal.getsignal(signum) == signal.SIG_DFL  # handlers restored
    finally:
        signal.signal(signum, inherited)
    assert time.perf_counter() - t0 < 4
    assert r.exit_code == 128 + signum
    assert_one_line_error(r, f"terminated by {signal.Signals(signum).name}")
    assert digest(previous) == before
    assert os.listdir(previous.parent) == ["o.tif"] and os.listdir(tmpdir_env) == []
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL  # handlers restored


def test_sighup_ignored_by_nohup_stays_ignored(scene, tmp_path, monkeypatch):
    from earthgen_cli.cli.app import terminate_as_interrupt

    old = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        with terminate_as_interrupt():
            assert signal.getsignal(signal.SIGHUP) == signal.SIG_IGN
            assert signal.getsignal(signal.SIGTERM) not in (signal.SIG_DFL, None)
    finally:
        signal.signal(signal.SIGHUP, old)


# A child process running the real CLI with a slow identity model, for SIGKILL.
SLOW_TRANSLATE = textwrap.dedent("""
    import pathlib, sys, time
    from earthgen_cli.inference import translator as t

    MARKER = pathlib.Path(sys.argv[1])

    class Slow(t.IdentityTranslator):
        name = "slow"
        def translate(self, batch, target):
            MARKER.touch()
            time.sleep(0.2)
            return super().translate(batch, target)

    t.ANALYTIC_TRANSLATORS["slow"] = Slow
    sys.argv = ["earthgen", *sys.argv[2:]]
    from earthgen_cli.cli.app import main
    main()
""")


def start_child(code: str, marker: Path, args, tmpdir: Path) -> subprocess.Popen:
    env = {**os.environ, "TMPDIR": str(tmpdir), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-c", code, str(marker), *map(str, args)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not marker.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"child never started its work: {proc.communicate()[1].decode()}")
        time.sleep(0.02)
    return proc


@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGTERM])
def test_translate_killed_child_leaves_previous_output_and_next_run_cleans(scene, previous, tmpdir_env, tmp_path,
                                                                           signum):
    before = digest(previous)
    args = ["translate", scene, "--to", "rgb", "--model", "slow", "--tile", "16", "--overlap", "4",
            "--batch-size", "1", "-q", "-o", previous, "--overwrite"]
    proc = start_child(SLOW_TRANSLATE, tmp_path / "started", args, tmpdir_env)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == (-signal.SIGKILL if signum == signal.SIGKILL else 128 + signum)
    assert digest(previous) == before
    if signum == signal.SIGKILL:
        assert len(leftovers(previous.parent)) == 2  # the partial GeoTIFF and the run's scratch folder
    else:
        assert err.decode().strip() == "earthgen: error: terminated by SIGTERM"
        assert leftovers(previous.parent) == []
    r = run_cli(["translate", scene, "--to", "rgb", "--model", "identity", "-q", "-o", previous.parent / "p.tif"])
    assert r.exit_code == 0, r.stderr
    assert leftovers(previous.parent) == [] and os.listdir(tmpdir_env) == []
    assert digest(previous) == before


def test_stale_files_of_a_live_process_or_another_host_are_kept(tmp_path):
    mine = scratch.temp_file(tmp_path, ".tmp.tif")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    host = scratch.owner_prefix().split("-")[1]
    stale = tmp_path / f".earthgen-{host}-{dead.pid}-0-abc.tmp.tif"
    stale.write_bytes(b"x")
    other_host = tmp_path / f".earthgen-00000000-{dead.pid}-0-abc.tmp.tif"
    other_host.write_bytes(b"x")
    foreign = tmp_path / ".earthgen-notes.txt"
    foreign.write_text("not ours")
    assert scratch.clean_stale(tmp_path) == [stale]
    assert mine.exists() and other_host.exists() and foreign.exists()


def test_temporary_files_honour_the_umask(tmp_path):
    old = os.umask(0o027)
    try:
        assert scratch.temp_file(tmp_path).stat().st_mode & 0o777 == 0o640
    finally:
        os.umask(old)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    from generate_fixtures import random_checkpoint

    return random_checkpoint(tmp_path_factory.mktemp("rand") / "ck")


def joint_args(ckpt, out):
    return ["joint", "--pair", "rgb,sar", "--bbox", "500000,4649680,500320,4650000", "--bbox-crs", "EPSG:32633",
            "--crs", "EPSG:32633", "--gsd", "10", "--steps", "2", "-m", ckpt, "-o", out, "--overwrite", "-q"]


@pytest.fixture
def previous_joint(ckpt, tmp_path) -> Path:
    out = tmp_path / "gen"
    assert run_cli(joint_args(ckpt, out)).exit_code == 0
    return out


def test_joint_terminated_cleans_up_and_keeps_the_previous_output(ckpt, previous_joint, tmpdir_env, monkeypatch):
    from earthgen_cli.inference import joint

    before = {p.name: digest(p) for p in previous_joint.iterdir()}

    def terminated(*args, **kwargs):
        signal.pthread_kill(threading.main_thread().ident, signal.SIGTERM)  # see SignalledTranslator
        time.sleep(5)

    monkeypatch.setattr(joint, "sample_scene", terminated)
    r = run_cli(joint_args(ckpt, previous_joint))
    assert r.exit_code == 143
    assert_one_line_error(r, "terminated by SIGTERM")
    assert {p.name: digest(p) for p in previous_joint.iterdir()} == before
    assert leftovers(previous_joint.parent, previous_joint) == [] and os.listdir(tmpdir_env) == []


SLOW_JOINT = textwrap.dedent("""
    import pathlib, sys, time
    from earthgen_cli.inference import joint

    MARKER = pathlib.Path(sys.argv[1])

    def stuck(*args, **kwargs):
        MARKER.touch()
        time.sleep(600)

    joint.sample_scene = stuck
    sys.argv = ["earthgen", *sys.argv[2:]]
    from earthgen_cli.cli.app import main
    main()
""")


@pytest.mark.slow
def test_joint_killed_child_leaves_previous_output_and_next_run_cleans(ckpt, previous_joint, tmpdir_env, tmp_path):
    before = {p.name: digest(p) for p in previous_joint.iterdir()}
    proc = start_child(SLOW_JOINT, tmp_path / "started", joint_args(ckpt, previous_joint), tmpdir_env)
    proc.kill()
    proc.communicate(timeout=60)
    assert leftovers(previous_joint.parent) != []  # the canvas scratch of the killed run
    assert run_cli(joint_args(ckpt, tmp_path / "next")).exit_code == 0
    assert leftovers(previous_joint.parent, previous_joint) == [] and os.listdir(tmpdir_env) == []
    assert {p.name: digest(p) for p in previous_joint.iterdir()} == before


def test_aborted_geotiff_is_deleted_without_writing_its_missing_blocks(tmp_path, monkeypatch):
    import rasterio
    from rasterio.windows import Window

    from earthgen_cli.io.geotiff_writer import GeoTiffWriter, OutputSpec

    like = write_geotiff(tmp_path / "like.tif", np.zeros((1, 16, 16), np.uint8))
    sizes = []
    monkeypatch.setattr(GeoTiffWriter, "_remove", staticmethod(lambda p: sizes.append(os.path.getsize(p))
                                                               if os.path.exists(p) else None))
    spec = OutputSpec(str(tmp_path / "big.tif"), 3, "uint16", 0, (None,) * 3, {})
    with rasterio.open(like) as src:
        profile_like = type("Like", (), {"width": 40000, "height": 40000, "crs": src.crs,
                                         "transform": src.transform})()
        writer = GeoTiffWriter(profile_like, spec)
        writer.write(np.ones((3, 512, 512), np.uint16), Window(0, 0, 512, 512))
        t0 = time.perf_counter()
        writer.abort()
    assert time.perf_counter() - t0 < 0.5
    assert sizes[0] < 200_000  # the tile index only: 6.1k empty tiles were not compressed and written


def test_blocks_left_entirely_nodata_read_back_as_nodata(tmp_path):
    import rasterio

    data = np.full((1, 1024, 600), 5, np.uint16)
    data[:, :512, :512] = 0  # one whole output block of nodata
    src = write_geotiff(tmp_path / "in.tif", data, nodata=0)
    out = tmp_path / "out.tif"
    assert run_cli(["translate", src, "--from", "pan", "--to", "pan", "--model", "identity", "-q", "-o", out]
                   ).exit_code == 0
    with rasterio.open(out) as dst:
        assert np.array_equal(dst.read(), data) and dst.nodata == 0
