"""Temporary files and folders of a run, named after their owner, and the cleaning of those a dead
run left behind (issue 12, "Nothing left behind").

An interrupted run removes what it created (SIGINT, SIGTERM and SIGHUP unwind through `finally`);
a killed one (SIGKILL, out of memory, power loss) cannot. So every temporary thing earthgen creates
is named `.earthgen-<host>-<pid>-<start>-<random><suffix>`: the host (a hash of its name, so that a
shared folder on NFS is not cleaned by another machine), the process id and the process start time
(so that a reused pid is not taken for the owner). Before creating one in a folder, a run removes
that folder's entries whose owner process is gone. Outputs stage beside their target (the same
file system, so publishing is a rename); scratch goes there too (`run_folder`), or in the system
temporary folder when the output is stdout.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import socket
import tempfile
from pathlib import Path
from typing import Iterator

from earthgen_cli.errors import EarthgenError

PREFIX = ".earthgen-"
_NAME = re.compile(r"^\.earthgen-(?P<host>[0-9a-f]{8})-(?P<pid>\d+)-(?P<start>\d+)-")


def _start_ticks(pid: int) -> int:
    """The start time of process `pid` in clock ticks since boot (Linux), 0 where unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return int(stat.rsplit(")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return 0


def _host() -> str:
    return hashlib.sha1(socket.gethostname().encode()).hexdigest()[:8]


def owner_prefix() -> str:
    """`.earthgen-<host>-<pid>-<start>-`: the name prefix of this process's temporary files."""
    pid = os.getpid()
    return f"{PREFIX}{_host()}-{pid}-{_start_ticks(pid)}-"


def _alive(pid: int, start: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        pass
    except OSError:
        return True
    now = _start_ticks(pid)
    return not (start and now and now != start)


def clean_stale(folder: str | Path) -> list[Path]:
    """Remove the temporary files and folders in `folder` whose owner process (on this host) is
    gone; return what was removed. Anything not named by `owner_prefix` is left alone."""
    removed: list[Path] = []
    host = _host()
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        m = _NAME.match(entry.name)
        if m is None or m["host"] != host or _alive(int(m["pid"]), int(m["start"])):
            continue
        path = Path(entry.path)
        try:
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(path)
            else:
                path.unlink()
        except OSError:  # another run cleaning at the same time, or not ours to remove
            continue
        removed.append(path)
    return removed


def temp_file(folder: str | Path, suffix: str = ".tmp", label: str | Path | None = None) -> Path:
    """Create an empty temporary file in `folder` (after cleaning the folder's stale ones). Its mode
    is what the umask gives a new file (mkstemp's own is 0600), as the output it becomes should."""
    folder = Path(folder)
    clean_stale(folder)
    try:
        fd, tmp = tempfile.mkstemp(prefix=owner_prefix(), suffix=suffix, dir=folder)
    except OSError as exc:
        raise EarthgenError(f"{label or folder}: cannot write in {folder} ({exc.strerror})") from None
    try:
        os.fchmod(fd, 0o666 & ~current_umask())
    finally:
        os.close(fd)
    return Path(tmp)


def make_folder(folder: str | Path) -> Path:
    """`mkdir -p` with the one-line error a user expects (a read-only or full file system)."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EarthgenError(f"{folder}: cannot create the folder ({exc.strerror})") from None
    if not os.access(folder, os.W_OK):
        raise EarthgenError(f"{folder}: folder is not writable")
    return folder


def temp_dir(folder: str | Path, suffix: str = "", label: str | Path | None = None) -> Path:
    """Create a temporary folder in `folder` (after cleaning the folder's stale ones)."""
    folder = Path(folder)
    clean_stale(folder)
    try:
        return Path(tempfile.mkdtemp(prefix=owner_prefix(), suffix=suffix, dir=folder))
    except OSError as exc:
        raise EarthgenError(f"{label or folder}: cannot write in {folder} ({exc.strerror})") from None


def current_umask() -> int:
    """The process umask, read without changing it where Linux shows it (os.umask sets it, which
    other threads could see for an instant)."""
    with contextlib.suppress(OSError, ValueError, StopIteration):
        status = Path("/proc/self/status").read_text().splitlines()
        return int(next(line for line in status if line.startswith("Umask:")).split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def scratch_folder_for(output: str | Path | None) -> Path:
    """Where a run writing `output` keeps its scratch: beside the output, or the system temporary
    folder for stdout and virtual paths."""
    if output is None or str(output) == "-" or str(output).startswith("/vsi") or "://" in str(output):
        return Path(tempfile.gettempdir())
    return Path(output).resolve().parent


@contextlib.contextmanager
def run_folder(output: str | Path | None, kind: str) -> Iterator[Path]:
    """A per-run scratch folder beside `output` (see `scratch_folder_for`), removed when the block
    ends, however it ends; one a killed run left is removed by the next run in that folder."""
    path = temp_dir(scratch_folder_for(output), suffix=f".{kind}", label=output)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
