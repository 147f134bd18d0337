"""The one exception type for problems with a user's input.

Raised where the problem is found; the CLI alone turns it into one line and exit code 2.
Programming errors are not wrapped: they keep their traceback.
"""

from __future__ import annotations

from pathlib import Path


class GtaInputError(Exception):
    """A user-facing input problem: which file, which line, what is wrong and what to do."""

    def __init__(
        self,
        message: str,
        path: str | Path | None = None,
        line: int | None = None,
        hint: str | None = None,
    ) -> None:
        self.message = message
        self.path = str(path) if path is not None else None
        self.line = line
        self.hint = hint
        super().__init__(self.one_line())

    def one_line(self) -> str:
        where = ""
        if self.path:
            where = self.path + (f":{self.line}" if self.line is not None else "") + ": "
        text = where + self.message
        if self.hint:
            text += f" ({self.hint})"
        return " ".join(text.split())
