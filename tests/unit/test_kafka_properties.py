"""Kafka client properties: parsing (flags, .properties files), errors naming their source,
translation for the Java, librdkafka and kafka-python clients, and the jobs' flags."""

from __future__ import annotations

from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from flink_jobs.runtime.settings import JobSettings, markdown_table
from udfs.kafka_properties import (
    KafkaProperties,
    KafkaPropertyError,
    kafka_properties_options,
    parse_properties_text,
    read_kafka_properties,
)

pytestmark = pytest.mark.unit

SCRAM = [
    "security.protocol=SASL_SSL",
    "sasl.mechanism=SCRAM-SHA-512",
    "sasl.username=fleet",
    "sasl.password=s3cr=t",
    "ssl.truststore.location=/etc/kafka/ca.pem",
]


def test_properties_file_syntax() -> None:
    text = (
        "# comment\n"
        "! another\n"
        "\n"
        "  security.protocol = SASL_SSL\n"
        "sasl.mechanism: SCRAM-SHA-512\n"
        "client.id fleet\n"
        "sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule \\\n"
        '    required username="a" password="b\\\\c";\n'
        "odd\\=key=v\n"
        "empty=\n"
    )
    assert parse_properties_text(text, "f") == {
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "client.id": "fleet",
        "sasl.jaas.config": "org.apache.kafka.common.security.scram.ScramLoginModule "
        'required username="a" password="b\\c";',
        "odd=key": "v",
        "empty": "",
    }


def test_flags_override_the_file(tmp_path: Path) -> None:
    f = tmp_path / "client.properties"
    f.write_text("security.protocol=SSL\nclient.id=a\n")
    props = read_kafka_properties(["security.protocol=SASL_SSL"], str(f))
    assert props.values == {"security.protocol": "SASL_SSL", "client.id": "a"}


@pytest.mark.parametrize(
    ("pairs", "file", "message"),
    [
        (["nokey"], "", "--kafka-property 'nokey': expected KEY=VALUE"),
        (["=v"], "", "expected KEY=VALUE"),
        (["bootstrap.servers=x:1"], "", "set by --bootstrap"),
        (["ssl.truststore.type=JKS"], "", "only PEM"),
        ([], "missing.properties", "--kafka-properties-file 'missing.properties'"),
    ],
)
def test_bad_properties_name_their_source(pairs: list[str], file: str, message: str) -> None:
    with pytest.raises(KafkaPropertyError, match=message):
        read_kafka_properties(pairs, file)


def test_secrets_stay_out_of_reprs_and_errors() -> None:
    props = KafkaProperties.load(SCRAM)
    assert "s3cr=t" not in repr(props)
    assert "s3cr=t" not in repr(JobSettings(kafka_property=tuple(SCRAM)).kafka_properties)
    with pytest.raises(KafkaPropertyError) as err:
        read_kafka_properties(["sasl.password"])
    assert "expected KEY=VALUE" in str(err.value)


def test_java_form_gets_a_jaas_config_and_a_pem_truststore() -> None:
    java = KafkaProperties.load(SCRAM).java()
    assert "sasl.username" not in java and "sasl.password" not in java
    assert java["sasl.jaas.config"] == (
        "org.apache.kafka.common.security.scram.ScramLoginModule required "
        'username="fleet" password="s3cr=t";'
    )
    assert java["ssl.truststore.type"] == "PEM"
    assert java["security.protocol"] == "SASL_SSL"
    plain = KafkaProperties.load(["sasl.mechanism=PLAIN", "sasl.username=u", 'sasl.password=p"q'])
    assert plain.java()["sasl.jaas.config"].startswith(
        "org.apache.kafka.common.security.plain.PlainLoginModule required"
    )
    assert 'password="p\\"q"' in plain.java()["sasl.jaas.config"]


def test_librdkafka_form() -> None:
    conf = KafkaProperties.load(
        [*SCRAM, "ssl.endpoint.identification.algorithm=", "linger.ms=7"]
    ).librdkafka()
    assert conf == {
        "security.protocol": "SASL_SSL",
        "sasl.mechanisms": "SCRAM-SHA-512",
        "sasl.username": "fleet",
        "sasl.password": "s3cr=t",
        "ssl.ca.location": "/etc/kafka/ca.pem",
        "ssl.endpoint.identification.algorithm": "none",
        "linger.ms": "7",
    }


def test_credentials_from_a_jaas_config() -> None:
    props = KafkaProperties.load(
        [
            "sasl.mechanism=SCRAM-SHA-256",
            "sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule "
            'required username="alice" password="a\\"b";',
        ]
    )
    assert props.librdkafka()["sasl.username"] == "alice"
    assert props.librdkafka()["sasl.password"] == 'a"b'
    assert "sasl.jaas.config" not in props.librdkafka()
    assert props.kafka_python()["sasl_plain_password"] == 'a"b'


def test_kafka_python_form_refuses_what_it_cannot_express() -> None:
    kw = KafkaProperties.load([*SCRAM, "ssl.endpoint.identification.algorithm="]).kafka_python()
    assert kw == {
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "fleet",
        "sasl_plain_password": "s3cr=t",
        "ssl_cafile": "/etc/kafka/ca.pem",
        "ssl_check_hostname": False,
    }
    with pytest.raises(KafkaPropertyError, match="'linger.ms' has no equivalent in kafka-python"):
        KafkaProperties.load(["linger.ms=5"]).kafka_python()


def test_click_options_flags_file_and_environment(tmp_path: Path) -> None:
    seen: list[KafkaProperties] = []

    @click.command()
    @kafka_properties_options
    def cmd(kafka_properties: KafkaProperties) -> None:
        seen.append(kafka_properties)

    f = tmp_path / "c.properties"
    f.write_text("security.protocol=SSL\nclient.id=x\n")
    runner = CliRunner()
    result = runner.invoke(
        cmd,
        ["--kafka-property", "security.protocol=SASL_SSL"],
        env={"FLEETPULSE_KAFKA_PROPERTIES_FILE": str(f), "FLEETPULSE_KAFKA_PROPERTY": ""},
    )
    assert result.exit_code == 0, result.output
    assert seen[-1].values == {"security.protocol": "SASL_SSL", "client.id": "x"}
    result = runner.invoke(
        cmd,
        [],
        env={"FLEETPULSE_KAFKA_PROPERTY": "a.b=1 2\nc.d=3", "FLEETPULSE_KAFKA_PROPERTIES_FILE": ""},
    )
    assert result.exit_code == 0, result.output
    assert seen[-1].values == {"a.b": "1 2", "c.d": "3"}
    result = runner.invoke(cmd, ["--kafka-properties-file", str(tmp_path / "none")])
    assert result.exit_code == 2 and "--kafka-properties-file" in result.output
    result = runner.invoke(cmd, ["--kafka-property", "oops"])
    assert result.exit_code == 2 and "expected KEY=VALUE" in result.output


def test_job_flags_and_variables(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "c.properties"
    f.write_text("sasl.password=from-file\n")
    s = JobSettings.from_argv(
        ["--kafka-property", "security.protocol=SASL_SSL", "--kafka-property", "client.id=j"],
        {"FLEETPULSE_KAFKA_PROPERTIES_FILE": str(f)},
    )
    assert s.kafka_properties.values == {
        "sasl.password": "from-file",
        "security.protocol": "SASL_SSL",
        "client.id": "j",
    }
    s = JobSettings.from_argv([], {"FLEETPULSE_KAFKA_PROPERTY": "a=1\n\nb=2\n"})
    assert s.kafka_property == ("a=1", "b=2")
    with pytest.raises(SystemExit):
        JobSettings.from_argv(
            ["--kafka-property", "sasl.password=hunter2", "--kafka-property", "x"]
        )
    err = capsys.readouterr().err
    assert "--kafka-property" in err and "expected KEY=VALUE" in err and "hunter2" not in err
    with pytest.raises(SystemExit):
        JobSettings.from_argv(["--kafka-properties-file", str(tmp_path / "none")])
    assert "--kafka-properties-file" in capsys.readouterr().err
    assert "`--kafka-property`" in markdown_table(JobSettings)


def test_flink_table_options_carry_the_properties() -> None:
    from flink_jobs.runtime.kafka import client_properties

    s = JobSettings(bootstrap="b:1", kafka_property=(*SCRAM, "client.id=it's"))
    options = client_properties(s, {"linger.ms": "5", "client.id": "ours"})
    assert "'properties.bootstrap.servers' = 'b:1'," in options
    assert "'properties.linger.ms' = '5'," in options
    assert "'properties.client.id' = 'it''s'," in options  # the user's wins, SQL-quoted
    assert "'properties.ssl.truststore.type' = 'PEM'," in options
    # the SQL connector jar relocates the Kafka client: its login modules are named so
    assert (
        "'properties.sasl.jaas.config' = "
        "'org.apache.flink.kafka.shaded.org.apache.kafka.common.security.scram" in options
    )


def test_a_given_jaas_config_follows_a_relocated_client() -> None:
    jaas = 'org.apache.kafka.common.security.plain.PlainLoginModule required username="u";'
    props = KafkaProperties.load([f"sasl.jaas.config={jaas}"])
    assert props.java()["sasl.jaas.config"] == jaas
    assert props.java("shaded.org.apache.kafka")["sasl.jaas.config"] == "shaded." + jaas
