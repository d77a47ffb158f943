"""Benchmark-only Flink jobs that run part of the tracking pipeline, to see where its time
goes (never deployed)."""
