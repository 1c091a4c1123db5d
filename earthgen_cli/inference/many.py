"""`earthgen translate IN... -o OUT_DIR`: many scenes, one task per scene, on local worker processes
or a dask.distributed cluster (`--scheduler`), as build-dataset distributes its scenes.

Each task is the single-scene call (`translate_job.TranslateSettings.run`) on one input, so a
scene's output is identical to what `earthgen translate IN -o OUT.tif` writes (noise is keyed by
seed and grid position, not by task). A worker process loads the model once and keeps it for its later scenes
(`_translator`). A scene that fails is reported with its one-line error and the others go on; the
summary lists every scene (done, skipped, failed). Outputs are published atomically, so with
`--skip-existing` a re-run skips every output that exists (it is complete) and redoes the rest.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
import warnings
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Sequence

from earthgen_cli.errors import EarthgenError, EarthgenWarning, warnings_to
from earthgen_cli.inference.translate_job import TranslateSettings


@dataclass(frozen=True)
class SceneJob:
    source: str
    output: str


@dataclass(frozen=True)
class ManyOptions:
    """Everything a worker needs to translate one scene the way the single-scene command would."""

    to: str
    settings: TranslateSettings  # model, sampling, tiling and seed
    source_modality: str | None = None
    bands: tuple[int, ...] | None = None
    overwrite: bool = False
    cog: bool = False
    allow_no_crs: bool = False
    max_pixels: int | None = None
    threads: int | None = None  # torch threads per worker process


@dataclass
class ManySummary:
    output_dir: str
    scenes: list[dict]
    seconds: float
    workers: int

    def counts(self) -> dict[str, int]:
        out = {"done": 0, "skipped": 0, "failed": 0}
        for s in self.scenes:
            out[s["status"]] += 1
        return out

    def to_json(self) -> str:
        return json.dumps({**asdict(self), **self.counts()}, indent=1)


def read_list(path: str) -> list[str]:
    """`--from-list FILE`: one input path a line; blank lines and `#` comments are ignored."""
    try:
        text = Path(path).read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise EarthgenError(f"--from-list {path}: cannot read ({getattr(exc, 'strerror', None) or exc})") from None
    items = [ln.strip() for ln in text.splitlines()]
    items = [x for x in items if x and not x.startswith("#")]
    if not items:
        raise EarthgenError(f"--from-list {path}: lists no input")
    return items


def plan(inputs: Sequence[str], out_dir: str, skip_existing: bool, overwrite: bool) -> tuple[list[SceneJob], list[dict]]:
    """One job per input, output OUT_DIR/<input stem>.tif; inputs whose output exists are skipped
    (`--skip-existing`) or refused up front (neither flag) before any work."""
    if "-" in inputs:
        raise EarthgenError("several inputs: stdin (-) cannot be one of them")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise EarthgenError(f"-o {out_dir}: with several inputs -o is a folder, and this is a file")
    seen: dict[str, str] = {}
    jobs, skipped = [], []
    for src in inputs:
        name = Path(src).stem + ".tif"
        if name in seen:
            raise EarthgenError(f"{src}: its output {name} is also the output of {seen[name]}; rename one")
        seen[name] = src
        target = out / name
        if target.exists() and skip_existing:
            skipped.append({"source": src, "output": str(target), "status": "skipped", "error": None, "seconds": 0.0})
        elif target.exists() and not overwrite:
            raise EarthgenError(f"{target}: exists; pass --skip-existing to keep it or --overwrite to replace it")
        else:
            jobs.append(SceneJob(src, str(target)))
    return jobs, skipped


_TRANSLATORS: dict[tuple, Any] = {}


def _translator(opts: ManyOptions):
    """The worker process's model for these options, loaded on its first scene only."""
    key = opts.settings.translator_key()
    if key not in _TRANSLATORS:
        if opts.threads:
            import torch

            torch.set_num_threads(opts.threads)
        _TRANSLATORS[key] = opts.settings.load()
    return _TRANSLATORS[key]


def translate_one(job: SceneJob, opts: ManyOptions) -> dict:
    """One scene, in whatever process runs it; never raises for a scene's own problem. Its
    EarthgenWarnings come back in the result ("warnings"), for `run_many` to raise again where the
    caller sees them (a worker process has its own stderr and warning filters). Not on a thread
    other than the main one (a dask worker's): the warnings module's state is global, so there
    they stay with the worker, as its other warnings do."""
    from earthgen_cli.inference.scene_translate import OutputOptions, SourceSpec
    from earthgen_cli.io.publish import SCENE_MAX_PIXELS

    t0 = time.perf_counter()
    said: list[str] = []
    main = threading.current_thread() is threading.main_thread()
    try:
        with warnings_to(said.append) if main else contextlib.nullcontext():
            opts.settings.run(_translator(opts), [SourceSpec(job.source, opts.source_modality, opts.bands)], opts.to,
                              OutputOptions(job.output, overwrite=opts.overwrite, cog=opts.cog,
                                            allow_no_crs=opts.allow_no_crs,
                                            max_pixels=opts.max_pixels or SCENE_MAX_PIXELS))
        status, error = "done", None
    except EarthgenError as exc:
        status, error = "failed", str(exc)
    except Exception as exc:  # a bug or a library error: reported for this scene, the others go on
        status, error = "failed", f"{job.source}: {type(exc).__name__}: {exc}"
    return {"source": job.source, "output": job.output, "status": status, "error": error,
            "seconds": round(time.perf_counter() - t0, 3), "warnings": said}


def run_many(jobs: list[SceneJob], skipped: list[dict], out_dir: str, opts: ManyOptions, workers: int | None,
             scheduler: str | None, report, quiet: bool = True) -> ManySummary:
    """Run `jobs`; `report(line)` gets a line per failed scene as it fails."""
    from tqdm import tqdm

    Path(out_dir).mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    n = 1 if scheduler else max(1, min(workers or 1, len(jobs) or 1))
    results: list[dict] = []
    with tqdm(total=len(jobs), unit="scene", disable=quiet, leave=False) as bar:
        def done(r: dict) -> None:
            for text in r.pop("warnings", ()):  # not part of the summary: raised again here, in the caller
                warnings.warn(text, EarthgenWarning, stacklevel=2)
            results.append(r)
            bar.update(1)
            if r["status"] == "failed":
                report(r["error"])

        if scheduler:
            _on_cluster(jobs, opts, scheduler, done)
        elif n == 1:
            for job in jobs:
                done(translate_one(job, opts))
        else:
            _on_local_processes(jobs, opts, n, done)
    order = {j.source: i for i, j in enumerate(jobs)}
    results.sort(key=lambda r: order[r["source"]])
    return ManySummary(out_dir, skipped + results, round(time.perf_counter() - t0, 3), n)


def worker_threads(n: int) -> int:
    """Torch threads of each of `n` local worker processes when not given: the CPU count shared out."""
    return max(1, (os.cpu_count() or 1) // n)


def _on_local_processes(jobs, opts: ManyOptions, n: int, done) -> None:
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed

    opts = replace(opts, threads=opts.threads or worker_threads(n))
    # spawn: a fresh interpreter per worker (no torch state forked from this process)
    with ProcessPoolExecutor(n, mp_context=mp.get_context("spawn")) as pool:
        for fut in as_completed([pool.submit(translate_one, j, opts) for j in jobs]):
            done(fut.result())


def _on_cluster(jobs, opts: ManyOptions, address: str, done) -> None:
    from earthgen_cli.io.cluster import connect

    client, as_completed = connect(address)
    with client:
        futures = [client.submit(translate_one, j, opts, pure=False) for j in jobs]
        for fut in as_completed(futures):
            done(fut.result())
