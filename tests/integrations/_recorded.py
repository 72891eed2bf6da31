"""What an integration recorded, read back through SQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import tracekit
from tracekit.testing import Recording


def recorded_events(store: Path, kinds: tuple[str, ...], order: str) -> list[dict[str, Any]]:
    """The store's events of ``kinds`` (all when none), flushed first, in ``order``."""
    assert tracekit.flush(30)
    where = f"WHERE kind IN ({', '.join(repr(k) for k in kinds)})" if kinds else ""
    return Recording(store).rows(f"SELECT * FROM events {where} ORDER BY {order}")
