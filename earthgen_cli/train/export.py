"""`earthgen export CKPT -o DIR`: an inference-only copy of a checkpoint.

Keeps config.json and the EMA weights (what inference loads), drops `model.safetensors` and
`train_state.pt`, and with `--half` stores the floating-point parameters as float16 (they load
back into float32 modules; buffers such as latent statistics stay float32). With `--report
REPORT.json` (from `earthgen evaluate` on held-out chips) it writes `card.json`: the directions
where the model beat the `mean` baseline on PSNR on at least 4 chips ("validated") and every PSNR
behind that.
This is how `earthgen_cli/weights/default/` is made.
"""

from __future__ import annotations

import json
from pathlib import Path

from earthgen_cli.errors import EarthgenError


MIN_CHIPS = 4  # a claim rests on at least this many held-out chips


def card_from_report(report_path: Path, min_chips: int = MIN_CHIPS) -> dict:
    """Validated directions (the unified model beat the mean image on PSNR, on at least
    `min_chips` held-out chips) and their PSNR per method from an evaluation report."""
    from earthgen_cli.evaluate.report import read_report

    report = read_report(Path(report_path))
    psnr: dict[str, dict[str, float]] = {}
    chips: dict[str, int] = {}
    for r in report.results:
        if ":" in r.direction and not r.direction.startswith("joint:") and "psnr" in r.metrics:
            psnr.setdefault(r.direction, {})[r.method] = round(float(r.metrics["psnr"]), 3)
            if r.method == "unified":
                chips[r.direction] = r.n_images
    validated = [d for d, row in psnr.items() if "unified" in row and "mean" in row
                 and row["unified"] > row["mean"] and chips.get(d, 0) >= min_chips]
    return {"validated": validated, "min_chips": min_chips, "scored_chips": chips,
            "evaluation": {"psnr": psnr, "split": report.data.get("split"), "data": report.data.get("path"),
                           "data_sha256": report.data.get("sha256"), "chips": report.data.get("pairs"),
                           "steps": report.config.get("steps"), "seed": report.config.get("seed"),
                           "tile": report.config.get("tile"), "overlap": report.config.get("overlap"),
                           "max_chips": report.config.get("max_chips"), "created": report.created}}


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
