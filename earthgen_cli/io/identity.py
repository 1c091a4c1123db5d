"""What a model or dataset folder is, independent of where it lies: one SHA-256 over its files.

Reports record it for the checkpoint and the data they scored, `export --report` compares it with
the checkpoint being exported, and outputs carry it in EARTHGEN_MODEL (`default@<sha256>` or
`<folder name>@<sha256>`), so a file names the exact weights that made it without recording an
install path.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Sequence

from earthgen_cli.errors import EarthgenError

MODEL_FILES = ("*.json", "*.safetensors")  # what a checkpoint's identity covers: config, weights, card


def directory_identity(path: Path, patterns: Sequence[str] = MODEL_FILES) -> dict[str, Any]:
    """Path plus one SHA-256 over the named files (relative name and content, sorted): two runs
    with the same identity read the same config, statistics and weights."""
    path = Path(path)
    if not path.exists():
        raise EarthgenError(f"{path}: no such file or directory")
    files = [path] if path.is_file() else sorted({p for pat in patterns for p in path.rglob(pat) if p.is_file()})
    digest = hashlib.sha256()
    for file in files:
        digest.update(str(file.relative_to(path) if path.is_dir() else file.name).encode() + b"\0")
        with open(file, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return {"path": str(path.resolve()), "sha256": digest.hexdigest(), "files": len(files)}


def model_label(path: str, name: str | None = None) -> str:
    """`name@<sha256>` of a checkpoint folder (name: the folder's own name by default); the
    sha256 is the one evaluation reports record for it."""
    return f"{name or Path(path).name}@{directory_identity(Path(path))['sha256']}"
