"""``python -m simulator simulate ...`` / ``python -m simulator replay FILE``."""

from simulator.cli import group

group()
