"""Launchers for the real services fleetpulse runs on one machine: Kafka (KRaft), Redis, Flink."""
