"""A training run's folder: its mistakes found before any loading (checkpoints already there,
already finished), its config.yaml and log.jsonl (`RunLog`, shared with the evaluation's helper
fits), and log.jsonl cut back to the checkpoint a run resumes from."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable, Optional

from earthgen_cli import checkpoint as ck
from earthgen_cli.errors import EarthgenError
from earthgen_cli.train.config import TrainConfig


Echo = Optional[Callable[[str], None]]  # where a log line also goes (the CLI: stdout); None: nowhere


class RunLog:
    """config.yaml and log.jsonl of a run folder. `record` appends one JSON line (short lines, one
    append each: processes do not interleave) and hands it to `echo`; library code prints nothing."""

    def __init__(self, out: Path, echo: Echo = None) -> None:
        self.file = Path(out) / "log.jsonl"
        self.echo = echo

    def write_config(self, cfg: TrainConfig) -> None:
        import yaml

        from earthgen_cli.strict_config import to_mapping

        (self.file.parent / "config.yaml").write_text(yaml.safe_dump(to_mapping(cfg), sort_keys=False))

    def record(self, record: dict[str, Any]) -> None:
        line = json.dumps(record)
        if self.echo is not None:
            self.echo(line)
        with open(self.file, "a") as fh:
            fh.write(line + "\n")


def truncate_log(log_file: Path, start: int) -> None:
    """Drop the records of steps after `start` (written after the checkpoint resumed from, then lost):
    a resumed run logs them again, and log.jsonl holds each step once."""
    if not log_file.is_file():
        return
    keep = []
    for line in log_file.read_text().splitlines():
        try:
            step = json.loads(line).get("step", 0)
        except (json.JSONDecodeError, AttributeError):
            continue  # a line cut short by the crash
        if isinstance(step, int) and step <= start:
            keep.append(line + "\n")
    tmp = log_file.with_name(log_file.name + ".tmp")
    tmp.write_text("".join(keep))
    os.replace(tmp, log_file)


def check_run_dir(cfg: TrainConfig, resume: bool) -> None:
    """The run folder's mistakes, found before the dataset and the model are loaded (seconds)."""
    ckdir = Path(cfg.run.out_dir) / "checkpoints"
    newest = ck.newest_checkpoint(ckdir)
    if newest is None:
        return
    if not resume:
        raise EarthgenError(f"{ckdir}: already holds checkpoints; pass --resume or another run.out_dir")
    step = ck.read_info(newest).step
    if step >= cfg.optim.steps:
        raise EarthgenError(f"{ckdir}: already at step {step} of {cfg.optim.steps}; nothing to do")
