"""`card.json` of `earthgen export CKPT --report REPORT.json -o DIR` (the copy itself is
`checkpoint.export_model`).

From evaluation reports (`earthgen evaluate` on held-out chips): per direction the numbers behind
the claim rule (earthgen_cli/claims.py) and its verdict, and the list of validated directions. The
verdicts are always judged again from the report's numbers: a direction that fails the rule is
never marked validated, whatever the report file says.
"""

from __future__ import annotations

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
    from earthgen_cli.claims import RULE, judge_card

    paths = [Path(report_path)] if isinstance(report_path, (str, Path)) else [Path(p) for p in report_path]
    if not paths:
        raise EarthgenError("card_from_report needs at least one report")
    first, *others = [_judged(p) for p in paths]
    card = {"rule": RULE, "validated": [], **first, "also_judged": others}
    card["validated"] = [d for d, c in judge_card(card).items() if c.validated]
    return card
