"""``python -m alerting run ...``"""

from alerting.cli import alerts

if __name__ == "__main__":
    alerts(prog_name="python -m alerting")
