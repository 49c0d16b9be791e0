"""Point the process at a CANDLECAST_HOME for a block (session fixtures build several)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from candlecast.settings import reset_settings


@contextmanager
def candlecast_home(root: Path) -> Iterator[Path]:
    """CANDLECAST_HOME set to ``root`` (settings reset) for the block, then restored."""
    previous = os.environ.get("CANDLECAST_HOME")
    os.environ["CANDLECAST_HOME"] = str(root)
    reset_settings()
    try:
        yield root
    finally:
        if previous is None:
            os.environ.pop("CANDLECAST_HOME", None)
        else:
            os.environ["CANDLECAST_HOME"] = previous
        reset_settings()
