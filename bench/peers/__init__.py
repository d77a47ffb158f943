"""The peers the tracking job is compared with, on the same input in the same run: a plain
Python consumer (:mod:`bench.peers.plain`) and a Quix Streams application
(:mod:`bench.peers.quix`). Both run the same ``udfs`` logic and the same guarded Redis script
as the job (``flink_jobs.tracking.redis_writer.RedisTruckWriter``)."""
