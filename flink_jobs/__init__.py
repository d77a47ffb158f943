"""flink_jobs package."""
