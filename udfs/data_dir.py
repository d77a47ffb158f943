"""Where fleetpulse keeps its state: ``$FLEETPULSE_DATA_DIR``, else ``.fleetpulse`` in the
project root (never the working directory). Here, not in ``fleetpulse.paths``, so the alert
dispatcher, which may import only ``udfs``, resolves it the same way as ``fleetpulse up``."""

from __future__ import annotations

import os
from pathlib import Path

DATA_DIR_ENV = "FLEETPULSE_DATA_DIR"
PROJECT_ROOT = Path(__file__).resolve().parent.parent


def default_data_dir() -> Path:
    return Path(os.environ.get(DATA_DIR_ENV, PROJECT_ROOT / ".fleetpulse"))
