"""Connecting to a dask.distributed scheduler (`--scheduler tcp://host:8786`), for every command
that distributes work over scenes (build-dataset, translate with several inputs)."""

from __future__ import annotations

from typing import Any

from earthgen_cli.errors import EarthgenError


def connect(address: str) -> tuple[Any, Any]:
    """(client, as_completed) for `address`; one-line errors for a missing package or scheduler."""
    try:
        from distributed import Client, as_completed
    except ImportError:
        raise EarthgenError("--scheduler needs dask.distributed: pip install 'earthgen[cluster]'") from None
    try:
        client = Client(address, timeout="5s")
    except (OSError, TimeoutError) as exc:
        raise EarthgenError(f"--scheduler {address}: cannot reach the dask scheduler ({exc})") from None
    return client, as_completed
