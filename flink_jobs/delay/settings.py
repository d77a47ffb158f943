"""The delay job's settings: the shared ones, its Redis writer's and the delay patterns'
thresholds (:class:`udfs.shipment_state.DelayConfig`, :class:`udfs.truck_speed.FeedConfig`)."""

from __future__ import annotations

from typing import ClassVar, Self

from pydantic import Field, model_validator
from pydantic.dataclasses import dataclass

from flink_jobs.runtime.settings import (
    BUFFER_TIMEOUT_HELP,
    MAX_RECORD_AGE_HELP,
    SETTINGS_CONFIG,
    BufferedWriterSettings,
    fields_of,
    setting_error,
)
from udfs.contract import TopicNames
from udfs.record_age import DEFAULT_MAX_SCAN_AGE_S
from udfs.shipment_state import DelayConfig, DelayConfigError
from udfs.truck_speed import FeedConfig

_DELAY = DelayConfig()
# DelayConfig's name of a setting where it differs (its errors name DelayConfig's fields).
_DELAY_CONFIG_NAMES = {"attempts_within_s": "failed_attempts_within_s"}


@dataclass(frozen=True, config=SETTINGS_CONFIG)
class DelaySettings(BufferedWriterSettings):
    """Delay job: `fleet.scans` (and `fleet.gps` for shipment_at_risk) -> shipment delay
    alerts, the `delays` sorted set and region totals in Redis."""

    job: ClassVar[str] = "delay"
    command: ClassVar[str] = "python -m flink_jobs.delay.job"

    group_id: str = Field(
        default="fleetpulse-delay",
        description="Kafka consumer group (offsets are committed under it).",
    )
    # Alerts are the product here: 10 ms cut the deadline-to-alert p99 about 2x (docs/delay.md).
    buffer_timeout_ms: int = Field(
        default=10, ge=0, description=BUFFER_TIMEOUT_HELP + " 10 halves the alerts' p99 latency."
    )
    max_record_age_s: int = Field(
        default=DEFAULT_MAX_SCAN_AGE_S, ge=1, description=MAX_RECORD_AGE_HELP
    )
    scans_topic: str = Field(
        default=TopicNames.scans, description="Kafka topic of the scans (input)."
    )
    stuck_after_s: int = Field(
        default=_DELAY.stuck_after_s,
        description="shipment_stuck_at_hub: this long after arriving at a hub without leaving.",
    )
    no_scan_after_s: int = Field(
        default=_DELAY.no_scan_after_s, description="shipment_no_scan: this long without any scan."
    )
    attempts_within_s: int = Field(
        default=_DELAY.failed_attempts_within_s,
        description="delivery_attempts_failed: failed attempts this close together.",
    )
    at_risk_min_speed_kph: float = Field(
        default=_DELAY.at_risk_min_speed_kph,
        description="shipment_at_risk: slower than this on average, the truck is stationary "
        "and has no ETA.",
    )
    at_risk_resume_speed_kph: float = Field(
        default=_DELAY.at_risk_resume_speed_kph,
        description="shipment_at_risk: a stationary truck's shipment is at risk only if the "
        "truck would miss the promise even leaving now at this speed.",
    )
    at_risk_margin_s: int = Field(
        default=_DELAY.at_risk_margin_s,
        description="shipment_at_risk: how far the ETA may pass the promise before a warning.",
    )
    at_risk_hysteresis_s: int = Field(
        default=_DELAY.at_risk_hysteresis_s,
        description="shipment_at_risk: how far the ETA must come back under that threshold to "
        "count as on schedule again.",
    )
    at_risk_for_s: int = Field(
        default=_DELAY.at_risk_for_s,
        description="shipment_at_risk: the ETA must stay past the threshold this long (event "
        "time) before the warning triggers (Prometheus' `for`).",
    )
    at_risk_keep_firing_for_s: int = Field(
        default=_DELAY.at_risk_keep_firing_for_s,
        description="shipment_at_risk: the ETA must stay back on schedule this long (event "
        "time) before the warning resolves (Prometheus' `keep_firing_for`).",
    )
    retain_after_delivery_s: int = Field(
        default=_DELAY.retain_after_delivery_s,
        description="A delivered shipment's state is dropped this long after delivery.",
    )
    expire_after_promise_s: int = Field(
        default=_DELAY.expire_after_promise_s,
        description="A never-delivered shipment is forgotten this long after its promise or "
        "last scan, whichever is later, its incidents resolved.",
    )
    max_scans_per_shipment: int = Field(
        default=_DELAY.max_scans_per_shipment,
        description="Scans (and scan ids, for duplicates) a shipment's state holds.",
    )
    fix_interval_s: int = Field(
        default=FeedConfig().fix_interval_s,
        ge=0,
        description="shipment_at_risk: a truck's position and speed are sent to its shipments "
        "at most this often (event time).",
    )
    at_risk: bool = Field(
        default=True, description="Read fleet.gps for shipment_at_risk (--no-at-risk: scans only)."
    )

    @property
    def delay_config(self) -> DelayConfig:
        """The delay patterns' thresholds these settings set (the rest: DelayConfig's)."""
        return DelayConfig(
            stuck_after_s=self.stuck_after_s,
            no_scan_after_s=self.no_scan_after_s,
            failed_attempts_within_s=self.attempts_within_s,
            at_risk_min_speed_kph=self.at_risk_min_speed_kph,
            at_risk_resume_speed_kph=self.at_risk_resume_speed_kph,
            at_risk_margin_s=self.at_risk_margin_s,
            at_risk_hysteresis_s=self.at_risk_hysteresis_s,
            at_risk_for_s=self.at_risk_for_s,
            at_risk_keep_firing_for_s=self.at_risk_keep_firing_for_s,
            retain_after_delivery_s=self.retain_after_delivery_s,
            expire_after_promise_s=self.expire_after_promise_s,
            max_scans_per_shipment=self.max_scans_per_shipment,
        )

    @property
    def feed_config(self) -> FeedConfig:
        """The truck feed's settings (shipment_at_risk)."""
        return FeedConfig(fix_interval_s=self.fix_interval_s)

    @model_validator(mode="after")
    def _valid_delay_config(self) -> Self:
        """DelayConfig's own checks, at start-up, reported against the setting they name."""
        try:
            _ = self.delay_config
        except DelayConfigError as exc:
            named = str(exc).split(" ", 1)[0]
            field = next(
                (f for f in fields_of(type(self)) if _DELAY_CONFIG_NAMES.get(f, f) == named), None
            )
            raise setting_error(str(exc), field) from None
        return self
