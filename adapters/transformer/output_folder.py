"""An output folder that is never left half-written.

:func:`atomic` writes a file under a temporary name beside it and renames it into place, so a
run killed while writing leaves the old file or the new one, never a truncated one (every file
of a report goes through it).

:func:`restoring` undoes what a run created in its output folder when it fails before its first
result: a run that cannot start leaves no ``settings.json`` behind, and a folder that already
held results is left untouched.

:func:`check_writable` refuses, before anything loads, an output folder that cannot be created
or written to, and leaves nothing behind. A file of the folder that cannot be read back
(truncated by a full disk, garbled by hand) is a :class:`DamagedFile`, whose message names the
file and what to delete.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from scmnet.errors import InvalidArgument, InvalidDataset

__all__ = ["DamagedFile", "atomic", "check_writable", "restoring", "write_atomic"]


class DamagedFile(InvalidDataset):
    """A file of an output folder that cannot be read back: truncated, not valid JSON, without
    the keys or arrays it should hold, or with arrays of the wrong shape.

    The message names the file, what is wrong and what to delete to go on.

    Examples
    --------
    >>> e = DamagedFile("reports/hydra/measures/00003.npz is truncated; delete it")
    >>> isinstance(e, ValueError)
    True
    """


@contextlib.contextmanager
def atomic(path: Path) -> Iterator[Path]:
    """A temporary path beside ``path`` (same suffix) to write to; renamed to ``path`` when
    the block ends without error, removed otherwise.

    Examples
    --------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> with atomic(folder / "table.csv") as tmp:
    ...     _ = tmp.write_text("a,b\\n")
    >>> sorted(p.name for p in folder.iterdir())
    ['table.csv']
    """
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (see :func:`atomic`)."""
    with atomic(path) as tmp:
        tmp.write_text(text)


def _entries(folder: Path) -> set[Path]:
    return set(folder.rglob("*")) if folder.is_dir() else set()


def _is_result(path: Path) -> bool:
    """A finished per-prompt result (``measures/NNNNN.npz``; not a half-written ``.tmp.npz``)."""
    return path.parent.name == "measures" and path.suffix == ".npz" and ".tmp" not in path.name


@contextlib.contextmanager
def restoring(out: Path) -> Iterator[None]:
    """Leave ``out`` as it was found if the block fails before it writes its first result.

    On any exception (an interrupt included) with no new ``measures/*.npz`` in ``out``, every
    file and folder the block created there is removed -- ``out`` itself, and the folders
    above it, if the block created them -- and the exception propagates. Once a result exists
    the run is resumable, and nothing is removed.
    """
    out = Path(out)
    created_from = out
    while not created_from.parent.exists() and created_from.parent != created_from:
        created_from = created_from.parent
    existed = out.exists()
    before = _entries(out)
    try:
        yield
    except BaseException:
        new = _entries(out) - before
        if not any(_is_result(p) for p in new):
            if not existed:
                shutil.rmtree(created_from, ignore_errors=True)
            else:
                for path in sorted(new, key=lambda p: len(p.parts), reverse=True):
                    if path.is_dir() and not path.is_symlink():
                        shutil.rmtree(path, ignore_errors=True)
                    else:
                        path.unlink(missing_ok=True)
        raise


def check_writable(out: Path, *, option: str = "--out") -> None:
    """Refuse an output folder that is a file, cannot be created or cannot be written to.

    The folder (and any missing folder above it) is created and a probe file written there;
    everything this creates is removed again, so a run refused later leaves ``out`` as it was.

    Raises
    ------
    InvalidArgument
        Naming ``out``, what is in the way, and what to do.

    Examples
    --------
    >>> folder = Path(tempfile.mkdtemp())
    >>> _ = (folder / "notes.txt").write_text("")
    >>> check_writable(folder / "new" / "report")
    >>> sorted(p.name for p in folder.iterdir())  # nothing left behind
    ['notes.txt']
    >>> try:
    ...     check_writable(folder / "notes.txt" / "report")
    ... except InvalidArgument as e:
    ...     print(str(e).split(": ", 1)[1][:60])
    it cannot be created, as notes.txt above it is a file, not a
    """
    out = Path(out)
    where = f"{option} {str(out)!r}"
    if out.exists() and not out.is_dir():
        raise InvalidArgument(f"{where} is a file; give a directory for the report")
    missing = out
    while not missing.parent.exists() and missing.parent != missing:
        missing = missing.parent
    above = missing.parent if not out.exists() else out
    if not out.exists() and not above.is_dir():
        raise InvalidArgument(
            f"{where}: it cannot be created, as {above.name or str(above)} above it is a file, "
            f"not a folder; give a path under a folder"
        )
    created = None if out.exists() else missing
    try:
        out.mkdir(parents=True, exist_ok=True)
        handle, probe = tempfile.mkstemp(prefix=".scmnet-probe-", dir=out)
        os.close(handle)
        os.unlink(probe)
    except OSError as e:
        raise InvalidArgument(
            f"{where} is not writable ({e.strerror or e}: {e.filename or out}); give a folder "
            f"you can write to, or change its permissions"
        ) from e
    finally:
        if created is not None:
            shutil.rmtree(created, ignore_errors=True)
