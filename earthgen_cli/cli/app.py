"""The `earthgen` command: one Typer app, one module per subcommand.

Command modules import only typer and the standard library at module level so that
`earthgen --help` stays instant; the library is imported inside each command.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import os
import signal
import sys
import traceback
from typing import Any, Callable, Iterator, TypeVar

import typer

from earthgen_cli import __version__


def _readable_list_types() -> None:
    """Typer shows a repeatable argument's type as Python's `<list[str]>`; show `<str>...` instead,
    as GDAL-style usage lines do (`translate IN...`)."""
    from typer import core

    original = core._TyperParameter.display_type

    def display_type(self, ctx):  # noqa: ANN001
        text = original(self, ctx)
        if isinstance(text, str) and text.startswith("<list[") and text.endswith("]>"):
            return f"<{text[6:-2]}>..."
        return text

    core._TyperParameter.display_type = display_type


_readable_list_types()

app = typer.Typer(
    name="earthgen",
    help="Multi-modal remote-sensing generation (rgb, sar, nir, pan, ms, osm) over GeoTIFF scenes.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

F = TypeVar("F", bound=Callable[..., Any])


def fail(message: str, code: int = 2) -> None:
    """Print one line to stderr and leave with `code` (no traceback)."""
    typer.echo(f"earthgen: error: {message}", err=True)
    raise typer.Exit(code)


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM and SIGHUP (what timeout, systemd, Slurm and Kubernetes send) raise `Terminated`, a
    KeyboardInterrupt, so that every `finally` and `with` removes its temporary files as on Ctrl-C.
    Only the first signal raises: a second one while cleaning up does not cut the cleanup short. A
    SIGHUP that is ignored (nohup) stays ignored. Nothing to do outside the main thread."""
    from earthgen_cli.errors import Terminated

    fired = []

    def handler(signum: int, frame: Any) -> None:
        if not fired:
            fired.append(signum)
            raise Terminated(signum)

    previous = {}
    for sig in (signal.SIGTERM, getattr(signal, "SIGHUP", None)):
        if sig is None or (sig != signal.SIGTERM and signal.getsignal(sig) == signal.SIG_IGN):
            continue
        try:
            previous[sig] = signal.signal(sig, handler)
        except ValueError:  # not the main thread
            break
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def debugging() -> bool:
    """`--debug` or EARTHGEN_DEBUG=1: show tracebacks and GDAL's own messages."""
    return os.environ.get("EARTHGEN_DEBUG", "") not in ("", "0")


def describe_failure(exc: BaseException) -> str:
    """One line for an error the library did not phrase itself, naming the file when known."""
    if isinstance(exc, OSError) and exc.filename is not None:
        files = f"{exc.filename} -> {exc.filename2}" if exc.filename2 is not None else f"{exc.filename}"
        return f"{files}: {exc.strerror or exc}"
    module = type(exc).__module__.split(".")[0]
    if module == "rasterio":
        from earthgen_cli.io.raster import gdal_reason

        return f"{gdal_reason(exc)} (GDAL)"
    text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    if module in ("zarr", "numcodecs", "pyproj", "shapely", "yaml") or isinstance(exc, OSError):
        return f"{text} ({module if module != 'builtins' else type(exc).__name__})"
    return (f"unexpected {type(exc).__name__}: {text} (EARTHGEN_DEBUG=1 or earthgen --debug shows the "
            "traceback; please report it)")


def check_finite(fn: Callable[..., Any], kwargs: dict[str, Any]) -> None:
    """Every float option is a finite number (`--guidance nan` would write an all-zero output
    marked valid); the error names the option as the user typed it."""
    import math

    from earthgen_cli.errors import EarthgenError

    params = inspect.signature(fn).parameters
    for name, value in kwargs.items():
        if isinstance(value, float) and not math.isfinite(value):
            decls = getattr(params[name].default, "param_decls", None) or ()
            flag = next((d for d in decls if d.startswith("--")), "--" + name.strip("_").replace("_", "-"))
            raise EarthgenError(f"{flag} {value}: must be a finite number")


def user_errors(fn: F) -> F:
    """Turn the library's user-facing errors into one stderr line and a non-zero exit, and each of
    its warnings (EarthgenWarning) into one stderr line `warning: ...`."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from earthgen_cli.errors import EarthgenError, Terminated, warnings_to

        try:
            with terminate_as_interrupt(), warnings_to(lambda text: typer.echo(f"warning: {text}", err=True)):
                check_finite(fn, kwargs)
                return fn(*args, **kwargs)
        except EarthgenError as exc:
            if debugging():
                traceback.print_exc()
            fail(str(exc), exc.exit_code)
        except Terminated as exc:
            fail(f"terminated by {signal.Signals(exc.signum).name}", 128 + exc.signum)
        except KeyboardInterrupt:
            fail("interrupted", 130)
        except MemoryError:
            fail("out of memory; try a smaller --tile or --batch-size", 1)
        except typer.Exit:  # a command's own exit status (e.g. translate: some of several scenes failed)
            raise
        except Exception as exc:  # the file system, GDAL, zarr, or a bug: one line unless debugging
            if debugging():
                raise
            fail(describe_failure(exc), 1)

    return wrapper  # type: ignore[return-value]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"earthgen {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks and GDAL's messages (also "
                               "EARTHGEN_DEBUG=1); may also follow the command's options."),
) -> None:
    """Multi-modal remote-sensing generation over georeferenced GeoTIFF scenes."""
    if debug:
        os.environ["EARTHGEN_DEBUG"] = "1"
    quiet_libraries()


def quiet_libraries() -> None:
    """GDAL/PROJ messages (rasterio and pyproj log them) and rasterio's NotGeoreferencedWarning
    must not reach stderr before earthgen's own one-line error; shown with --debug."""
    import logging
    import warnings

    if debugging():
        return
    for name in ("rasterio", "pyproj", "fiona", "numcodecs", "zarr"):
        logger = logging.getLogger(name)
        logger.setLevel(logging.CRITICAL)
        logger.propagate = False
    warnings.filterwarnings("ignore", message="Dataset has no geotransform")  # NotGeoreferencedWarning


def _register() -> None:
    # One module per command; each exposes `command` (a plain function with typed options).
    from earthgen_cli.cli import (build_dataset, evaluate, export, extend, info, inpaint, joint, render_osm,
                                  sample_data, train, translate)

    modules = [translate, joint, inpaint, extend, info, build_dataset, render_osm, sample_data, train,
               evaluate, export]
    for module in modules:
        app.command(module.NAME, help=module.command.__doc__)(user_errors(module.command))


_register()


def _pin_malloc_thresholds() -> None:
    """Keep peak memory independent of scene size under glibc.

    glibc raises its mmap threshold each time a large block is freed, after which GDAL's
    per-block buffers and our per-tile arrays come from the heap and fragment it: resident memory
    then creeps up with the number of tiles. Fixed thresholds return large buffers to the system.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 256 * 1024)  # M_MMAP_THRESHOLD
        libc.mallopt(-1, 1024 * 1024)  # M_TRIM_THRESHOLD
    except (OSError, AttributeError):  # not glibc (musl, ...): nothing to tune
        pass


def main() -> None:
    _pin_malloc_thresholds()
    if "--debug" in sys.argv[2:]:  # after the command, where users type it: same as before it
        sys.argv.remove("--debug")
        os.environ["EARTHGEN_DEBUG"] = "1"
    try:
        app()
    except BrokenPipeError:  # `earthgen ... | head` closed the pipe: not an error of ours
        sys.stderr.close()
        sys.exit(1)
