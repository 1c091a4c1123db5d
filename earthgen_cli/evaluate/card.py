"""`earthgen export CKPT -o DIR`: an inference-only copy of a checkpoint.

Keeps config.json and the EMA weights (what inference loads), drops `model.safetensors` and
`train_state.pt`, and with `--half` stores the floating-point parameters as float16 (they load
back into float32 modules; buffers such as latent statistics stay float32). With `--report
REPORT.json` (from `earthgen evaluate` on held-out chips) it writes `card.json`: per direction the
numbers behind the claim rule (evaluate/claims.py) and its verdict, and the list of validated
directions. The verdicts are always judged again from the report's numbers: a direction that fails
the rule is never marked validated, whatever the report file says.
This is how `earthgen_cli/weights/default/` is made.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

from earthgen_cli.errors import EarthgenError


def _judged(report_path: Path) -> dict:
    from earthgen_cli.evaluate.report import read_report

    report = read_report(Path(report_path))
    claims = report.claims()
    return {"directions": {d: c.to_json() for d, c in claims.items()},
            "evaluation": {"split": report.data.get("split"), "data": report.data.get("path"),
                           "data_sha256": report.data.get("sha256"), "chips": report.data.get("pairs"),
                           "steps": report.config.get("steps"), "seed": report.config.get("seed"),
                           "estimates": report.config.get("estimates"), "tile": report.config.get("tile"),
                           "overlap": report.config.get("overlap"), "max_chips": report.config.get("max_chips"),
                           "include_flagged": report.config.get("include_flagged"), "created": report.created}}


def card_from_report(report_path: Path | Sequence[Path]) -> dict:
    """card.json from one or more evaluation reports (e.g. the in-region test split, then the
    out-of-region holdout): the claim rule applied to each report's numbers per direction. The
    first report's entries are `directions`, the others go under `also_judged`; a direction is
    validated only when it passes in every report that scored it."""
    from earthgen_cli.evaluate.claims import RULE, judge_card

    paths = [Path(report_path)] if isinstance(report_path, (str, Path)) else [Path(p) for p in report_path]
    if not paths:
        raise EarthgenError("card_from_report needs at least one report")
    first, *others = [_judged(p) for p in paths]
    card = {"rule": RULE, "validated": [], **first, "also_judged": others}
    card["validated"] = [d for d, c in judge_card(card).items() if c.validated]
    return card


def export_model(checkpoint: Path, out: Path, half: bool = False, report: Path | Sequence[Path] | None = None,
                 overwrite: bool = False) -> Path:
    from earthgen_cli.train.checkpoint import load_model, read_info, write_model_dir

    checkpoint, out = Path(checkpoint), Path(out)
    if out.exists() and not overwrite:
        raise EarthgenError(f"{out}: exists; use --overwrite to replace it")
    if out.resolve() == checkpoint.resolve():
        raise EarthgenError(f"{out}: is the checkpoint itself; export to another directory")
    read_info(checkpoint)  # one-line errors for a broken config.json
    model, _ = load_model(checkpoint, ema=True)
    card = card_from_report(report) if report else None
    config = json.loads((checkpoint / "config.json").read_text())
    state = model.state_dict()
    if half:  # float16 parameters, float32 buffers (latent statistics)
        params = {name for name, _ in model.named_parameters()}
        state = {k: (v.half() if k in params and v.is_floating_point() else v) for k, v in state.items()}

    def add_card(tmp: Path) -> None:
        if card is not None:
            (tmp / "card.json").write_text(json.dumps(card, indent=2) + "\n")

    out.parent.mkdir(parents=True, exist_ok=True)
    return write_model_dir(out, config, {"ema": state}, extra=add_card)
