"""`earthgen evaluate` as one library call: a built dataset and a model in, a report folder out."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Callable, Sequence

from earthgen_cli.errors import EarthgenError
from earthgen_cli.evaluate import DEFAULT_MAX_CHIPS
from earthgen_cli.flow.choices import DEFAULT_STEPS
from earthgen_cli.evaluate.baselines import PairwiseUNet, load_unet
from earthgen_cli.evaluate.cas import DualEncoder, load_cas, model_dirs
from earthgen_cli.evaluate.dataset_pairs import DatasetPairs
from earthgen_cli.evaluate.report import Report, directory_identity
from earthgen_cli.evaluate.joint_eval import evaluate_joint, joint_key, joint_warnings, parse_joint
from earthgen_cli.evaluate.pair_source import Direction, parse_directions
from earthgen_cli.evaluate.runner import (
    BASELINES,
    EvaluateOptions,
    EvaluationOutput,
    check_directions,
    evaluate,
    write_outputs,
)
from earthgen_cli.inference.model_translator import ModelTranslator
from earthgen_cli.inference.tiling import resolve_tiling
from earthgen_cli.io.publish import REPORT, check_output_dir, staged_dir

UNET_BATCH = 8  # --unet-steps: chips per L1 step, fixed so that --batch-size never changes a baseline


def parse_estimates(text: str | Sequence[str]) -> tuple[str, ...]:
    """'sample,mean' -> ("sample", "mean"), each a known Estimate, no repeats."""
    from earthgen_cli.flow.generate import Estimate

    names = [p.strip() for p in (text.split(",") if isinstance(text, str) else text) if p.strip()]
    known = [e.value for e in Estimate]
    bad = [n for n in names if n not in known]
    if bad or not names or len(set(names)) != len(names):
        raise EarthgenError(f"--estimate {','.join(names) or '(none)'}: give some of {', '.join(known)}, "
                            f"each once")
    return tuple(names)


def _load_model(spec: str | None, device: str, steps: int, estimates: Sequence[str], batch_size: int | None):
    """(translators, identity): one translator for an analytic spec, else one per estimate
    ({"sample": t, "mean": u}) sharing the checkpoint's weights, `batch_size` tiles per forward."""
    if spec is None:
        return None, {}
    from earthgen_cli.inference.loader import load_translator
    from earthgen_cli.inference.translator import ANALYTIC_TRANSLATORS

    if spec in ANALYTIC_TRANSLATORS:
        return load_translator(spec), {"name": spec}
    from earthgen_cli.inference.default_model import DEFAULT, require_default_model

    path = require_default_model() if spec == DEFAULT else Path(spec)
    if not path.is_dir():
        raise EarthgenError(f"{spec}: no such model; use default, identity, luminance or a checkpoint directory")

    first = ModelTranslator.load(path, device=device, steps=steps, estimate=estimates[0], batch_size=batch_size)
    models = {estimates[0]: first}
    for estimate in estimates[1:]:
        models[estimate] = ModelTranslator(first.runtime, steps=steps, estimate=estimate,
                                           batch_size=first.batch_size)
    return models, directory_identity(path)


def _codec_roundtrip(translator):
    """encode -> decode through the checkpoint's own codec, in the checkpoint's normalisation;
    None for translators without a codec (the analytic ones)."""
    if not isinstance(translator, ModelTranslator):
        return None
    model, info = translator.model, translator.info
    import torch

    @torch.no_grad()
    def roundtrip(modality: str, raw: torch.Tensor) -> torch.Tensor:
        scale, codec = info.scaling[modality], model.codec(modality)
        x = scale.to_model(raw.to(translator.device, torch.float32))
        return scale.from_model(codec.decode(codec.encode(x))).cpu()

    return roundtrip


def _can_do(translator, d: Direction) -> bool:
    try:
        translator.check([d.source], d.target)
    except EarthgenError:
        return False
    return True


def _train_unets(pairs: DatasetPairs, options: EvaluateOptions, steps: int,
                 say: Callable[[str], None]) -> dict[str, PairwiseUNet]:
    from earthgen_cli.evaluate.fit import fit_unet

    models = {}
    for d in options.directions:
        if pairs.count(options.train_split, d) == 0:
            continue
        say(f"training pairwise-unet for {d.key} ({steps} steps)")
        models[d.key], _ = fit_unet(pairs, options.train_split, d, steps, UNET_BATCH, options.seed)
    return models


def load_unets(paths: Sequence[Path]) -> dict[str, PairwiseUNet]:
    """Every U-Net under the given folders (a U-Net directory, or a stage-unet run), by direction."""
    found: dict[str, PairwiseUNet] = {}
    for path in paths:
        for item in model_dirs(Path(path)):
            unet = load_unet(item)
            found[f"{unet.source}:{unet.target}"] = unet
    return found


def load_cas_encoders(paths: Sequence[Path]) -> dict[frozenset, DualEncoder]:
    """Every CAS encoder under the given folders (an encoder directory, or a stage-cas run)."""
    found = {}
    for path in paths:
        for item in model_dirs(Path(path)):
            encoder = load_cas(item)
            found[frozenset((encoder.config.modality_a, encoder.config.modality_b))] = encoder
    return found


def _train_cas(pairs: DatasetPairs, options: EvaluateOptions, steps: int,
               encoders: dict[frozenset, DualEncoder], say: Callable[[str], None]) -> None:
    """A CAS encoder per modality pair that has none yet, trained on the train split's real pairs."""
    from earthgen_cli.evaluate.fit import fit_cas

    for d in options.directions:
        key = frozenset((d.source, d.target))
        if key in encoders or pairs.count(options.train_split, d) == 0:
            continue
        say(f"training the CAS encoder for {d.source},{d.target} ({steps} steps)")
        # batches of 32: InfoNCE wants many negatives
        encoders[key], _ = fit_cas(pairs, options.train_split, d, steps, 32, options.seed)


def _check_joint(pairs: DatasetPairs, translator, pair: tuple[str, str], split: str) -> None:
    if not isinstance(translator, ModelTranslator):
        raise EarthgenError(f"--joint {','.join(pair)} needs a checkpoint (--model) that generates")
    for m in pair:
        if m not in pairs.scaling:
            raise EarthgenError(f"{pairs.name}: --joint {','.join(pair)} needs {m}, which the dataset does not "
                                f"hold (it has {', '.join(pairs.scaling)})")
        if m not in translator.cfg.modalities:
            raise EarthgenError(f"{translator.path}: the checkpoint never saw modality {m} (--joint {','.join(pair)})")
    if pairs.count(split, Direction(*pair)) == 0:
        raise EarthgenError(f"{pairs.name}: split {split} has no chip holding both {pair[0]} and {pair[1]} "
                            f"(--joint {','.join(pair)})")


def _with_joint(output: EvaluationOutput, pairs: DatasetPairs, translator, joint_pairs, options: EvaluateOptions,
                encoders, inception, say, bars: bool) -> EvaluationOutput:
    results, warnings, timings = list(output.results), list(output.warnings), dict(output.direction_seconds)
    for pair in joint_pairs:
        started = time.perf_counter()
        encoder = encoders.get(frozenset(pair))
        scores = evaluate_joint(pairs, pair, translator, options.split, options.batch_size, options.max_chips,
                                options.seed, inception if options.fid else None, encoder, say, options.tile, bars)
        results += scores
        warnings += joint_warnings(pair, encoders, options.fid, scores[0].n_images)
        timings[joint_key(*pair)] = round(time.perf_counter() - started, 1)
    return dataclasses.replace(output, results=tuple(results), warnings=tuple(warnings),
                               direction_seconds=timings,
                               seconds=output.seconds + sum(timings[joint_key(*p)] for p in joint_pairs))


def plan(pairs: DatasetPairs, options: EvaluateOptions, joint_pairs: Sequence[tuple[str, str]],
         estimates: Sequence[str]) -> str:
    """One line announcing the work before it starts: directions, chips each, total."""
    limit = options.max_chips
    counts = {d.key: pairs.count(options.split, d) for d in options.directions}
    counts.update({joint_key(*p): pairs.count(options.split, Direction(*p)) for p in joint_pairs})
    chips = {k: min(n, limit or n) for k, n in counts.items()}
    cap = "all chips" if limit is None else f"at most {limit} per direction, spread over scenes; --max-chips"
    rows = f" x {len(estimates)} model estimates" if len(estimates) > 1 else ""
    return (f"scoring {len(chips)} direction(s), {sum(chips.values())} chips in all ({cap}){rows}: "
            + ", ".join(f"{k} {n}" for k, n in chips.items()))


def evaluate_dataset(data: Path, out_dir: Path, *, model: str | None = None, directions: str = "all",
                     split: str = "test", baselines: Sequence[str] = BASELINES,
                     estimate: str | Sequence[str] = ("sample", "mean"), include_flagged: bool = False,
                     cas: Sequence[Path] = (), cas_steps: int = 0, unet: Sequence[Path] = (), unet_steps: int = 0,
                     joint: Sequence[str] = (), steps: int = DEFAULT_STEPS, seed: int = 0,
                     tile: int | None = None, overlap: int | None = None,
                     max_chips: int | None = DEFAULT_MAX_CHIPS, batch_size: int | None = None, fid: bool = True,
                     device: str = "auto", overwrite: bool = False,
                     say: Callable[[str], None] = lambda _: None, bars: bool = False) -> Report:
    """Score `model` (once per estimate, each beside its shuffled-source control), the controls and
    the baselines on the `split` chips of dataset `data` (any split name; flagged chips left out
    unless `include_flagged`); write report.json, report.md, chips.csv and grid.png into `out_dir` (published
    whole; --overwrite replaces only a report folder, io.publish). `say` gets the plan (directions,
    chips per direction, total) before any work; `bars`: a progress bar per direction on stderr.
    `max_chips`: chips scored per direction, shared out between the scenes (None: every chip)."""
    started = time.perf_counter()
    out_dir = Path(out_dir)
    check_output_dir(out_dir, overwrite, REPORT, [data, model, *cas, *unet])
    estimates = parse_estimates(estimate)
    pairs = DatasetPairs(data, include_flagged=include_flagged)
    models, checkpoint = _load_model(model, device, steps, estimates, batch_size)
    # the one translator for what needs a single one: direction checks, codec, joint, tiling
    translator = next(iter(models.values())) if isinstance(models, dict) else models
    # chips per step = the checkpoint's forward batch (its device's default without --batch-size)
    if batch_size is None:
        batch_size = (translator.batch_size if translator is not None else None) or 8
    left_out: list[str] = []
    if directions.strip() == "none":
        if not joint:
            raise EarthgenError("--directions none leaves nothing to evaluate without --joint")
        chosen = ()
    elif directions.strip() == "all":
        chosen = tuple(pairs.pairs_with_chips(split))
        if translator is not None:  # "all" means all the data holds *and* the model can do
            kept = tuple(d for d in chosen if _can_do(translator, d))
            left_out = [d.key for d in chosen if d not in kept]
            chosen = kept
        if not chosen:
            raise EarthgenError(f"{data}: split {split} has no chip holding two modalities"
                                + (" that the model knows" if left_out else ""))
    else:
        chosen = parse_directions(directions)
        for d in chosen if translator is not None else ():
            translator.check([d.source], d.target)
    if left_out:
        say(f"left out (the model cannot do them): {', '.join(left_out)}")
    # the model's own tile (the crop side it was trained on), else whole chips
    tile, overlap = resolve_tiling(tile, overlap, translator.native_tile if translator is not None else None, None)
    options = EvaluateOptions(chosen, split=split, baselines=tuple(baselines), batch_size=batch_size,
                              max_chips=max_chips, fid=fid, seed=seed, tile=tile, overlap=overlap)
    check_directions(pairs, options)
    inception = None
    if fid:  # before any training, so a missing Inception file fails at once
        from earthgen_cli.evaluate.fid import InceptionFeatures

        inception = InceptionFeatures()
    joint_pairs = [parse_joint(text) for text in joint]
    for pair in joint_pairs:
        _check_joint(pairs, translator, pair, split)
    encoders = load_cas_encoders(cas)
    if cas_steps > 0:
        _train_cas(pairs, options, cas_steps, encoders, say)
    unets = load_unets(unet) if "pairwise-unet" in options.baselines else {}
    if "pairwise-unet" in options.baselines and unet_steps > 0:
        missing = dataclasses.replace(options, directions=tuple(d for d in options.directions if d.key not in unets))
        unets.update(_train_unets(pairs, missing, unet_steps, say) if missing.directions else {})
    say(plan(pairs, options, joint_pairs, list(models) if isinstance(models, dict) else []))
    output = evaluate(pairs, options, unified=models, unet_models=unets,
                      codec_roundtrip=_codec_roundtrip(translator), cas_encoders=encoders,
                      inception=inception, progress=say, bars=bars)
    if joint_pairs:
        output = _with_joint(output, pairs, translator, joint_pairs, options, encoders, inception, say, bars)
    config = {"directions": [d.key for d in chosen], "split": split, "baselines": list(options.baselines),
              "model": model, "estimates": list(models) if isinstance(models, dict) else None,
              "include_flagged": include_flagged, "steps": steps, "seed": seed, "max_chips": max_chips, "tile": tile, "overlap": overlap,
              "batch_size": batch_size, "fid": fid, "unet_steps": unet_steps, "cas_steps": cas_steps,
              "cas": [str(p) for p in cas], "unet": [str(p) for p in unet],
              "joint": [",".join(p) for p in joint_pairs], "directions_left_out": left_out, "total_seconds": round(time.perf_counter() - started, 1)}
    counts = {d.key: pairs.count(split, d) for d in chosen}
    counts.update({joint_key(*p): pairs.count(split, Direction(*p)) for p in joint_pairs})
    data_id = {**directory_identity(Path(data), ("dataset.json", "chips.csv")), "split": split,
               "chips": pairs.split_size(split), "pairs": counts}
    with staged_dir(out_dir, overwrite, REPORT) as staging:
        report = write_outputs(staging, output, config, data_id, checkpoint)
    return report
