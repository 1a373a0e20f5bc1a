"""Errors that are the user's or the machine's, not the kit's: the CLI prints them as one line.

`vsslkit.cli.main` turns a `UsageError` (and a full disk, wherever it happens) into
`vsslkit: <input>: <problem>` with exit code 2; anything else is a bug and keeps its traceback.
A leaf module (standard library only) so every layer, `models/` included, may raise these.
"""

from __future__ import annotations

import errno
import os


class UsageError(Exception):
    """Bad input named by `subject` (a path, a flag, a setting) and what is wrong with it."""

    def __init__(self, subject: str | os.PathLike, problem: str):
        self.subject, self.problem = os.fspath(subject), problem
        super().__init__(f"{self.subject}: {problem}")

    def __reduce__(self):
        # by state, not by constructor arguments: the error crosses process boundaries intact
        # (a frame-store worker's full disk reaches the parent as the same one-line error)
        return _rebuild, (type(self), self.args, dict(self.__dict__))


def _rebuild(cls: type, args: tuple, state: dict) -> UsageError:
    exc = cls.__new__(cls)
    exc.args = args
    exc.__dict__.update(state)
    return exc


class CheckpointError(UsageError, ValueError, RuntimeError):
    """A file that is not a loadable checkpoint (truncated, corrupted, not a checkpoint at all).

    Also a `ValueError` / `RuntimeError`, so callers that caught the old errors keep working.
    """


class DiskFullError(UsageError):
    """A write failed for lack of space; what was half-written has been removed."""

    def __init__(self, subject: str | os.PathLike, what: str = ""):
        UsageError.__init__(self, subject, "no space left on device" + (f" while writing {what}" if what else "")
                            + "; nothing half-written was kept: free some space and rerun")


def is_disk_full(exc: BaseException) -> bool:
    """True for ENOSPC / EDQUOT, however deep the OSError is (torch wraps it in a RuntimeError)."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, DiskFullError):
            return True
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if isinstance(exc, RuntimeError) and "No space left on device" in str(exc):
            return True  # torch.save reports a failed write as a RuntimeError with the strerror text
        exc = exc.__cause__ or exc.__context__
    return False


def checkpoint_error(path: str | os.PathLike, exc: BaseException) -> CheckpointError:
    """A one-line `CheckpointError` for a failed `torch.load(weights_only=True)`.

    torch's own message for a refused pickle suggests `weights_only=False`, i.e. running code
    from the file; that advice is dropped here, never repeated.
    """
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if "weights_only" in first or "Weights only load failed" in first:
        reason = "holds objects other than tensors and plain data (not a vsslkit checkpoint; refused for safety)"
    elif "central directory" in first or "zip archive" in first:
        reason = "truncated or corrupted (not a complete torch zip archive)"
    else:
        reason = f"{type(exc).__name__}: {first.split('. ')[0]}"
    return CheckpointError(path, f"not a loadable checkpoint: {reason}")

