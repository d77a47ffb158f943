"""The Redis data model of docs/contract.md: key names, key builders and the fields they hold.

Named once here so that the writers (the tracking and delay jobs), the gateway and the tests
cannot spell a key two ways. The bookkeeping keys at the end are not in the contract: they are
the writers' own, named here because the writer, its sweeper and the tests share them.
"""

from __future__ import annotations

# -- the contract's keys ---------------------------------------------------------------------
TRUCK_PREFIX = "truck:"  # hash per truck, `truck:{truck_id}`
TRUCK_TTL_S = 3600  # a truck hash's EXPIRE, renewed on each write
TRUCKS_GEO = "trucks:geo"  # geo set: member truck_id at its latest position
POSITIONS_STREAM = "stream:positions"  # stream: one entry per accepted position change
DELAYS = "delays"  # sorted set: member `shipment:{shipment_id}`, score = delay severity 1-5
DELAY_MEMBER_PREFIX = "shipment:"
REGION_PREFIX = "region:"  # hash per region, `region:{REGION}`

# Fields of a `truck:{id}` hash, of a `stream:positions` entry (in the order the tracking job
# writes them) and of a `region:{R}` hash.
TRUCK_HASH_FIELDS = ("lat", "lng", "speed_kph", "heading", "status", "updated", "ts_ms", "region")
POSITION_FIELDS = ("truck_id", "lat", "lng", "speed_kph", "heading", "status", "ts_ms", "region")
REGION_FIELDS = (
    "total_shipments",
    "total_delay_hours",
    "active_trucks",
    "moving_trucks",
    "stopped_trucks",
)

# -- the writers' bookkeeping (not in the contract) ------------------------------------------
TRUCKS_SEEN = "trucks:seen"  # zset truck_id -> Redis second of its last write (sweeper index)
TRUCKS_REV = "trucks:rev"  # hash truck_id -> "ts:rev" of its last status change at an equal ts
DELAY_ACCOUNT_PREFIX = "delayjob:shipment:"  # hash per shipment: what it was counted as
# zset `delays` member -> wall ms the job last asserted it; `{delays}` hashes as `delays` does,
# so one script can touch both in a Redis Cluster
DELAYS_ASSERTED = "{delays}:asserted"


def truck_key(truck_id: str) -> str:
    """``truck:{truck_id}``."""
    return TRUCK_PREFIX + truck_id


def region_key(region: str) -> str:
    """``region:{REGION}``."""
    return REGION_PREFIX + region


def delay_member(shipment_id: str) -> str:
    """A shipment's member of ``delays``: ``shipment:{shipment_id}``."""
    return DELAY_MEMBER_PREFIX + shipment_id


def shipment_of_delay_member(member: str) -> str:
    """The shipment id of a ``delays`` member (the inverse of :func:`delay_member`)."""
    return member.removeprefix(DELAY_MEMBER_PREFIX)


def delay_account_key(shipment_id: str) -> str:
    """The delay job's per-shipment bookkeeping hash, ``delayjob:shipment:{shipment_id}``."""
    return DELAY_ACCOUNT_PREFIX + shipment_id
