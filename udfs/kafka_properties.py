"""Kafka client properties given by the user, once, for every client of the project.

Users write Java client property names (Kafka's own documentation; Flink's Kafka tables take
them as they are), as repeated ``--kafka-property KEY=VALUE`` flags and/or a Java-style
``.properties`` file (``--kafka-properties-file``, ``FLEETPULSE_KAFKA_PROPERTIES_FILE``); a
flag overrides the file. Two conveniences every client understands:

* ``sasl.username`` / ``sasl.password``: the Java clients get the ``sasl.jaas.config`` made
  from them (SCRAM or PLAIN login module, from ``sasl.mechanism``);
* ``ssl.truststore.location``: a PEM file of CA certificates (the one form librdkafka and
  kafka-python read too; the Java clients get ``ssl.truststore.type=PEM``).

:meth:`KafkaProperties.java`, :meth:`~KafkaProperties.librdkafka` and
:meth:`~KafkaProperties.kafka_python` translate them for each client library. Pure: the
caller reads the file. Values are secrets as far as logs go: :meth:`~KafkaProperties.redacted`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

PROPERTY_FLAG = "--kafka-property"
FILE_FLAG = "--kafka-properties-file"
FILE_ENV = "FLEETPULSE_KAFKA_PROPERTIES_FILE"

# Set by the project from its own flags; a property would silently fight them.
RESERVED = {"bootstrap.servers": "--bootstrap"}
SENSITIVE = ("password", "jaas", "secret", "token", "key")

KAFKA_PACKAGE = "org.apache.kafka"
SCRAM_MODULE = "common.security.scram.ScramLoginModule"
PLAIN_MODULE = "common.security.plain.PlainLoginModule"
JAAS_OPTION = re.compile(r'(\w+)\s*=\s*"((?:[^"\\]|\\.)*)"')

# Java name -> kafka-python keyword, for the names that map one to one.
KAFKA_PYTHON_NAMES = {
    "security.protocol": "security_protocol",
    "sasl.mechanism": "sasl_mechanism",
    "sasl.username": "sasl_plain_username",
    "sasl.password": "sasl_plain_password",
    "ssl.truststore.location": "ssl_cafile",
    "client.id": "client_id",
    "request.timeout.ms": "request_timeout_ms",
}


class KafkaPropertyError(ValueError):
    """A property or properties file that cannot be used; the message names where it came
    from (the flag, or the file and line)."""


def parse_pair(text: str, source: str = PROPERTY_FLAG) -> tuple[str, str]:
    """``KEY=VALUE`` (the value may hold ``=``); whitespace around the key is dropped."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise KafkaPropertyError(f"{source} {text.split('=')[0]!r}: expected KEY=VALUE")
    return key.strip(), value


def parse_properties_text(text: str, source: str) -> dict[str, str]:
    """A Java ``.properties`` file's entries: ``#``/``!`` comments, ``key=value``,
    ``key: value`` or ``key value``, a trailing backslash continuing a line, and the escapes
    ``\\t \\n \\\\ \\= \\:``. ``source`` names the file in errors (with the line)."""
    result: dict[str, str] = {}
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        start = i + 1
        line = lines[i].lstrip()
        i += 1
        if not line or line[0] in "#!":
            continue
        while _continues(line) and i < len(lines):
            line = line[:-1] + lines[i].lstrip()
            i += 1
        if _continues(line):
            line = line[:-1]
        match = re.match(r"((?:[^=:\s\\]|\\.)+)\s*[=:\s]?\s*(.*)$", line, re.DOTALL)
        if match is None:
            raise KafkaPropertyError(f"{source} line {start}: cannot read {line[:40]!r}")
        result[_unescape(match.group(1))] = _unescape(match.group(2))
    return result


def _continues(line: str) -> bool:
    """A line ending in an odd number of backslashes goes on on the next one."""
    return (len(line) - len(line.rstrip("\\"))) % 2 == 1


def _unescape(text: str) -> str:
    escapes = {"t": "\t", "n": "\n", "r": "\r", "f": "\f"}
    return re.sub(r"\\(.)", lambda m: escapes.get(m.group(1), m.group(1)), text)


@dataclass(frozen=True, repr=False)
class KafkaProperties:
    """The user's properties, by their Java names, checked on construction."""

    values: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for key in self.values:
            if key in RESERVED:
                raise KafkaPropertyError(
                    f"Kafka property {key!r} is set by {RESERVED[key]}, not as a property"
                )
        kind = self.values.get("ssl.truststore.type", "PEM")
        if kind.upper() != "PEM":
            raise KafkaPropertyError(
                f"Kafka property ssl.truststore.type={kind!r}: only PEM is read by every "
                "client (librdkafka and kafka-python take no JKS or PKCS12 truststore)"
            )

    @classmethod
    def load(
        cls, pairs: Iterable[str] = (), file_text: str | None = None, file_name: str = ""
    ) -> KafkaProperties:
        """The file's properties (``file_text`` as read from ``file_name``), then the flags'
        ``KEY=VALUE`` pairs over them."""
        values: dict[str, str] = {}
        if file_text is not None:
            values.update(parse_properties_text(file_text, f"{FILE_FLAG} {file_name}"))
        for pair in pairs:
            key, value = parse_pair(pair)
            values[key] = value
        return cls(values)

    def __bool__(self) -> bool:
        return bool(self.values)

    def __repr__(self) -> str:  # settings objects get logged: never show a secret
        return f"KafkaProperties({self.redacted()})"

    def redacted(self) -> dict[str, str]:
        """The properties for a log line: values of secret-looking keys replaced."""
        return {
            k: "<redacted>" if any(s in k.lower() for s in SENSITIVE) else v
            for k, v in self.values.items()
        }

    def credentials(self) -> tuple[str | None, str | None]:
        """The SASL user name and password: given directly, or read from sasl.jaas.config."""
        user, password = self.values.get("sasl.username"), self.values.get("sasl.password")
        jaas = self.values.get("sasl.jaas.config")
        if jaas and (user is None or password is None):
            options = {k: re.sub(r"\\(.)", r"\1", v) for k, v in JAAS_OPTION.findall(jaas)}
            user = user if user is not None else options.get("username")
            password = password if password is not None else options.get("password")
        return user, password

    def java(self, kafka_package: str = KAFKA_PACKAGE) -> dict[str, str]:
        """For the Java clients (Flink's Kafka tables, the dead-letter sink).

        ``kafka_package``: where the client's classes are; Flink's SQL connector jar relocates
        them, so a login module of ``org.apache.kafka`` is not found there ("No LoginModule
        found"): a ``sasl.jaas.config`` naming one is rewritten to ``kafka_package``."""
        out = {k: v for k, v in self.values.items() if k not in ("sasl.username", "sasl.password")}
        user, password = self.credentials()
        if "sasl.jaas.config" not in out and user is not None and password is not None:
            mechanism = self.values.get("sasl.mechanism", "GSSAPI").upper()
            module = SCRAM_MODULE if mechanism.startswith("SCRAM") else PLAIN_MODULE
            out["sasl.jaas.config"] = (
                f'{kafka_package}.{module} required username="{_jaas_quote(user)}" '
                f'password="{_jaas_quote(password)}";'
            )
        elif "sasl.jaas.config" in out and kafka_package != KAFKA_PACKAGE:
            jaas = out["sasl.jaas.config"].lstrip()
            if jaas.startswith(KAFKA_PACKAGE + "."):
                out["sasl.jaas.config"] = kafka_package + jaas[len(KAFKA_PACKAGE) :]
        if "ssl.truststore.location" in out:
            out["ssl.truststore.type"] = "PEM"
        return out

    def librdkafka(self) -> dict[str, str]:
        """For confluent-kafka (librdkafka) clients: the dispatcher, gateway, exporter,
        simulator."""
        out: dict[str, str] = {}
        for key, value in self.values.items():
            if key in ("sasl.jaas.config", "ssl.truststore.type"):
                continue
            if key == "sasl.mechanism":
                out["sasl.mechanisms"] = value
            elif key == "ssl.truststore.location":
                out["ssl.ca.location"] = value
            elif key == "ssl.endpoint.identification.algorithm":
                out[key] = value or "none"
            else:
                out[key] = value
        user, password = self.credentials()
        if user is not None:
            out["sasl.username"] = user
        if password is not None:
            out["sasl.password"] = password
        return out

    def kafka_python(self) -> dict[str, Any]:
        """Keyword arguments for kafka-python clients (admin, ``fleetpulse dlq``); a property
        it has no equivalent of is refused rather than dropped."""
        out: dict[str, Any] = {}
        for key, value in self.values.items():
            if key in ("sasl.jaas.config", "ssl.truststore.type", "sasl.username", "sasl.password"):
                continue
            if key == "ssl.endpoint.identification.algorithm":
                out["ssl_check_hostname"] = value.lower() == "https"
            elif key in KAFKA_PYTHON_NAMES:
                name = KAFKA_PYTHON_NAMES[key]
                out[name] = int(value) if name.endswith("_ms") else value
            else:
                raise KafkaPropertyError(
                    f"Kafka property {key!r} has no equivalent in kafka-python (used by this "
                    f"command); it takes only {', '.join(sorted(KAFKA_PYTHON_NAMES))}"
                )
        user, password = self.credentials()
        if user is not None:
            out["sasl_plain_username"] = user
        if password is not None:
            out["sasl_plain_password"] = password
        return out


def _jaas_quote(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


NONE = KafkaProperties()


def read_kafka_properties(pairs: Iterable[str] = (), file: str = "") -> KafkaProperties:
    """:meth:`KafkaProperties.load` with the file at ``file`` ('' for none) read here; an
    unreadable file is a :class:`KafkaPropertyError` naming the flag."""
    text = None
    if file:
        try:
            with open(file, encoding="utf-8") as f:
                text = f.read()
        except OSError as exc:
            raise KafkaPropertyError(f"{FILE_FLAG} {file!r}: {exc.strerror or exc}") from None
    return KafkaProperties.load(pairs, text, file)


PROPERTY_ENV = "FLEETPULSE_KAFKA_PROPERTY"
OPTIONS_HELP = (
    "Kafka client property KEY=VALUE by its Java name (security.protocol, sasl.mechanism, "
    "sasl.username, sasl.password, ssl.truststore.location of a PEM file, ...), repeatable; "
    f"overrides {FILE_FLAG}. In the environment: {PROPERTY_ENV}, one per line."
)
FILE_HELP = "Java .properties file of Kafka client properties (as --kafka-property)."


def kafka_properties_options(command: Any) -> Any:
    """Click decorator: ``--kafka-property`` (repeatable) and ``--kafka-properties-file``,
    handed to ``command`` as one ``kafka_properties: KafkaProperties`` argument; a bad
    property or file is a usage error naming the flag."""
    import functools

    import click

    class Pair(click.ParamType):
        name = "KEY=VALUE"
        envvar_list_splitter = "\n"

        def convert(self, value: Any, param: Any, ctx: Any) -> str:
            try:
                parse_pair(str(value))
            except KafkaPropertyError as exc:
                self.fail(str(exc), param, ctx)
            return str(value)

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        pairs = [p for p in kwargs.pop("kafka_property") if p.strip()]
        file = kwargs.pop("kafka_properties_file") or ""
        try:
            kwargs["kafka_properties"] = read_kafka_properties(pairs, file)
        except KafkaPropertyError as exc:
            raise click.UsageError(str(exc)) from None
        return command(*args, **kwargs)

    wrapper = click.option(
        FILE_FLAG, envvar=FILE_ENV, show_envvar=True, default="", help=FILE_HELP
    )(wrapper)
    return click.option(
        PROPERTY_FLAG,
        multiple=True,
        type=Pair(),
        envvar=PROPERTY_ENV,
        show_envvar=True,
        help=OPTIONS_HELP,
    )(wrapper)
