"""The evaluation report: `report.json` (every number and what produced it) and `report.md`
(tables like the papers': rows = methods, columns = direction x metric, best value in bold).

JSON has no infinity: a non-finite number (PSNR of a perfect prediction is +inf) is written as the
string "inf" / "-inf", NaN as null; `read_report` turns them back into floats.

Format 2: `psnr` is the primary PSNR on the reference chip's own range (format 1's dataset-range
PSNR is now `psnr_dataset`), `corr` and the controls `oracle-mean` / `shuffled-source` exist, and
`claims` holds the verdict of the claim rule per direction (earthgen_cli/claims.py; readers judge again from the
numbers, never from a stored verdict).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping, Sequence

from earthgen_cli import __version__
from earthgen_cli.errors import EarthgenError
from earthgen_cli.claims import ORACLE, RULE, Claim, judge_results, model_rows
from earthgen_cli.evaluate.metrics import METRIC_INFO
from earthgen_cli.io.identity import directory_identity
from earthgen_cli.io.publish import staged_file

REPORT_FORMAT = 2
REAL_PAIRS = "real pairs"  # the CAS reference row: the real target scored with its real source
SHUFFLED_PAIRS = "shuffled pairs"  # joint CAS floor: real chips paired with chips of other places
REFERENCE_ROWS = (REAL_PAIRS, SHUFFLED_PAIRS)
ARROW = {True: "↑", False: "↓"}


@dataclass(frozen=True)
class MethodScores:
    direction: str  # "sar:rgb" (source:target) or "joint:osm,rgb"
    method: str  # "unified", "mean", "luminance", "pixel-regression", "pairwise-unet", ...
    metrics: Mapping[str, float]  # name -> value (METRIC_INFO names, or others)
    n_images: int


@dataclass(frozen=True)
class Report:
    results: tuple[MethodScores, ...]
    config: Mapping[str, Any]  # the resolved evaluate options
    data: Mapping[str, Any]  # dataset identity: path, split, chip count, fingerprint
    checkpoint: Mapping[str, Any]  # checkpoint identity; empty when only baselines ran
    earthgen_version: str = __version__
    created: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))
    warnings: tuple[str, ...] = ()  # e.g. "CAS left out: no encoder for sar,rgb"

    def directions(self) -> list[str]:
        return list(dict.fromkeys(r.direction for r in self.results))

    def methods(self) -> list[str]:
        """In order of first appearance, the reference rows last."""
        found = list(dict.fromkeys(r.method for r in self.results))
        return sorted(found, key=lambda m: m in REFERENCE_ROWS)

    def claims(self) -> dict[str, Claim]:
        """The claim rule's verdict per translation direction (data["held_out"] gives chips and
        held-out scenes)."""
        return judge_results(self.results, self.data.get("held_out", {}))


def _json_number(value: float) -> float | str | None:
    value = float(value)
    if math.isnan(value):
        return None
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return value


def _from_json_number(value: float | str | None) -> float:
    if value is None:
        return math.nan
    return float(value)  # float("inf") and float("-inf") parse the strings back


def report_to_json(report: Report) -> dict[str, Any]:
    return {
        "format": REPORT_FORMAT,
        "earthgen_version": report.earthgen_version,
        "created": report.created,
        "config": dict(report.config),
        "data": dict(report.data),
        "checkpoint": dict(report.checkpoint),
        "warnings": list(report.warnings),
        "claim_rule": RULE,
        "claims": {d: c.to_json() for d, c in report.claims().items()},
        "results": [
            {"direction": r.direction, "method": r.method, "n_images": r.n_images,
             "metrics": {k: _json_number(v) for k, v in r.metrics.items()}}
            for r in report.results
        ],
    }


def _write_atomic(path: Path, text: str) -> None:
    # written beside the target and renamed, so a crash never leaves half a report
    with staged_file(path, overwrite=True) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(report: Report, path: Path) -> Path:
    _write_atomic(Path(path), json.dumps(report_to_json(report), indent=2, allow_nan=False) + "\n")
    return Path(path)


def read_report(path: Path) -> Report:
    """Load a report.json written by `write_json` (numbers back to floats, inf included)."""
    path = Path(path)
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise EarthgenError(f"{path}: not a readable report.json ({exc})") from None
    if isinstance(obj, dict) and obj.get("format") == 1:
        raise EarthgenError(f"{path}: an earthgen report of format 1 (PSNR on the dataset range, no "
                            f"oracle-mean, shuffled-source or correlation); run earthgen evaluate again")
    if not isinstance(obj, dict) or obj.get("format") != REPORT_FORMAT:
        raise EarthgenError(f"{path}: not an earthgen report (format {REPORT_FORMAT} expected)")
    results = tuple(
        MethodScores(r["direction"], r["method"],
                     {k: _from_json_number(v) for k, v in r["metrics"].items()}, int(r["n_images"]))
        for r in obj["results"]
    )
    return Report(results, obj["config"], obj["data"], obj["checkpoint"],
                  obj["earthgen_version"], obj["created"], tuple(obj.get("warnings", ())))


def check_report_checkpoint(path: Path, checkpoint: Path) -> None:
    """Refuse a report made for another model: it must record the sha256 of `checkpoint` (the
    identity evaluate records for the checkpoint it scored, io.identity)."""
    scored = read_report(path).checkpoint
    recorded = scored.get("sha256")
    if recorded is None:
        raise EarthgenError(f"{path}: scored no checkpoint ({scored.get('name') or 'baselines only'}); "
                            f"evaluate {checkpoint} with --model and pass that report")
    actual = directory_identity(Path(checkpoint))["sha256"]
    if recorded != actual:
        raise EarthgenError(f"{path}: made for another checkpoint ({scored.get('path')}, sha256 {recorded[:12]}...), "
                            f"not {checkpoint} (sha256 {actual[:12]}...); evaluate this checkpoint and pass "
                            f"that report")


def direction_label(direction: str) -> str:
    """'sar:rgb' -> 'sar→rgb'; joint directions stay as they are."""
    if direction.startswith("joint:"):
        return direction
    return direction.replace(":", "→")


def _format(value: float | None, decimals: int) -> str:
    if value is None:
        return "–"
    if math.isnan(value):
        return "n/a"
    if math.isinf(value):
        return "∞" if value > 0 else "-∞"
    text = f"{value:.{decimals}f}"
    return text[1:] if text.startswith("-") and float(text) == 0 else text  # no "-0.00"


def _best(values: list[float | None], higher: bool | None) -> float | None:
    finite = [v for v in values if v is not None and not math.isnan(v)]
    if higher is None or len(finite) < 2:
        return None  # nothing to compare
    return max(finite) if higher else min(finite)


def metric_info(name: str):
    """METRIC_INFO for a name, or for a per-modality variant like fid_rgb (joint scores): the
    base metric's direction and decimals with the modality in the label; None when unknown."""
    if name in METRIC_INFO:
        return METRIC_INFO[name]
    base, _, suffix = name.partition("_")
    if suffix and base in METRIC_INFO:
        info = METRIC_INFO[base]
        return type(info)(name, f"{info.label} {suffix}", info.higher_is_better, info.decimals)
    return None


def markdown_tables(report: Report, directions_per_table: int = 2) -> str:
    """One table per group of directions: rows = methods, columns = direction x metric."""
    directions, methods = report.directions(), report.methods()
    cell = {(r.direction, r.method): r.metrics for r in report.results}
    blocks = []
    for start in range(0, len(directions), directions_per_table):
        group = directions[start : start + directions_per_table]
        columns: list[tuple[str, str]] = []
        for d in group:
            names = dict.fromkeys(k for m in methods for k in cell.get((d, m), {})
                                  if k in METRIC_INFO or not k.endswith("_std"))
            ordered = [n for n in METRIC_INFO if n in names] + [n for n in names if n not in METRIC_INFO]
            columns += [(d, n) for n in ordered]
        header = ["method"]
        for d, n in columns:
            info = metric_info(n)
            header.append(f"{direction_label(d)} {info.label if info else n}"
                          f"{ARROW[info.higher_is_better] if info else ''}")
        rows = []
        for m in methods:
            if not any((d, m) in cell for d in group):
                continue
            rows.append([m])
        for d, n in columns:
            info = metric_info(n)
            values = [cell.get((d, row[0]), {}).get(n) for row in rows]
            best = _best(values, info.higher_is_better if info else None)
            for row, value in zip(rows, values):
                text = _format(value, info.decimals if info else 4)
                row.append(f"**{text}**" if best is not None and value == best else text)
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def claims_table(report: Report) -> str:
    """The first table: per direction, primary PSNR / corr of every model row, control and
    baseline, the chips and held-out scenes behind them, and the claim rule's verdict."""
    claims = report.claims()
    if not claims:
        return ""
    present = {r.method for r in report.results if r.direction in claims}
    order = [m for m in report.methods() if m in present and m not in REFERENCE_ROWS and m != "codec-ceiling"]
    pairs = model_rows(order)
    first = [m for m, _ in pairs] + [m for m in (ORACLE, "mean") if m in order] + [s for _, s in pairs if s in order]
    methods = first + [m for m in order if m not in first]
    cell = {(r.direction, r.method): r.metrics for r in report.results}
    header = ["direction", *methods, "chips", "scenes", "verdict"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for d, claim in claims.items():
        row = [direction_label(d)]
        for m in methods:
            metrics = cell.get((d, m))
            row.append("–" if metrics is None else
                       f"{_format(metrics.get('psnr', math.nan), 2)} / {_format(metrics.get('corr', math.nan), 2)}")
        row += [str(claim.chips), str(claim.scenes), claim.verdict]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def write_markdown(report: Report, path: Path, directions_per_table: int = 2) -> Path:
    ckpt = report.checkpoint
    data = report.data
    lines = ["# earthgen evaluation", ""]
    lines.append(f"- model: {ckpt.get('path', 'none (baselines only)')}"
                 + (f" (sha256 {str(ckpt['sha256'])[:12]})" if "sha256" in ckpt else ""))
    lines.append(f"- data: {data.get('path', '?')}, split {data.get('split', '?')}, "
                 f"{data.get('chips', '?')} chips"
                 + (f" (sha256 {str(data['sha256'])[:12]})" if "sha256" in data else ""))
    settings = ", ".join(f"{k} {','.join(v) if isinstance(v, list) else v}" for k, v in report.config.items()
                         if k in ("steps", "seed", "estimates") and v not in (None, []))
    if settings:
        lines.append(f"- sampling: {settings}")
    lines.append(f"- earthgen {report.earthgen_version}, {report.created}")
    lines += ["", "PSNR (ref range): per chip and band, data range = the reference chip's own 0.5-99.5 "
              "percentile range, raw units; corr: Pearson correlation with the reference (0 for a constant); "
              "PSNR (dataset range), SSIM, RMSE (0-255), SCC, FSIM on the unit scale (dataset percentiles -> "
              "8-bit range). ↑ higher is better, ↓ lower is better; best per column in bold; – not applicable. "
              "See docs/evaluation.md.", ""]
    for warning in report.warnings:
        lines.append(f"> warning: {warning}")
    if report.warnings:
        lines.append("")
    summary = claims_table(report)
    if summary:
        lines += ["## Claims by direction", "", f"Cells: PSNR (ref range, dB) / corr. Rule: {RULE}.", "",
                  summary, "", "## Every metric", ""]
    lines.append(markdown_tables(report, directions_per_table))
    _write_atomic(Path(path), "\n".join(lines) + "\n")
    return Path(path)
