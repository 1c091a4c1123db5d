"""The claim rule: when a direction counts as validated. One function (`judge`) used by the
report's verdict column, by `earthgen export --report` (card.json) and by the default model's
warning, so the three can never disagree. Plain Python on numbers, below both of its users: evaluate
writes the verdicts (report.json, card.json), inference judges the default model's card.json again
before it warns.

A direction is validated when, on at least MIN_CHIPS held-out chips from at least MIN_SCENES scenes
that have no chip in the training split, the unified model (the best of its estimates; the verdict
names which) beats `oracle-mean` on the primary PSNR (reference chip's own range), beats
`shuffled-source` (the same estimate fed another scene's sources) by at least MIN_GAIN_DB, and has a
mean correlation with the reference of at least MIN_CORR. See docs/evaluation.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

MIN_CHIPS = 8
MIN_SCENES = 2
MIN_GAIN_DB = 1.0
MIN_CORR = 0.3
UNIFIED = "unified"
ORACLE = "oracle-mean"
SHUFFLED = "shuffled-source"
RULE = (f"validated when, on >= {MIN_CHIPS} held-out chips from >= {MIN_SCENES} scenes not seen in "
        f"training, the model (best of its estimates) beats {ORACLE} on PSNR (reference chip's own "
        f"0.5-99.5 percentile range), beats {SHUFFLED} by >= {MIN_GAIN_DB:g} dB PSNR and has mean "
        f"correlation >= {MIN_CORR:g} with the reference")


def model_rows(methods: Iterable[str]) -> list[tuple[str, str]]:
    """(model row, its shuffled-source row) for every estimate: 'unified (mean)' ->
    'shuffled-source (mean)', plain 'unified' -> 'shuffled-source'."""
    return [(m, SHUFFLED + m[len(UNIFIED):]) for m in methods
            if m == UNIFIED or m.startswith(UNIFIED + " (")]


@dataclass(frozen=True)
class Claim:
    direction: str
    validated: bool
    estimate: str | None  # the model row judged: the passing one, else the best by PSNR
    failed: tuple[str, ...]  # the conditions that failed, e.g. "corr 0.12 < 0.3"
    chips: int
    scenes: int  # held-out scenes: no chip of theirs in the training split
    psnr: Mapping[str, float] = field(default_factory=dict)  # method -> primary PSNR
    corr: Mapping[str, float] = field(default_factory=dict)  # method -> mean correlation

    @property
    def verdict(self) -> str:
        which = f" ({self.estimate})" if self.estimate else ""
        if self.validated:
            return f"validated{which}"
        return f"not validated{which}: " + "; ".join(self.failed)

    def to_json(self) -> dict[str, Any]:
        def number(v: float) -> float | str | None:
            return None if math.isnan(v) else (("inf" if v > 0 else "-inf") if math.isinf(v) else round(v, 4))

        return {"validated": self.validated, "verdict": self.verdict, "estimate": self.estimate,
                "failed": list(self.failed), "chips": self.chips, "scenes": self.scenes,
                "psnr": {k: number(v) for k, v in self.psnr.items()},
                "corr": {k: number(v) for k, v in self.corr.items()}}


def _failures(model: str, shuffled: str, psnr: Mapping[str, float], corr: Mapping[str, float],
              chips: int, scenes: int) -> list[str]:
    failed = []
    nan = math.nan
    p = psnr.get(model, nan)
    if ORACLE not in psnr:
        failed.append(f"no {ORACLE} score")
    elif not p > psnr[ORACLE]:
        failed.append(f"PSNR {p:.2f} <= {ORACLE} {psnr[ORACLE]:.2f}")
    if shuffled not in psnr:
        failed.append(f"no {SHUFFLED} score")
    elif not p - psnr[shuffled] >= MIN_GAIN_DB:
        failed.append(f"gain over {SHUFFLED} {p - psnr[shuffled]:.2f} dB < {MIN_GAIN_DB:g}")
    c = corr.get(model, nan)
    if not c >= MIN_CORR:
        failed.append(f"corr {c:.2f} < {MIN_CORR:g}")
    if chips < MIN_CHIPS:
        failed.append(f"{chips} chips < {MIN_CHIPS}")
    if scenes < MIN_SCENES:
        failed.append(f"{scenes} held-out scenes < {MIN_SCENES}")
    return failed


def judge(direction: str, psnr: Mapping[str, float], corr: Mapping[str, float], chips: int,
          scenes: int) -> Claim:
    """The claim rule for one direction from its numbers: primary PSNR and mean correlation per
    method (report rows), chips scored and held-out scenes."""
    psnr = {k: float(v) for k, v in psnr.items()}
    corr = {k: float(v) for k, v in corr.items()}
    candidates = [(m, _failures(m, s, psnr, corr, chips, scenes)) for m, s in model_rows(psnr)]
    if not candidates:
        return Claim(direction, False, None, ("no unified model score",), chips, scenes, psnr, corr)

    def rank(item):  # passing first, then fewer failures, then higher PSNR (NaN last)
        p = psnr.get(item[0], math.nan)
        return (len(item[1]), -p if not math.isnan(p) else math.inf)

    model, failed = min(candidates, key=rank)
    return Claim(direction, not failed, model, tuple(failed), chips, scenes, psnr, corr)


def judge_results(results: Iterable[Any], held_out: Mapping[str, Mapping[str, Any]]) -> dict[str, Claim]:
    """A claim per translation direction of a report: `results` are MethodScores (direction, method,
    metrics), `held_out` the report's data["held_out"] ({direction: {"chips", "scenes"}})."""
    psnr: dict[str, dict[str, float]] = {}
    corr: dict[str, dict[str, float]] = {}
    for r in results:
        if ":" not in r.direction or r.direction.startswith("joint:"):
            continue
        psnr.setdefault(r.direction, {})
        corr.setdefault(r.direction, {})
        if "psnr" in r.metrics:
            psnr[r.direction][r.method] = float(r.metrics["psnr"])
        if "corr" in r.metrics:
            corr[r.direction][r.method] = float(r.metrics["corr"])
    claims = {}
    for d in psnr:
        info = held_out.get(d, {})
        claims[d] = judge(d, psnr[d], corr[d], int(info.get("chips", 0)), int(info.get("scenes", 0)))
    return claims


def judge_card_entry(direction: str, entry: Mapping[str, Any]) -> Claim:
    """The rule applied again to the numbers a card.json stores for a direction (never to its
    stored verdict)."""
    def numbers(obj) -> dict[str, float]:
        return {k: math.nan if v is None else float(v) for k, v in (obj or {}).items()}

    return judge(direction, numbers(entry.get("psnr")), numbers(entry.get("corr")),
                 int(entry.get("chips", 0)), int(entry.get("scenes", 0)))


def judge_card(card: Mapping[str, Any]) -> dict[str, Claim]:
    """key -> Claim for a card.json: the rule applied again to each `directions` entry, and a
    direction stays validated only if it also passes in every `also_judged` report that scored it
    (e.g. the out-of-region holdout); their failures are named with the report's split."""
    from dataclasses import replace

    entries = card.get("directions")
    if not isinstance(entries, dict):
        return {}
    claims = {str(k): judge_card_entry(str(k), v) for k, v in entries.items() if isinstance(v, dict)}
    for other in card.get("also_judged") or []:
        split = (other.get("evaluation") or {}).get("split") or "another split"
        for k, v in (other.get("directions") or {}).items():
            if k in claims and isinstance(v, dict):
                c = judge_card_entry(str(k), v)
                if not c.validated:
                    claims[k] = replace(claims[k], validated=False,
                                        failed=claims[k].failed + tuple(f"{split}: {f}" for f in c.failed))
    return claims
