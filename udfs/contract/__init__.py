"""The shared contract (docs/contract.md) in code: topics, Redis keys and record schemas.

* :mod:`.topics`: Kafka topic names (configurable, the contract's as defaults) and specs.
* :mod:`.redis_keys`: Redis key names and builders, and the fields of the hashes and stream.
* :mod:`.records`: the Kafka records as msgspec Structs; :mod:`.websocket`: the gateway's frames.
* :mod:`.schemas`: JSON Schema generated from those (``python -m udfs.contract --write DIR``).

Pure Python like the rest of ``udfs``: no Flink, Kafka or Redis client is imported here.
"""

from udfs.contract.redis_keys import (
    DELAY_ACCOUNT_PREFIX,
    DELAY_MEMBER_PREFIX,
    DELAYS,
    DELAYS_ASSERTED,
    POSITION_FIELDS,
    POSITIONS_STREAM,
    REGION_FIELDS,
    REGION_PREFIX,
    TRUCK_HASH_FIELDS,
    TRUCK_PREFIX,
    TRUCK_TTL_S,
    TRUCKS_GEO,
    TRUCKS_REV,
    TRUCKS_SEEN,
    delay_account_key,
    delay_member,
    region_key,
    shipment_of_delay_member,
    truck_key,
)
from udfs.contract.topics import DEFAULT_TOPICS, TopicNames, TopicSpec, contract_topics

__all__ = [
    "DEFAULT_TOPICS",
    "DELAYS",
    "DELAY_ACCOUNT_PREFIX",
    "DELAYS_ASSERTED",
    "DELAY_MEMBER_PREFIX",
    "POSITIONS_STREAM",
    "POSITION_FIELDS",
    "REGION_FIELDS",
    "REGION_PREFIX",
    "TRUCKS_GEO",
    "TRUCKS_REV",
    "TRUCKS_SEEN",
    "TRUCK_HASH_FIELDS",
    "TRUCK_PREFIX",
    "TRUCK_TTL_S",
    "TopicNames",
    "TopicSpec",
    "contract_topics",
    "delay_account_key",
    "delay_member",
    "region_key",
    "shipment_of_delay_member",
    "truck_key",
]
