"""User-facing errors and warnings.

Anything the user can fix (a bad path, a wrong band count, an unknown modality) raises
`EarthgenError` with one line that names the file and the problem. The CLI prints it as
`earthgen: error: ...` and exits with status 2; it never shows a traceback for these. What the user
should know but that does not stop the run is an `EarthgenWarning` (`warnings.warn`; the library
never prints); the CLI shows each as one line `warning: ...`.
"""

from __future__ import annotations

import contextlib
import warnings
from typing import Callable, Iterator


class EarthgenError(Exception):
    """A user mistake or bad input: reported as one line, exit status 2."""

    exit_code = 2


class EarthgenWarning(UserWarning):
    """Something the user should know that does not stop the run, e.g. the default model is not
    validated for a direction: one line of text."""


@contextlib.contextmanager
def warnings_to(handle: Callable[[str], None]) -> Iterator[None]:
    """Inside: every EarthgenWarning, each time it is raised, goes to `handle(text)` instead of
    Python's display; other warnings are shown as before. It sets the warnings module's global
    state, so enter it from one thread at a time."""
    with warnings.catch_warnings():
        show = warnings.showwarning

        def route(message, category, filename, lineno, file=None, line=None):  # noqa: ANN001
            if issubclass(category, EarthgenWarning):
                handle(str(message))
            else:
                show(message, category, filename, lineno, file, line)

        warnings.simplefilter("always", EarthgenWarning)
        warnings.showwarning = route
        yield


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised where Python next runs so that cleanup unwinds as for Ctrl-C (a
    KeyboardInterrupt). The CLI exits with 128 + the signal number, as a shell reports it."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum
