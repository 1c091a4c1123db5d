"""Where build-dataset's extraction tasks (one per scene, io.scene_chips.extract_scene) run when
not in the calling process: forked local processes, or a dask cluster (--scheduler)."""

from __future__ import annotations

import os
from pathlib import Path

from earthgen_cli.io.chip_windows import ChipFilter
from earthgen_cli.io.scene_chips import SceneResult, SceneTask, extract_scene


def on_local_processes(tasks: list[SceneTask], store_path: Path, chip_filter: ChipFilter, skip_bad: bool,
                       workers: int, bar) -> list[SceneResult]:
    """Processes, not threads: reading, warping and filtering a scene holds the GIL for much of the
    time (two threads ran slower than one, 0.76x). Each process writes its own scenes' rows (whole
    zarr chunks), so the store is the same whatever the worker count. The largest scenes go first
    (longest-processing-time order: one large scene started last would leave a worker idle), and the
    workers are forked (this process holds no torch or open dataset; spawning re-imported rasterio,
    zarr and dask in each worker, seconds of the ~20 s a sample build takes)."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed

    order = sorted(range(len(tasks)), key=lambda i: -len(tasks[i].windows))
    results: list[SceneResult | None] = [None] * len(tasks)
    context = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
    threads = max(1, (os.cpu_count() or 1) // workers)  # blosc's compression threads, per worker
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_set_blosc_threads,
                             initargs=(threads,)) as pool:
        futures = {pool.submit(extract_scene, tasks[i], str(store_path), chip_filter, skip_bad): i for i in order}
        for fut in as_completed(futures):
            results[futures[fut]] = fut.result()
            bar.update(1)
    return results


def _set_blosc_threads(n: int) -> None:
    import numcodecs.blosc

    numcodecs.blosc.set_nthreads(n)


def run_distributed(delayed: list, address: str, bar) -> list[SceneResult]:
    from earthgen_cli.io.cluster import connect

    client, as_completed = connect(address)
    with client:
        futures = client.compute(delayed)
        for _ in as_completed(futures):
            bar.update(1)
        return client.gather(futures)
