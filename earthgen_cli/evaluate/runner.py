"""One evaluation run: every requested direction, the unified model and the baselines, scored on
the same held-out chips by the same code.

Data come through `PairSource` (model-space chip pairs per split, plus the dataset's scaling);
the unified model through the `Translator` protocol (raw units in, raw units out), exactly as
`earthgen translate` drives it, once per estimate (`unified (sample)`, `unified (mean)`). Every
prediction is de-normalised to raw units and scored there (primary PSNR on the reference chip's own
range, correlation) and on the unit scale of the *dataset's* scaling (the papers' metrics;
metrics.py). Beside every model row: the controls of the evidence rule, `oracle-mean` (each
reference chip's own mean) and `shuffled-source` (the same model fed another scene's sources,
controls.py), which the claim rule (earthgen_cli/claims.py) turns into a verdict. Chips with nodata
in the source or the target are left out and counted: windowed metrics (SSIM, SCC, FSIM) have no
honest masked form.
"""

from __future__ import annotations

import csv
import math
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Mapping, Optional

import numpy as np
import torch

from earthgen_cli.errors import EarthgenError
from earthgen_cli.evaluate.baselines import Luminance, PairwiseUNet, PixelRegression, TrainMean, oracle_mean
from earthgen_cli.evaluate.cas import DualEncoder, cas_score
from earthgen_cli.claims import ORACLE, SHUFFLED, UNIFIED
from earthgen_cli.evaluate.controls import scene_derangement
from earthgen_cli.evaluate.fid import InceptionFeatures, fid_kid
from earthgen_cli.evaluate.contact_sheet import GridSection, write_grid
from earthgen_cli.evaluate.metrics import pixel_scores, range_floor, raw_scores, to_unit
from earthgen_cli.evaluate.pair_source import Direction, PairBatch, PairSource, chip_indices
from earthgen_cli.evaluate.report import REAL_PAIRS, MethodScores, Report, write_json, write_markdown
from earthgen_cli.inference.tiling import TileGrid
from earthgen_cli.inference.translator import TileBatch, Translator
from earthgen_cli.modalities import BandScaling

BASELINES = ("codec-ceiling", "mean", "luminance", "pixel-regression", "pairwise-unet")
# (target modality, raw target (B, C, H, W)) -> raw reconstruction through the model's codec
CodecRoundtrip = Callable[[str, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class EvaluateOptions:
    directions: tuple[Direction, ...]
    split: str = "test"
    train_split: str = "train"
    baselines: tuple[str, ...] = BASELINES
    regression_degree: int = 2
    batch_size: int = 8
    max_chips: Optional[int] = None  # per direction, spread over the split's scenes (chip_indices)
    fid: bool = True
    grid_chips: int = 3
    seed: int = 0
    tile: Optional[int] = None  # translate chips in tiles of this side (None: whole chips)
    overlap: int = 0

    def __post_init__(self) -> None:
        unknown = [b for b in self.baselines if b not in BASELINES]
        if unknown:
            raise EarthgenError(f"unknown baseline {', '.join(unknown)}; expected some of {', '.join(BASELINES)}")
        if self.batch_size < 1 or (self.max_chips is not None and self.max_chips < 1):
            raise EarthgenError("batch size and --max-chips must be at least 1")
        if self.tile is not None and not (self.tile >= 1 and 0 <= 2 * self.overlap < self.tile):
            raise EarthgenError(f"--tile {self.tile} --overlap {self.overlap}: need tile >= 1 and "
                                f"0 <= overlap < tile/2")


@dataclass(frozen=True)
class EvaluationOutput:
    results: tuple[MethodScores, ...]
    sections: tuple[GridSection, ...]
    warnings: tuple[str, ...]
    skipped_chips: Mapping[str, int]  # direction -> chips left out for nodata
    seconds: float
    direction_seconds: Mapping[str, float] = field(default_factory=dict)  # fitting + scoring
    # direction -> {"chips": scored, "scenes": held-out scenes (none of their chips in the training
    # split), "scenes_scored": all scenes scored, "flagged_left_out": flagged chips not scored}
    held_out: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    chips: tuple["ChipScore", ...] = ()  # every chip's primary scores, per direction and method


@dataclass(frozen=True)
class ChipScore:
    """One row of chips.csv: a chip's PSNR (reference range) and corr for one method, so a user can
    see which scenes and chips a direction wins or loses on."""

    direction: str
    method: str
    chip: str  # the dataset's chip id, or the chip's position among the direction's chips
    scene: str
    psnr: float
    corr: float


Predict = Callable[[PairBatch, int], torch.Tensor]  # (batch, index of its first chip) -> model space


def translator_method(translator: Translator, direction: Direction, scaling: Mapping[str, BandScaling],
                      seed: int, tile: int | None = None, overlap: int = 0) -> Predict:
    """The unified model as a method: de-normalise the source, translate in raw units, normalise
    the output back with the dataset's scaling. Chip k gets noise keyed by origin (k * 4096, 0),
    so no two chips share a noise field and a chip's noise does not depend on batching. With
    `tile` smaller than the chips, each chip is translated as `earthgen translate` translates a
    scene: overlapping tiles (origins inside the chip's noise field) blended with the same
    weights, so a model trained on small crops is scored at the size it was trained for."""
    translator.check([direction.source], direction.target)
    src_scale, tgt_scale = scaling[direction.source], scaling[direction.target]

    def run(raw: np.ndarray, valid: np.ndarray, origins: list[tuple[int, int]], gsd) -> np.ndarray:
        tile_batch = TileBatch({direction.source: raw}, valid, tuple(origins), gsd=gsd, seed=seed)
        return np.asarray(translator.translate(tile_batch, direction.target), dtype=np.float32)

    def predict(batch: PairBatch, first: int) -> torch.Tensor:
        raw = src_scale.from_model(batch.source.to(torch.float32)).numpy()
        valid = batch.valid.numpy()
        h, w = raw.shape[-2:]
        out = np.zeros((raw.shape[0], tgt_scale.bands, h, w), dtype=np.float64)
        keys = [g if math.isfinite(g) else None for g in batch.gsd]
        grid = TileGrid(h, w, tile, overlap) if tile is not None and tile < max(h, w) else TileGrid(h, w, max(h, w), 0)
        rows, cols = grid.row_weights(), grid.col_weights()
        for gsd in dict.fromkeys(keys):  # one TileBatch per ground sampling distance
            idx = [k for k, g in enumerate(keys) if g == gsd]
            for i, y in enumerate(grid.row_starts):
                for j, x in enumerate(grid.col_starts):
                    win = (slice(y, y + grid.tile_h), slice(x, x + grid.tile_w))
                    part = run(raw[idx][..., win[0], win[1]], valid[idx][..., win[0], win[1]],
                               [(4096 * (first + k) + y, x) for k in idx], gsd)
                    out[idx, :, win[0], win[1]] += part * np.outer(rows[i], cols[j])
        return tgt_scale.to_model(torch.from_numpy(out.astype(np.float32)))

    return predict


def chip_bar(total: int, label: str, show: bool):
    """A progress bar on stderr counting the chips of one direction, with rate and ETA."""
    from tqdm import tqdm

    return tqdm(total=total, desc=label, unit="chip", disable=not show, leave=False, dynamic_ncols=True)


def _training_batches(pairs: PairSource, split: str, d: Direction, batch_size: int):
    for b in pairs.batches(split, d, batch_size):
        yield b.source, b.target, b.valid


def shuffled_method(model: Predict, pairs: PairSource, split: str, d: Direction,
                    donors: Mapping[int, int]) -> Predict:
    """`model` with each chip's source (and source validity) taken from its donor chip of another
    scene; the chip keeps its own position, so its noise is the one the real run used."""
    def predict(batch: PairBatch, first: int) -> torch.Tensor:
        idx = [donors[i] for i in batch.index]
        donor = next(iter(pairs.batches(split, d, len(idx), indices=idx)))
        return model(PairBatch(donor.source, batch.target, donor.valid, donor.gsd, batch.index,
                               batch.scene, batch.chip), first)

    return predict


def unified_rows(unified: Translator | Mapping[str, Translator] | None) -> dict[str, Translator]:
    """Report row -> translator: one translator is `unified`; {"sample": t, "mean": u} are
    `unified (sample)` and `unified (mean)`."""
    if unified is None:
        return {}
    if isinstance(unified, Mapping):
        return {f"{UNIFIED} ({estimate})": t for estimate, t in unified.items()}
    return {UNIFIED: unified}


def _methods(pairs: PairSource, d: Direction, options: EvaluateOptions,
             unified: Mapping[str, Translator], unet_models: Mapping[str, PairwiseUNet],
             codec_roundtrip: CodecRoundtrip | None, notes: dict[str, list[str]]) -> dict[str, Predict]:
    methods: dict[str, Predict] = {}
    all_scenes = pairs.scenes(options.split, d)
    chosen = chip_indices(pairs.count(options.split, d), options.max_chips, all_scenes)
    order = scene_derangement([all_scenes[i] for i in chosen])
    donors = None if order is None else {chosen[k]: chosen[j] for k, j in enumerate(order)}
    for row, translator in unified.items():
        methods[row] = translator_method(translator, d, pairs.scaling, options.seed, options.tile, options.overlap)
    for row in list(methods):
        if donors is None:
            notes.setdefault(f"{SHUFFLED} left out for {{}}: the chips scored come from one scene", []).append(d.key)
            break
        methods[SHUFFLED + row[len(UNIFIED):]] = shuffled_method(methods[row], pairs, options.split, d, donors)
    target_scale = pairs.scaling[d.target]
    methods[ORACLE] = lambda b, _, s=target_scale: oracle_mean(b.target, b.valid, s)
    has_train = pairs.count(options.train_split, d) > 0
    for name in options.baselines:
        if name == "codec-ceiling":  # encode then decode the real target: C-DiffSET's upper bound
            if codec_roundtrip is None:
                notes.setdefault("codec-ceiling left out for {}: needs a checkpoint's codec", []).append(d.key)
            else:
                scale = pairs.scaling[d.target]
                methods[name] = lambda b, _, rt=codec_roundtrip, s=scale, m=d.target: s.to_model(
                    rt(m, s.from_model(b.target)))
        elif name == "luminance":
            if d.key == "rgb:pan":  # the only analytic map we have
                lum = Luminance(pairs.scaling["rgb"], pairs.scaling["pan"])
                methods[name] = lambda b, _, m=lum: m.predict(b.source)
        elif name == "pairwise-unet":
            if d.key in unet_models:
                scales = (pairs.scaling[d.source], pairs.scaling[d.target])
                methods[name] = lambda b, _, m=unet_models[d.key], s=scales: m.predict(b.source, s)
            else:
                notes.setdefault("pairwise-unet left out for {}: no trained U-Net", []).append(d.key)
        elif not has_train:
            notes.setdefault(f"{name} left out for {{}}: no training chip to fit it on "
                             f"(split {options.train_split})", []).append(d.key)
        elif name == "mean":
            mean = TrainMean.fit(_training_batches(pairs, options.train_split, d, options.batch_size),
                                 pairs.scaling[d.target])
            methods[name] = lambda b, _, m=mean: m.predict(b.source)
        elif name == "pixel-regression":
            reg = PixelRegression.fit(_training_batches(pairs, options.train_split, d, options.batch_size),
                                      degree=options.regression_degree)
            methods[name] = lambda b, _, m=reg: m.predict(b.source)
    return methods


@dataclass
class _Accumulator:
    scores: dict[str, list[torch.Tensor]] = field(default_factory=dict)
    features: list[torch.Tensor] = field(default_factory=list)
    cas: list[torch.Tensor] = field(default_factory=list)
    n: int = 0


def check_directions(pairs: PairSource, options: EvaluateOptions) -> None:
    """Fail before any work when a direction cannot be evaluated from this data."""
    for d in options.directions:
        for m in (d.source, d.target):
            if m not in pairs.scaling:
                raise EarthgenError(f"{pairs.name}: direction {d.key} needs {m}, which the dataset "
                                    f"does not hold (it has {', '.join(pairs.scaling)})")
        if pairs.count(options.split, d) == 0:
            raise EarthgenError(f"{pairs.name}: split {options.split} has no chip holding both "
                                f"{d.source} and {d.target} (direction {d.key})")


@dataclass(frozen=True)
class _DirectionScores:
    results: tuple[MethodScores, ...]
    grid_rows: tuple[tuple[np.ndarray, ...], ...]
    skipped: int  # chips with nodata
    fid_chips: int
    scenes: frozenset[str] = frozenset()  # scenes of the chips scored
    chips: tuple[ChipScore, ...] = ()


def _score_direction(pairs: PairSource, d: Direction, options: EvaluateOptions,
                     methods: Mapping[str, Predict], encoder: DualEncoder | None,
                     inception: InceptionFeatures | None, bar) -> _DirectionScores:
    acc = {name: _Accumulator() for name in methods}
    real_features: list[torch.Tensor] = []
    real_cas: list[torch.Tensor] = []  # the encoder's own score on real pairs: CAS's reference
    grid_rows: list[tuple[np.ndarray, ...]] = []
    skipped = seen = 0
    scenes: set[str] = set()
    chip_rows: list[ChipScore] = []
    src_scale, tgt_scale = pairs.scaling[d.source], pairs.scaling[d.target]
    floor = range_floor(tgt_scale)  # per band, raw units
    for batch in pairs.batches(options.split, d, options.batch_size, options.max_chips):
        full = batch.valid.flatten(1).all(dim=1)
        skipped += int((~full).sum())
        first = seen  # chip index for the noise key counts skipped chips too: stable across runs
        seen += batch.source.shape[0]
        if not full.any():
            bar.update(batch.source.shape[0])
            continue
        batch = batch.select(full.tolist())
        scenes.update(batch.scene)
        src_unit = to_unit(src_scale.from_model(batch.source), src_scale)
        tgt_raw = tgt_scale.from_model(batch.target.to(torch.float64))
        tgt_unit = to_unit(tgt_raw, tgt_scale)
        if inception is not None:
            real_features.append(inception(tgt_unit))
        if encoder is not None:
            real_cas.append(cas_score(encoder, tgt_unit, d.target, src_unit, d.source))
        names = batch.chip or tuple(str(i) for i in batch.index)
        preds = {}
        for name, predict in methods.items():
            pred_raw = tgt_scale.from_model(predict(batch, first).to(torch.float64))
            pred_unit = preds[name] = to_unit(pred_raw, tgt_scale)
            a = acc[name]
            scores = {**raw_scores(pred_raw, tgt_raw, batch.valid, floor), **pixel_scores(pred_unit, tgt_unit)}
            chip_rows += [ChipScore(d.key, name, c, sc, float(p), float(r)) for c, sc, p, r
                          in zip(names, batch.scene, scores["psnr"].tolist(), scores["corr"].tolist())]
            for metric, values in scores.items():
                a.scores.setdefault(metric, []).append(values)
            if inception is not None:
                a.features.append(inception(pred_unit))
            if encoder is not None:
                a.cas.append(cas_score(encoder, pred_unit, d.target, src_unit, d.source))
            a.n += pred_unit.shape[0]
        for k in range(min(options.grid_chips - len(grid_rows), src_unit.shape[0])):
            grid_rows.append((src_unit[k].numpy(), *(preds[n][k].numpy() for n in methods),
                              tgt_unit[k].numpy()))
        bar.update(len(full))
    if seen > 0 and seen == skipped:
        raise EarthgenError(f"{pairs.name}: no chip of split {options.split} is free of nodata for {d.key}")
    real = torch.cat(real_features) if real_features else None
    results = []
    for name, a in acc.items():
        metrics = {m: float(torch.cat(v).double().mean()) for m, v in a.scores.items()}
        if real is not None and a.n >= 2:
            metrics.update(fid_kid(real, torch.cat(a.features), seed=options.seed))
        if a.cas:
            metrics["cas"] = float(torch.cat(a.cas).double().mean())
        results.append(MethodScores(d.key, name, metrics, a.n))
    if real_cas:
        scores = torch.cat(real_cas)
        results.append(MethodScores(d.key, REAL_PAIRS, {"cas": float(scores.double().mean())}, len(scores)))
    return _DirectionScores(tuple(results), tuple(grid_rows), skipped,
                            0 if real is None else int(real.shape[0]), frozenset(scenes), tuple(chip_rows))


def evaluate(pairs: PairSource, options: EvaluateOptions,
             unified: Translator | Mapping[str, Translator] | None = None,
             unet_models: Mapping[str, PairwiseUNet] | None = None,
             codec_roundtrip: CodecRoundtrip | None = None,
             cas_encoders: Mapping[frozenset, DualEncoder] | None = None,
             inception: InceptionFeatures | None = None,
             progress: Callable[[str], None] | None = None, bars: bool = False) -> EvaluationOutput:
    """Score every direction; `inception` is required when options.fid is set. `unified` is one
    translator (row `unified`) or one per estimate ({"sample": t, "mean": u}). `bars`: a
    progress bar per direction on stderr (chips, rate, ETA)."""
    started = time.perf_counter()
    check_directions(pairs, options)
    models = unified_rows(unified)
    for d in options.directions:
        for translator in models.values():
            translator.check([d.source], d.target)  # fail before any work, not after the first direction
    if options.fid and inception is None:
        raise ValueError("options.fid needs an InceptionFeatures")
    notes: dict[str, list[str]] = {}  # warning template -> the directions it applies to
    results: list[MethodScores] = []
    sections: list[GridSection] = []
    skipped: dict[str, int] = {}
    timings: dict[str, float] = {}
    held_out: dict[str, dict[str, int]] = {}
    chips: list[ChipScore] = []
    train_scenes = set(pairs.scenes(options.train_split))
    for d in options.directions:
        direction_started = time.perf_counter()
        if progress:
            progress(f"evaluating {d.key}")
        methods = _methods(pairs, d, options, models, unet_models or {}, codec_roundtrip, notes)
        encoder = (cas_encoders or {}).get(frozenset((d.source, d.target)))
        if encoder is None:
            notes.setdefault("CAS left out for {}: no CAS encoder for the pair", []).append(d.key)
        n = pairs.count(options.split, d)
        with chip_bar(min(n, options.max_chips or n), d.key, bars) as bar:
            scored = _score_direction(pairs, d, options, methods, encoder, inception if options.fid else None, bar)
        results += scored.results
        chips += scored.chips
        skipped[d.key] = scored.skipped
        if scored.skipped:
            notes.setdefault("chips with nodata left out: {}", []).append(f"{d.key} {scored.skipped}")
        flagged = pairs.flagged(options.split, d)
        if flagged:
            notes.setdefault("flagged chips left out (--include-flagged keeps them): {}", []).append(
                f"{d.key} {flagged}")
        held_out[d.key] = {"chips": max((r.n_images for r in scored.results), default=0),
                           "scenes": len(scored.scenes - train_scenes), "scenes_scored": len(scored.scenes),
                           "flagged_left_out": flagged}
        if options.fid and scored.fid_chips < 2:
            notes.setdefault("FID/KID left out for {}: fewer than 2 chips", []).append(d.key)
        if scored.grid_rows:
            sections.append(GridSection(d.key, (f"source {d.source}", *methods, f"target {d.target}"),
                                        scored.grid_rows))
        timings[d.key] = round(time.perf_counter() - direction_started, 1)
    warnings = tuple(template.format(", ".join(keys)) for template, keys in notes.items())
    return EvaluationOutput(tuple(results), tuple(sections), warnings, skipped, time.perf_counter() - started,
                            timings, held_out, tuple(chips))


def write_outputs(out_dir: Path, output: EvaluationOutput, config: Mapping[str, Any],
                  data: Mapping[str, Any], checkpoint: Mapping[str, Any]) -> Report:
    """report.json, report.md, chips.csv and (when there are chips to show) grid.png under `out_dir`."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    data = {**data, "skipped_nodata_chips": dict(output.skipped_chips),
            "held_out": {d: dict(v) for d, v in output.held_out.items()}}
    config = {**config, "seconds": round(output.seconds, 1), "direction_seconds": dict(output.direction_seconds)}
    report = Report(output.results, config, data, checkpoint,
                    warnings=output.warnings)
    write_json(report, out_dir / "report.json")
    write_markdown(report, out_dir / "report.md")
    with open(out_dir / "chips.csv", "w", newline="") as f:
        rows = csv.writer(f)
        rows.writerow(f.name for f in fields(ChipScore))
        rows.writerows((c.direction, c.method, c.chip, c.scene, f"{c.psnr:.4f}", f"{c.corr:.4f}") for c in output.chips)
    if output.sections:
        write_grid(out_dir / "grid.png", output.sections)
    return report
