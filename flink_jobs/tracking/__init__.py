"""The tracking job: `fleet.gps` -> each truck's position and status in Redis, motion alerts,
geofence transitions and region counts (``job.py`` builds it; one module per operator)."""
