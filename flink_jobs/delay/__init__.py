"""The delay job: `fleet.scans` (and `fleet.gps` for ``shipment_at_risk``) -> shipment delay
alerts, the `delays` sorted set and region totals in Redis (``job.py`` builds it; one module
per operator)."""
