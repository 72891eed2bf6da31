"""The data plane's layout on disk: where each table's Parquet parts and segments live.

Under the store root (see docs/architecture.md)::

    events/date=YYYY-MM-DD/part-<writer>-<n>.parquet
    ledger/date=YYYY-MM-DD/part-ledger-<writer>-<n>.parquet
    segments/<writer>-<n>.arrows, ledger-<writer>-<n>.arrows   live write-ahead segments
    control.db                                                 the embedded control store
"""

from __future__ import annotations

import ctypes
import errno
import os
import re
import shutil
import warnings
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .._base.schema import TABLES
from ..errors import TracekitWarning

__all__ = [
    "SEGMENT_SUFFIX",
    "Store",
    "TracekitWarning",
    "fsync_dir",
    "resolve_root",
    "skip_warning",
    "split_by_day",
    "table_of",
]

SEGMENT_SUFFIX = ".arrows"
_US_PER_DAY = 86_400_000_000
_PART_RE = re.compile(r"^part-[A-Za-z0-9_.-]+\.parquet$")


def resolve_root(store: str | os.PathLike[str] | None = None) -> Path:
    """The store root: ``store`` if given, else ``$TRACEKIT_HOME``, else ``./.tracekit``."""
    if store is not None and str(store) != "":
        return Path(store).expanduser()
    env = os.environ.get("TRACEKIT_HOME")
    return Path(env).expanduser() if env else Path(".tracekit")


def day_name(day: int) -> str:
    """``YYYY-MM-DD`` of a day number (days since 1970-01-01, UTC)."""
    return (datetime(1970, 1, 1) + timedelta(days=day)).strftime("%Y-%m-%d")


def split_by_day(table: pa.Table) -> list[tuple[str, pa.Table]]:
    """The table's rows grouped by the UTC day of ``ts``: [(YYYY-MM-DD, rows)]."""
    if table.num_rows == 0:
        return []
    days = pc.divide(pc.cast(table["ts"], pa.int64()), _US_PER_DAY)
    unique = pc.unique(days).to_pylist()
    if len(unique) == 1:  # the common case: no filtering, no copy
        return [(day_name(unique[0]), table)]
    return [(day_name(d), table.filter(pc.equal(days, d))) for d in sorted(unique)]


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


_RENAME_EXCHANGE = 2  # renameat2(2): swap the two paths atomically
_AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> bool:
    """Swap two existing paths in one atomic step (Linux ``renameat2`` with
    ``RENAME_EXCHANGE``); False where the system cannot."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(b))


def aside_name(target: Path) -> Path:
    """Where ``replace_directory`` moves the old directory while the new one goes in (where
    the system cannot swap them in one step)."""
    return target.with_name(f".old-{target.name}")


def fsync_tree(folder: Path) -> None:
    """Every file of ``folder`` (one level) and the folder itself, on disk."""
    for path in folder.iterdir():
        if path.is_file():
            with open(path, "rb") as fh:
                os.fsync(fh.fileno())
    fsync_dir(folder)


def replace_directory(new: Path, target: Path) -> None:
    """Put the directory ``new`` at ``target``, replacing what is there: the two are swapped
    in one atomic step where the system can (a reader finds the old or the new, never none),
    else the old is moved aside first (a crash then leaves it at ``aside_name(target)``)."""
    fsync_tree(new)
    if not target.exists():
        os.replace(new, target)
    elif _exchange(new, target):
        shutil.rmtree(new)  # the old directory, now at the temporary name
    else:
        aside = aside_name(target)
        shutil.rmtree(aside, ignore_errors=True)
        os.replace(target, aside)
        os.replace(new, target)
        shutil.rmtree(aside)
    fsync_dir(target.parent)


def skip_warning(path: Path, why: str) -> None:
    warnings.warn(
        f"skipped {path}: {why}; left in place for inspection", TracekitWarning, stacklevel=3
    )


def short_error(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:160] if text else type(exc).__name__


def table_of(path: Path) -> str:
    """The table a segment holds, from its name (``ledger-...``; events have no prefix)."""
    head = path.name.split("-", 1)[0]
    return head if head in TABLES and head != "events" else "events"


@dataclass(frozen=True)
class Store:
    """The paths of one store root."""

    root: Path

    @property
    def events_dir(self) -> Path:
        return self.root / "events"

    @property
    def segments_dir(self) -> Path:
        return self.root / "segments"

    def exists(self) -> bool:
        return self.events_dir.is_dir() or self.segments_dir.is_dir()

    def ensure(self) -> None:
        self.events_dir.mkdir(parents=True, exist_ok=True)
        self.segments_dir.mkdir(parents=True, exist_ok=True)

    def segment_path(self, writer: str, n: int, table: str = "events") -> Path:
        prefix = "" if table == "events" else f"{table}-"
        return self.segments_dir / f"{prefix}{writer}-{n:06d}{SEGMENT_SUFFIX}"

    def segment_paths(self, table: str | None = None) -> list[Path]:
        """Segments on disk, of one table if named."""
        if not self.segments_dir.is_dir():
            return []
        return sorted(
            p
            for p in self.segments_dir.iterdir()
            if p.suffix == SEGMENT_SUFFIX and (table is None or table_of(p) == table)
        )

    def parquet_paths(self, table: str = "events") -> list[Path]:
        """Every finished Parquet part of ``table`` (temporary files are not listed)."""
        base = self.root / table
        if not base.is_dir():
            return []
        return sorted(
            p
            for part in base.iterdir()
            if part.is_dir() and part.name.startswith("date=")
            for p in part.iterdir()
            if _PART_RE.match(p.name)
        )

    def readable_parquet_paths(self, table: str = "events") -> list[Path]:
        """Parquet parts whose footer reads; any other is named in one warning and skipped."""
        good = []
        for path in self.parquet_paths(table):
            try:
                meta = pq.read_metadata(path)
                if meta.schema.to_arrow_schema().get_field_index("run_id") < 0:
                    raise ValueError("not a tracekit table (no run_id column)")
            except Exception as exc:
                skip_warning(path, f"not a readable Parquet file ({short_error(exc)})")
                continue
            good.append(path)
        return good
