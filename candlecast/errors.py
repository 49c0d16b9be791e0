"""The two kinds of failure every candlecast command distinguishes.

Each CLI maps them to one ``error:`` line and an exit code
(:func:`candlecast.cli.errors`): :class:`BadInput` exits 2 (the user can fix the
call or the data it names), :class:`Failure` exits 1 (something the command
depends on failed). Stage exceptions subclass one of them.
"""

from __future__ import annotations

from pathlib import Path

EXIT_BAD_INPUT = 2
EXIT_FAILURE = 1


class BadInput(Exception):  # noqa: N818 (a kind of failure, subclassed by errors)
    """The request, a file or the stored data is not what the command needs (exit 2)."""


class Failure(Exception):  # noqa: N818 (a kind of failure, subclassed by errors)
    """A dependency (exchange, store, model) failed while the command ran (exit 1)."""


class CorruptFileError(Failure):
    """A stored file cannot be read; the message names it and what to do about it."""

    def __init__(self, path: Path | str, cause: object, remedy: str) -> None:
        self.path = Path(path)
        super().__init__(f"{self.path} is corrupt or unreadable ({cause}); {remedy}")
