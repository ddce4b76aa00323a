"""How a failed entry point reports itself: a short traceback of the model's frames, then the cause.

Builders keep the last lines of stderr as the build's error summary, so the cause comes last, on
one line, in the model's terms: `build() raised ValueError: ...`,
`SyntaxError in main/model.py line 12: invalid syntax`.
"""

from __future__ import annotations

import traceback
from pathlib import Path

import mallard

MODEL_FAILURE = 1
INVALID_INPUT = 2
_MAX_FRAMES = 12
_MALLARD_DIR = Path(mallard.__file__).resolve().parent


class RuntimeFailure(Exception):
    """An entry point failed; `exit_code` is 1 for the model's fault, 2 for invalid project or input."""

    def __init__(self, message: str, *, exit_code: int = MODEL_FAILURE, details: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code
        self.details = details

    def report(self) -> str:
        """The text written to stderr: details (a traceback) first, the one-line cause last."""
        return f"{self.details.rstrip()}\n{self.message}" if self.details else self.message


def raised(what: str, exc: BaseException, *, root: Path | None = None) -> RuntimeFailure:
    """`<what> raised <Type>: <message>` with a traceback limited to the model's own frames."""
    if isinstance(exc, SyntaxError) and exc.filename:
        return RuntimeFailure(syntax_message(exc, root))
    text = " ".join(str(exc).split())
    if len(text) > 1000:
        text = text[:1000] + "…"
    cause = f"{what} raised {type(exc).__name__}" + (f": {text}" if text else "")
    return RuntimeFailure(cause, details=user_traceback(exc, root))


def syntax_message(exc: SyntaxError, root: Path | None) -> str:
    """`SyntaxError in main/model.py line 12: invalid syntax`."""
    return f"SyntaxError in {_relative(exc.filename or '?', root)} line {exc.lineno}: {exc.msg}"


def user_traceback(exc: BaseException, root: Path | None) -> str:
    """The traceback without Mallard's own frames, paths relative to the project, at most a dozen frames."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if not _is_mallard(f.filename)]
    frames = frames[-_MAX_FRAMES:]
    lines = ["Traceback (most recent call last):"]
    for frame in frames:
        lines.append(f'  File "{_relative(frame.filename, root)}", line {frame.lineno}, in {frame.name}')
        if frame.line:
            lines.append(f"    {frame.line.strip()}")
    return "\n".join(lines) if frames else ""


def _is_mallard(filename: str) -> bool:
    try:
        return Path(filename).resolve().is_relative_to(_MALLARD_DIR)
    except OSError:
        return False


def _relative(filename: str, root: Path | None) -> str:
    if root is None:
        return filename
    try:
        return Path(filename).resolve().relative_to(root.resolve()).as_posix()
    except (ValueError, OSError):
        return filename
