"""User-facing errors.

Anything the user can fix (a bad path, a wrong band count, an unknown modality) raises
`EarthgenError` with one line that names the file and the problem. The CLI prints it as
`earthgen: error: ...` and exits with status 2; it never shows a traceback for these.
"""


class EarthgenError(Exception):
    """A user mistake or bad input: reported as one line, exit status 2."""

    exit_code = 2


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised where Python next runs so that cleanup unwinds as for Ctrl-C (a
    KeyboardInterrupt). The CLI exits with 128 + the signal number, as a shell reports it."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum
