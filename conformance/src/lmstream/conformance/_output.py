"""What the target writes to stdout and stderr: captured in files per run, cut per check, never printed.

(The supervisor stops a worker whose target writes more than
:data:`~lmstream.conformance._supervisor.OUTPUT_CAP` bytes to one stream during one check.)

Supervisor side, :class:`OutputFiles`: two empty files in a private temporary directory, one per stream,
appended to by every worker of the run; :meth:`OutputFiles.text` reads what was written between two
offsets, kept to :data:`OUTPUT_LIMIT` characters (the start and the end, with the number of characters
left out in between), decoded as UTF-8 with invalid bytes replaced.

Worker side, :class:`Redirection`: file descriptors 1 and 2 point at the files (so that ``print``,
``os.write(1, ...)``, threads and child processes are all captured) and 0 at the null device;
``sys.stdout`` and ``sys.stderr`` are unbuffered text streams on fds 1 and 2. :meth:`Redirection.restore`
puts all of that back before each check, since a target may close fd 1 or replace ``sys.stdout``.
"""

from __future__ import annotations

import io
import os
import shutil
import sys
import tempfile
from typing import Final, Literal, TextIO

__all__ = ["OUTPUT_LIMIT", "OutputFiles", "Redirection", "Stream"]

OUTPUT_LIMIT: Final = 16 * 1024
"""Characters of one stream kept per check (half from its start, half from its end)."""

Stream = Literal["stdout", "stderr"]


class OutputFiles:
    """The run's two capture files (see the module docstring); :meth:`close` removes them."""

    def __init__(self) -> None:
        self.directory = tempfile.mkdtemp(prefix="lmstream-")
        self.paths: dict[Stream, str] = {
            "stdout": os.path.join(self.directory, "stdout"),
            "stderr": os.path.join(self.directory, "stderr"),
        }
        for path in self.paths.values():
            with open(path, "wb"):
                pass

    def size(self, stream: Stream) -> int:
        """How many bytes the stream holds now."""
        try:
            return os.path.getsize(self.paths[stream])
        except OSError:
            return 0

    def text(self, stream: Stream, start: int, end: int | None = None) -> str:
        """What was written from byte ``start`` to ``end`` (default: the end), bounded as documented."""
        end = self.size(stream) if end is None else end
        length = max(0, end - start)
        if not length:
            return ""
        half = OUTPUT_LIMIT // 2
        try:
            with open(self.paths[stream], "rb") as file:
                file.seek(start)
                if length <= OUTPUT_LIMIT:
                    return _decode(file.read(length))
                head = file.read(half)
                file.seek(end - half)
                tail = file.read(half)
        except OSError:
            return ""
        return f"{_decode(head)}\n[... {length - 2 * half} bytes left out ...]\n{_decode(tail)}"

    def close(self) -> None:
        """Remove the directory and the files."""
        shutil.rmtree(self.directory, ignore_errors=True)


def _decode(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


class Redirection:
    """The worker's standard streams, pointed at the capture files (see the module docstring)."""

    def __init__(self, stdout_path: str, stderr_path: str) -> None:
        flags = os.O_WRONLY | os.O_APPEND | getattr(os, "O_BINARY", 0)
        self._fds = (os.open(stdout_path, flags), os.open(stderr_path, flags))
        self._null = os.open(os.devnull, os.O_RDONLY)
        self.stdin: TextIO = open(self._null, encoding="utf-8", closefd=False)  # noqa: SIM115 - kept open
        self.stdout = _text_stream(1)
        self.stderr = _text_stream(2)
        self.stderr_file = io.FileIO(self._fds[1], "w", closefd=False)
        """A file object on the stderr capture (for :mod:`faulthandler`), whatever the target does to fd 2."""

    def restore(self) -> None:
        """Point fds 0, 1, 2 and ``sys.stdin``/``stdout``/``stderr`` (and their ``__dunder__`` twins) back."""
        os.dup2(self._null, 0)
        os.dup2(self._fds[0], 1)
        os.dup2(self._fds[1], 2)
        sys.stdin, sys.stdout, sys.stderr = self.stdin, self.stdout, self.stderr
        # The originals too: a target that prints to sys.__stdout__ must not reach the parent's stream.
        for name, stream in (
            ("__stdin__", self.stdin),
            ("__stdout__", self.stdout),
            ("__stderr__", self.stderr),
        ):
            setattr(sys, name, stream)

    def offsets(self) -> tuple[int, int]:
        """The current size of each capture file (where the next check's output starts)."""
        return os.fstat(self._fds[0]).st_size, os.fstat(self._fds[1]).st_size


def _text_stream(fd: int) -> TextIO:
    raw = io.FileIO(fd, "w", closefd=False)
    return io.TextIOWrapper(raw, encoding="utf-8", errors="backslashreplace", write_through=True)
