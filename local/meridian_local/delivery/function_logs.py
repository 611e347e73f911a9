"""Where a local process's functions write: their JSON logs and EMF metrics go to a log file.

In Lambda a function's stdout (Powertools' JSON log lines, its EMF metric documents) goes to its
CloudWatch log group. Locally :meth:`FunctionLogs.install` points ``sys.stdout`` at a file under the
platform's state directory (one per component, named in ``make run``'s summary) before the function
is imported, so the loggers and metrics it creates write there, and keeps the terminal for the
process's own concise lines (``terminal``).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TextIO


class FunctionLogs:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.terminal: TextIO = sys.stdout
        self._file: TextIO | None = None

    def install(self) -> FunctionLogs:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.path.open("a", buffering=1, encoding="utf-8")  # line buffered: whole lines
        self.terminal = sys.stdout
        sys.stdout = self._file
        return self

    def say(self, line: str) -> None:
        print(line, file=self.terminal, flush=True)

    def flush(self) -> None:
        if self._file is not None:
            self._file.flush()
