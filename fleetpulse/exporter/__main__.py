"""`python -m fleetpulse.exporter ...`: the exporter alone, as its image runs it."""

from fleetpulse.exporter.cli import exporter

if __name__ == "__main__":
    exporter(prog_name="python -m fleetpulse.exporter")
