"""Where outputs land: the checks before any work and the publish step at the end, for every command.

Three rules keep a user's data safe (issue 12, "Data loss"):
- An output is never an input, and an output folder never holds an input: paths are compared
  resolved (symlinks, `..`) and with `os.path.samefile` (hard links, bind mounts).
- `--overwrite` replaces a folder only when it holds earthgen's own marker of the right kind
  (dataset.json of a dataset, config.json of a checkpoint, report.json of a report...): a folder
  of anything else is never deleted.
- Without `--overwrite` the publish step never replaces what appeared while the command ran (two
  processes writing the same output): a file is published by `os.link` (which fails on an existing
  name), a folder by `os.rename` (which fails on a non-empty folder). The loser gets a one-line
  error and its temporary copy is removed.
Everything is written beside the target first (`staged_file`, `staged_dir`) and only renamed into
place when complete. New outputs get the mode the umask gives; a replaced file keeps its mode.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

from earthgen_cli.errors import EarthgenError
from earthgen_cli.io.scratch import current_umask, temp_dir, temp_file

STDIO = "-"


def is_virtual(path: str) -> bool:
    """GDAL virtual file systems, URLs and inline datasets: not local paths we can compare."""
    return path.startswith("/vsi") or "://" in path or path.startswith(("<", "GTIFF_DIR:"))


def _local(path: str | Path | None) -> Path | None:
    if path is None or str(path) in ("", STDIO) or is_virtual(str(path)):
        return None
    return Path(path)


def same_path(a: str | Path, b: str | Path) -> bool:
    """True when `a` and `b` name the same file or folder (resolved, or the same inode)."""
    pa, pb = _local(a), _local(b)
    if pa is None or pb is None:
        return False
    if pa.resolve() == pb.resolve():
        return True
    try:
        return os.path.samefile(pa, pb)
    except OSError:  # one of them does not exist (yet)
        return False


def _holds(folder: Path, path: Path) -> bool:
    """True when `path` is `folder` or lies anywhere below it."""
    if path.resolve().is_relative_to(folder.resolve()):
        return True
    return any(same_path(folder, p) for p in path.resolve().parents if p.exists())


def check_not_input(output: str | Path, inputs: Iterable[str | Path | None], folder: bool = False) -> None:
    """Refuse an output that is one of `inputs`, or (a `folder` output) that holds one of them."""
    out = _local(output)
    if out is None:
        return
    for item in inputs:
        src = _local(item)
        if src is None or not (src.exists() or src.is_symlink()):  # nothing there to lose
            continue
        if same_path(out, src):
            raise EarthgenError(f"{output}: is also an input ({item}); write the output to another path")
        if folder and _holds(out, src):
            raise EarthgenError(f"{output}: holds the input {item}; write the output to another folder")


def check_output(path: str, overwrite: bool, inputs: Iterable[str | Path | None] = ()) -> None:
    """Refuse before any work an output file that is an input, exists without --overwrite, is a
    folder, or lies in a missing or unwritable folder."""
    if path == STDIO or is_virtual(path):
        return
    check_not_input(path, inputs)
    p = Path(path)
    if p.is_dir():
        raise EarthgenError(f"{path}: is a directory, expected an output file name")
    if p.exists() and not overwrite:
        raise EarthgenError(f"{path}: exists; pass --overwrite to replace it")
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir():
        raise EarthgenError(f"{path}: folder {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise EarthgenError(f"{path}: folder {parent} is not writable")


SCENE_MAX_PIXELS = 4_000_000_000  # translate, inpaint, extend, render-osm: ~63k x 63k, 3.3x a Sentinel-2 tile set


def check_output_room(path: str, width: int, height: int, bands: int, dtype: str,
                      max_pixels: int | None = SCENE_MAX_PIXELS, scratch_bytes: int = 0) -> None:
    """Refuse up front an output grid above `max_pixels` (--max-pixels) or one whose uncompressed
    size plus `scratch_bytes` (the command's temporary canvases) exceeds the free space of the
    output's file system: a VRT declaring 10^6 x 10^6 pixels would otherwise start, grow a huge
    temporary file and fail hours later. Compression can make the file smaller; the estimate is the
    worst case (generated texture compresses poorly). `max_pixels=None`: the caller has checked
    the grid's size itself (joint's --bbox limit)."""
    import numpy as np

    pixels = int(width) * int(height)
    if max_pixels is not None and pixels > max_pixels:
        raise EarthgenError(f"{path}: output grid {width} x {height} = {pixels:,} pixels exceeds --max-pixels "
                            f"{max_pixels:,}")
    need = pixels * bands * np.dtype(dtype).itemsize + scratch_bytes
    folder = Path(path).parent if path != STDIO and not is_virtual(path) else Path(tempfile.gettempdir())
    try:
        free = shutil.disk_usage(folder if str(folder) else ".").free
    except OSError:
        return  # not a local file system we can measure
    if need > free:
        raise EarthgenError(f"{path}: the output needs up to {need / 1e9:,.1f} GB ({width} x {height} x {bands} "
                            f"{dtype}, uncompressed) and {folder} has {free / 1e9:,.1f} GB free")


@dataclass(frozen=True)
class Marker:
    """The file that makes a folder earthgen's own output of one kind, and so replaceable by
    --overwrite: `file` exists and is JSON whose "format" is one of `formats`, or (`begins`) a text
    file starting with that line."""

    file: str
    what: str  # for messages: "dataset", "checkpoint", ...
    formats: tuple[object, ...] = ()
    begins: str = ""

    def found_in(self, folder: Path) -> bool:
        try:
            text = (Path(folder) / self.file).read_text(encoding="utf-8", errors="replace")
        except OSError:
            return False
        if self.begins:
            return text.startswith(self.begins)
        try:
            meta = json.loads(text)
        except ValueError:
            return False
        return isinstance(meta, dict) and meta.get("format") in self.formats


DATASET = Marker("dataset.json", "dataset", formats=("earthgen-dataset",))
CHECKPOINT = Marker("config.json", "checkpoint", formats=("earthgen-checkpoint",))
REPORT = Marker("report.json", "evaluation report", formats=(1, 2))
SAMPLE_DATA = Marker("README.md", "sample-data", begins="# earthgen sample data\n")


def _is_empty_dir(p: Path) -> bool:
    return p.is_dir() and not p.is_symlink() and not any(p.iterdir())


def _check_replaceable(path: str | Path, marker: Marker) -> None:
    p = Path(path)
    if p.is_symlink() or not p.is_dir():
        raise EarthgenError(f"{path}: exists and is not a folder; --overwrite replaces only an earthgen "
                            f"{marker.what} folder")
    if not _is_empty_dir(p) and not marker.found_in(p):
        raise EarthgenError(f"{path}: not an earthgen {marker.what} folder (no {marker.file} of one); "
                            f"--overwrite does not delete it, write to another folder")


def check_output_dir(path: str | Path, overwrite: bool, marker: Marker,
                     inputs: Iterable[str | Path | None] = ()) -> None:
    """Refuse before any work an output folder that is or holds an input, that exists and is not
    empty without --overwrite, or that --overwrite would delete without it being `marker`'s kind."""
    check_not_input(path, inputs, folder=True)
    p = Path(path)
    if p.exists() or p.is_symlink():
        if _is_empty_dir(p):
            return
        if not overwrite:
            raise EarthgenError(f"{path}: exists; pass --overwrite to replace it")
        _check_replaceable(p, marker)


def _appeared(target: str | Path) -> EarthgenError:
    return EarthgenError(f"{target}: appeared while this command ran (another process?); left as it is, "
                         f"pass --overwrite to replace it")


def publish_file(tmp: str | Path, target: str | Path, overwrite: bool) -> None:
    """Move the finished file `tmp` (beside `target`) onto `target`. Without `overwrite` it never
    replaces an existing target: `os.link` fails on it. On error the caller removes `tmp`."""
    try:
        if overwrite:
            with contextlib.suppress(FileNotFoundError):  # a replaced file keeps its mode
                os.chmod(tmp, stat.S_IMODE(os.stat(target).st_mode))
            os.replace(tmp, target)
            return
        try:
            os.link(tmp, target)
        except FileExistsError:
            raise _appeared(target) from None
        except OSError as exc:  # a file system without hard links: claim the name, then replace it
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK):
                raise
            try:
                os.close(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            except FileExistsError:
                raise _appeared(target) from None
            os.replace(tmp, target)
            return
        os.unlink(tmp)
    except EarthgenError:
        raise
    except OSError as exc:
        raise EarthgenError(f"{target}: cannot write the output ({exc.strerror or exc})") from None


@contextlib.contextmanager
def staged_file(target: str | Path, overwrite: bool, suffix: str = ".tmp") -> Iterator[Path]:
    """A temporary path beside `target` to write; published onto `target` when the block ends
    normally, removed otherwise (see `scratch` for what a killed run leaves and who removes it)."""
    target = Path(target)
    tmp = temp_file(target.resolve().parent, suffix, label=target)
    try:
        yield tmp
        publish_file(tmp, target, overwrite)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def publish_dir(staging: str | Path, target: str | Path, overwrite: bool, marker: Marker) -> None:
    """Move the finished folder `staging` (beside `target`) onto `target`. Without `overwrite`,
    `os.rename` succeeds only onto a missing or empty folder; with it, the old folder is replaced
    only when it still holds `marker` (checked again right before). On error the caller removes
    `staging`."""
    target = Path(target)
    try:
        os.rename(staging, target)
        return
    except OSError as exc:
        if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY, errno.ENOTDIR, errno.EISDIR):
            raise EarthgenError(f"{target}: cannot write the output ({exc.strerror})") from None
    if not overwrite:
        raise _appeared(target)
    _check_replaceable(target, marker)
    # the old folder is renamed onto an empty temporary folder (rename(2) replaces an empty one), so
    # its name is scratch's own: a run killed before the rmtree below leaves what clean_stale removes
    trash = temp_dir(target.parent, suffix=".old", label=target)
    try:
        os.replace(target, trash)
    except OSError:
        os.rmdir(trash)
        raise
    try:
        os.rename(staging, target)
    except OSError:
        with contextlib.suppress(OSError):
            os.rename(trash, target)
        raise _appeared(target) from None
    shutil.rmtree(trash, ignore_errors=True)


@contextlib.contextmanager
def staged_dir(target: str | Path, overwrite: bool, marker: Marker) -> Iterator[Path]:
    """A hidden folder beside `target` to fill; published onto `target` (see `publish_dir`) when the
    block ends normally, removed otherwise."""
    target = Path(target)
    parent = target.resolve().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EarthgenError(f"{target}: cannot write in {parent} ({exc.strerror})") from None
    staging = temp_dir(parent, suffix=f".{target.name}.partial", label=target)
    os.chmod(staging, 0o777 & ~current_umask())  # mkdtemp's 0700 is not what the user asked for
    try:
        yield staging
        publish_dir(staging, target, overwrite, marker)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
