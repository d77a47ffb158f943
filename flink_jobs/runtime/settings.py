"""Settings of the Flink jobs: declared once per job, parsed from flags and the environment.

Each job has a frozen pydantic dataclass (:class:`JobSettings` holds what every job uses;
``flink_jobs/<job>/settings.py`` adds the job's own fields). A field carries its help text,
default and constraints; :func:`parse` makes the job's command line from it, so ``--help``,
the environment variables and ``docs/configuration.md`` cannot drift from the code.

Every setting is a flag (``--checkpoint-dir``) and an environment variable
(``FLEETPULSE_CHECKPOINT_DIR``); flags override variables, which override defaults. The same
flags work embedded (``python -m flink_jobs.tracking.job ...``) and submitted (``flink run -py
flink_jobs/tracking/job.py -- ...``). A job reads only its own settings' variables (services
share one environment in docker-compose) and refuses any other flag, another job's included:
it would be silently ignored otherwise.

Pydantic *dataclasses*, not models: the operators read settings in their hot loops and a
dataclass keeps CPython's fast attribute path (a BaseModel read took 3x as long); they pickle
as plain dataclasses (cloudpickle ships them with the operators) and validate like models,
with errors that name the field, which :func:`parse` turns into the flag or variable given.
"""

from __future__ import annotations

import argparse
import difflib
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Self, TypeVar, get_args
from urllib.parse import unquote, urlsplit

from pydantic import ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic.dataclasses import dataclass
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails, PydanticCustomError

from flink_jobs.runtime.affinity import AffinityError, check_usable, parse_cpu_list
from udfs.contract import TopicNames
from udfs.geo_files import DEFAULT_REGION_PROPERTY, GeoFileError, load_regions
from udfs.kafka_properties import (
    FILE_HELP,
    OPTIONS_HELP,
    KafkaProperties,
    KafkaPropertyError,
    read_kafka_properties,
)
from udfs.record_age import DEFAULT_MAX_PING_AGE_S

ENV_PREFIX = "FLEETPULSE_"


def local_path(location: str) -> Path | None:
    """The local path a location names: a plain path, or a ``file:`` URI in any of the forms
    Flink prints (``file:/x``, ``file:///x``, ``file://localhost/x``); None for a URI of
    another filesystem (``s3://``, ``hdfs://``, ...)."""
    parts = urlsplit(location)
    if len(parts.scheme) <= 1:  # no scheme (a drive letter is not one either)
        return Path(location)
    if parts.scheme.lower() != "file":
        return None
    return Path(unquote(parts.path))


def is_remote(location: str) -> bool:
    """A URI of a filesystem other than the local one (``s3://``, ``hdfs://``, ...)."""
    return local_path(location) is None


# Unknown keywords are errors (a setting of another job passed to this one), not ignored.
SETTINGS_CONFIG = ConfigDict(extra="forbid")

MAX_PORT = 65_535
MAX_RECORD_AGE_HELP = (
    "A record whose ts lags the newest its reader has accepted by more than this is "
    "dead-lettered as STALE_TIMESTAMP (event time, not the wall clock: udfs.record_age); "
    "raise it to backfill older data."
)
BUFFER_TIMEOUT_HELP = (
    "Longest a record waits in a network buffer between operators (Flink's default is 100)."
)


@dataclass(frozen=True, config=SETTINGS_CONFIG)
class JobSettings:
    """Settings every job reads (Kafka, Redis, checkpoints, event time, the embedded
    cluster)."""

    # The job these settings are of ("tracking"), and how it is run; "" for this base.
    job: ClassVar[str] = ""
    command: ClassVar[str] = ""

    bootstrap: str = Field(
        default="127.0.0.1:9092",
        description="Kafka bootstrap servers (host:port, comma-separated).",
    )
    kafka_property: tuple[str, ...] = Field(default=(), description=OPTIONS_HELP)
    kafka_properties_file: str = Field(default="", description=FILE_HELP)
    redis_url: str = Field(default="redis://127.0.0.1:6379/0", description="Redis the job writes.")
    group_id: str = Field(
        default="fleetpulse", description="Kafka consumer group (offsets are committed under it)."
    )
    parallelism: int | None = Field(
        default=None,
        ge=1,
        description="Parallel instances of each operator (unset: the cluster's "
        "parallelism.default or flink run -p; 1 embedded).",
    )
    checkpoint_dir: str = Field(
        default="",
        description="Directory or Flink filesystem URI (s3://bucket/path, hdfs://...) of the "
        "job's checkpoints, 3 retained ('': the cluster's execution.checkpointing.dir; "
        "embedded, a scratch directory under the system's temporary one).",
    )
    checkpoint_interval_ms: int | None = Field(
        default=None,
        ge=100,
        description="Time between checkpoints (unset: the cluster's "
        "execution.checkpointing.interval; 10000 embedded or where the cluster sets none).",
    )
    restore: str = Field(
        default="",
        description="Checkpoint to start from: 'latest' (the newest under --checkpoint-dir; "
        "none there: a fresh start), a checkpoint's path, or '' (fresh start).",
    )
    allow_non_restored_state: bool = Field(
        default=False,
        description="Restore even if the checkpoint holds state of an operator this version "
        "no longer has; that state is dropped (Flink's `flink run -n`). Only for upgrades "
        "that say so.",
    )
    out_of_orderness_ms: int = Field(
        default=10_000,
        ge=0,
        description="How far (event time) a record may arrive behind the newest of its Kafka "
        "partition and still be on time: the watermark's lag.",
    )
    idle_timeout_ms: int = Field(
        default=60_000,
        ge=0,
        description="A Kafka partition without records this long stops holding the watermark "
        "back. Long, so that a partition merely slow in a catch-up is not declared idle (the "
        "watermark would overtake its records).",
    )
    partition_fetch_bytes: int = Field(
        default=65_536,
        ge=1,
        description="Kafka max.partition.fetch.bytes: small fetches keep the partitions' "
        "records interleaved.",
    )
    metrics_port: int = Field(
        default=0,
        ge=0,
        le=MAX_PORT,
        description="Port of the Prometheus reporter (0: no reporter).",
    )
    rest_port: int = Field(
        default=0,
        ge=0,
        le=MAX_PORT,
        description="Port of the embedded MiniCluster's REST API (0: any free port).",
    )
    buffer_timeout_ms: int = Field(default=100, ge=0, description=BUFFER_TIMEOUT_HELP)
    fallback_grace_ms: int = Field(
        default=30_000,
        ge=0,
        description="When the watermark stalls (no traffic), event time is taken to follow "
        "the wall clock, less this grace, so that timeouts still fire (udfs.stall_fallback).",
    )
    alert_refresh_s: int = Field(
        default=300,
        ge=0,
        description="Send the trigger of every alert still open again at least this often (and "
        "soon after a restore; the delay job also rewrites its Redis values from its state): "
        "the dispatcher resolves an incident not re-asserted within its resolve_timeout (3 "
        "refreshes by default; docs/alerting.md). 0: never (then set resolve_timeout: 0).",
    )
    max_record_age_s: int = Field(
        default=DEFAULT_MAX_PING_AGE_S, ge=1, description=MAX_RECORD_AGE_HELP
    )
    gps_topic: str = Field(
        default=TopicNames.gps, description="Kafka topic of the GPS pings (input)."
    )
    alerts_topic: str = Field(default=TopicNames.alerts, description="Kafka topic of the alerts.")
    dlq_topic: str = Field(
        default=TopicNames.dlq, description="Kafka topic of the dead letters (rejected records)."
    )
    bounded: bool = Field(
        default=False, description="Stop at the end offsets seen at start (tests, benchmarks)."
    )
    start_timestamp_ms: int | None = Field(
        default=None,
        ge=0,
        description="Read every input topic from its first record whose Kafka timestamp is at "
        "or after this (epoch ms) instead of from the group's offsets (a restore still starts "
        "from its checkpoint): fleetpulse backfill, docs/backfill.md.",
    )
    stop_timestamp_ms: int | None = Field(
        default=None,
        ge=0,
        description="A bounded run that stops each input topic before its first record whose "
        "Kafka timestamp is at or after this (epoch ms), in place of --bounded's end offsets: "
        "fleetpulse backfill, docs/backfill.md.",
    )
    restart_attempts: int | None = Field(
        default=None,
        ge=-1,
        description="Restarts, 2 s apart, after a failure before the job fails (-1: forever, "
        "as a service; 0 fails fast; unset: the cluster's restart strategy; forever "
        "embedded).",
    )
    cpus: str = Field(
        default="",
        description="CPUs (cpulist: '0', '0-1') for this process and the MiniCluster JVM it "
        "starts; '': any. One CPU keeps the interpreter lock's handoffs on one core "
        "(flink_jobs.runtime.affinity).",
    )
    regions_file: str = Field(
        default="",
        description="File of the regions trucks and shipments are counted in, any format "
        "geopandas reads (GeoJSON, GeoPackage, Shapefile): Polygon/MultiPolygon features named "
        "by --regions-property, checked at start ('': the four US Census regions, packaged; "
        "docs/geography.md).",
    )
    regions_property: str = Field(
        default=DEFAULT_REGION_PROPERTY,
        min_length=1,
        description="The property of --regions-file's features that names their region.",
    )

    @field_validator("cpus")
    @classmethod
    def _usable_cpus(cls, cpus: str) -> str:
        try:
            check_usable(parse_cpu_list(cpus))
        except AffinityError as exc:
            raise setting_error(str(exc)) from None
        return cpus

    @model_validator(mode="after")
    def _usable_kafka_properties(self) -> Self:
        """Read and check the Kafka properties now: a bad one stops the job before it starts."""
        try:
            read_kafka_properties((), self.kafka_properties_file)
        except KafkaPropertyError as exc:
            raise setting_error(str(exc), "kafka_properties_file") from None
        try:
            self.kafka_properties  # noqa: B018 - checks the flags over the file
        except KafkaPropertyError as exc:
            raise setting_error(str(exc), "kafka_property") from None
        return self

    @model_validator(mode="after")
    def _ordered_timestamps(self) -> Self:
        """An empty or reversed range would read nothing, silently."""
        start, stop = self.start_timestamp_ms, self.stop_timestamp_ms
        if start is not None and stop is not None and stop <= start:
            raise setting_error(
                f"must be after --start-timestamp-ms ({start})", "stop_timestamp_ms"
            )
        return self

    @property
    def kafka_properties(self) -> KafkaProperties:
        """The Kafka client properties: the file's, then the flags' over them."""
        return read_kafka_properties(self.kafka_property, self.kafka_properties_file)

    @model_validator(mode="after")
    def _usable_regions_file(self) -> Self:
        """Read and check the regions file now, so a bad one stops the job before it starts
        (the job's build reads it again from the same cache)."""
        if self.regions_file:
            try:
                load_regions(Path(self.regions_file), self.regions_property)
            except GeoFileError as exc:
                raise setting_error(str(exc), "regions_file") from None
        return self

    @property
    def checkpoint_path(self) -> Path | None:
        """The checkpoint directory when it is on the local filesystem (None: unset, or a
        URI of another filesystem: :attr:`checkpoint_uri`)."""
        return local_path(self.checkpoint_dir) if self.checkpoint_dir else None

    @property
    def checkpoint_uri(self) -> str | None:
        """The checkpoint directory as the URI Flink is given (None: unset)."""
        if not self.checkpoint_dir:
            return None
        path = local_path(self.checkpoint_dir)
        return self.checkpoint_dir if path is None else path.resolve().as_uri()

    @classmethod
    def from_argv(
        cls, argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None
    ) -> Self:
        """The job's settings from its command line (``sys.argv[1:]`` when None) and
        environment (``os.environ``); exits with a usage error naming the flag or variable."""
        return parse(cls, argv, environ)


@dataclass(frozen=True, config=SETTINGS_CONFIG)
class BufferedWriterSettings(JobSettings):
    """Settings of a job whose Redis writes go through :mod:`flink_jobs.runtime.buffered_writer`."""

    redis_flush_ms: int = Field(
        default=200,
        ge=1,
        description="Period of the Redis writer: writes wait in checkpointed state at most "
        "this long, then go as one batch.",
    )


def setting_error(reason: str, field: str | None = None) -> PydanticCustomError:
    """A validation error :func:`parse` reports as ``<flag> '<value>': <reason>``; ``field``
    names the field a model-wide check found wrong."""
    return PydanticCustomError("setting", "{reason}", {"reason": reason, "field": field})


Settings = TypeVar("Settings", bound=JobSettings)


def fields_of(model: type[JobSettings]) -> dict[str, FieldInfo]:
    """The model's fields in declaration order (a base's first)."""
    return model.__pydantic_fields__  # type: ignore[attr-defined,no-any-return]


def value_type(info: FieldInfo) -> Any:
    """The type a field's value has when set (``int`` for ``int | None``)."""
    args = [a for a in get_args(info.annotation) if a is not type(None)]
    return args[0] if len(args) == 1 else info.annotation


def flag_of(name: str) -> str:
    return "--" + name.replace("_", "-")


def env_name(name: str) -> str:
    return ENV_PREFIX + name.upper()


def job_title(model: type[JobSettings]) -> str:
    return f"the {model.job} job" if model.job else "this job"


def shown_default(info: FieldInfo) -> str:
    """The default as one would write it in a flag or variable."""
    value = info.default
    if value is None:
        return "unset"
    if value == ():
        return "none"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value) if value != "" else "''"


def parse(
    model: type[Settings],
    argv: Sequence[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """``model``'s settings: flags of ``argv`` over ``FLEETPULSE_*`` variables of ``environ``
    over defaults. Exits (status 2) on a flag that is not the model's or a bad value, naming
    the flag, and the variable when the value came from one."""
    environ = os.environ if environ is None else environ
    parser = build_parser(model)
    flags, unknown = parser.parse_known_args(None if argv is None else list(argv))
    if unknown:
        parser.error(unknown_message(model, unknown))
    given = vars(flags)
    raw: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for name in fields_of(model):
        if name in given:
            raw[name], sources[name] = given[name], flag_of(name)
        elif env_name(name) in environ and not (
            environ[env_name(name)] == "" and fields_of(model)[name].default is None
        ):  # an empty variable leaves an optional setting unset (the cluster's)
            text = environ[env_name(name)]
            raw[name] = repeated_env(text) if is_repeated(fields_of(model)[name]) else text
            sources[name] = f"environment variable {env_name(name)} ({flag_of(name)})"
    try:
        return model(**raw)
    except ValidationError as exc:
        parser.error("\n".join(describe(model, err, raw, sources) for err in exc.errors()))


def is_repeated(info: FieldInfo) -> bool:
    """A field given by a repeated flag (a tuple), one value per line in its variable."""
    return getattr(info.annotation, "__origin__", None) is tuple


def repeated_env(text: str) -> tuple[str, ...]:
    return tuple(line for line in text.splitlines() if line.strip())


def build_parser(model: type[JobSettings]) -> argparse.ArgumentParser:
    """One flag per field, its help showing the default and the variable; values stay text
    (the model converts and checks them, whichever source they came from)."""
    parser = argparse.ArgumentParser(
        prog=model.command or None,
        # Short: argparse prints the usage above every error, which a list of 40 flags buries.
        usage="%(prog)s [--FLAG VALUE ...] (--help lists them)",
        description=model.__doc__,
        epilog="Flags override the environment variables, which override the defaults. "
        "docs/configuration.md lists the settings of every job.",
        allow_abbrev=False,
    )
    shared = fields_of(JobSettings)
    groups = {
        True: parser.add_argument_group("settings of every job"),
        False: parser.add_argument_group(f"settings of {job_title(model)}"),
    }
    for name, info in fields_of(model).items():
        text = (info.description or "").replace("%", "%%")
        help_text = f"{text} [default: {shown_default(info)}] [env: {env_name(name)}]"
        group = groups[name in shared]
        if info.annotation is bool:
            group.add_argument(
                flag_of(name),
                action=argparse.BooleanOptionalAction,
                default=argparse.SUPPRESS,
                help=help_text,
            )
        elif is_repeated(info):
            group.add_argument(
                flag_of(name),
                action="append",
                default=argparse.SUPPRESS,
                metavar="KEY=VALUE",
                help=help_text + " (repeatable)",
            )
        else:
            metavar = getattr(value_type(info), "__name__", "VALUE").upper()
            group.add_argument(
                flag_of(name), default=argparse.SUPPRESS, metavar=metavar, help=help_text
            )
    return parser


def unknown_message(model: type[JobSettings], unknown: list[str]) -> str:
    """A flag this job does not have, say another job's: refused rather than ignored."""
    flag = next((arg.split("=", 1)[0] for arg in unknown if arg.startswith("-")), None)
    if flag is None:
        return f"unrecognized arguments: {' '.join(unknown)}"
    known = [flag_of(name) for name in fields_of(model)]
    close = difflib.get_close_matches(flag, known, n=1, cutoff=0.8)
    hint = f"; did you mean {close[0]}?" if close else ""
    return f"{flag} does not apply to {job_title(model)} (not one of its settings{hint})"


def describe(
    model: type[JobSettings], err: ErrorDetails, raw: Mapping[str, Any], sources: Mapping[str, str]
) -> str:
    """One validation error in the words of the command line: the flag (or variable) and the
    value given."""
    ctx = err.get("ctx", {})
    name = err["loc"][0] if err["loc"] else ctx.get("field")
    if not isinstance(name, str):
        return f"{job_title(model)}: {err['msg']}"
    where = sources.get(name, flag_of(name))
    value = raw.get(name, err["input"])
    kind = err["type"]
    if kind == "greater_than_equal":
        bound = "0 or more" if ctx["ge"] == 0 else f"at least {ctx['ge']}"
        return f"{where} must be {bound}, not {value}"
    if kind == "less_than_equal":
        return f"{where} must be at most {ctx['le']}, not {value}"
    if kind == "setting" and is_repeated(fields_of(model)[name]):
        return f"{where}: {ctx['reason']}"  # the values may hold secrets
    if kind == "setting":
        return f"{where} {value!r}: {ctx['reason']}"
    if kind.endswith(("_parsing", "_type")):
        expected = getattr(value_type(fields_of(model)[name]), "__name__", "value")
        if expected == "bool":
            expected += " (true/false, yes/no, 1/0)"
        return f"{where}: {value!r} is not a valid {expected}"
    return f"{where} {value!r}: {err['msg']}"


def markdown_table(model: type[JobSettings]) -> str:
    """The model's settings as a Markdown table: flag, variable, default, help."""
    rows = ["| Flag | Environment variable | Default | Description |", "| --- | --- | --- | --- |"]
    for name, info in fields_of(model).items():
        flag = f"`{flag_of(name)}`"
        if info.annotation is bool:
            flag += f", `--no-{flag_of(name)[2:]}`"
        text = (info.description or "").replace("|", "\\|")
        rows.append(f"| {flag} | `{env_name(name)}` | `{shown_default(info)}` | {text} |")
    return "\n".join(rows) + "\n"
