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

from earthgen_cli.errors import EarthgenError


def card_from_report(report_path: Path) -> dict:
    """card.json from an evaluation report: the claim rule applied to its numbers per direction."""
    from earthgen_cli.evaluate.claims import RULE
    from earthgen_cli.evaluate.report import read_report

    report = read_report(Path(report_path))
    claims = report.claims()
    return {"rule": RULE, "validated": [d for d, c in claims.items() if c.validated],
            "directions": {d: c.to_json() for d, c in claims.items()},
            "evaluation": {"split": report.data.get("split"), "data": report.data.get("path"),
                           "data_sha256": report.data.get("sha256"), "chips": report.data.get("pairs"),
                           "steps": report.config.get("steps"), "seed": report.config.get("seed"),
                           "estimates": report.config.get("estimates"), "tile": report.config.get("tile"),
                           "overlap": report.config.get("overlap"), "max_chips": report.config.get("max_chips"),
                           "include_flagged": report.config.get("include_flagged"), "created": report.created}}


def export_model(checkpoint: Path, out: Path, half: bool = False, report: Path | None = None,
                 overwrite: bool = False) -> Path:
    from earthgen_cli.train.checkpoint import load_model, read_info, write_model_dir

    checkpoint, out = Path(checkpoint), Path(out)
    if out.exists() and not overwrite:
        raise EarthgenError(f"{out}: exists; use --overwrite to replace it")
    if out.resolve() == checkpoint.resolve():
        raise EarthgenError(f"{out}: is the checkpoint itself; export to another directory")
    read_info(checkpoint)  # one-line errors for a broken config.json
    model, _ = load_model(checkpoint, ema=True)
    card = card_from_report(report) if report is not None else None
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
