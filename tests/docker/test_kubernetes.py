"""deploy/kubernetes/ is valid Kubernetes and agrees with the code it runs.

No cluster is needed (none is reached): every manifest listed by kustomization.yaml is checked
against a published schema, offline:

* FlinkDeployments against the openAPIV3Schema of the Flink Kubernetes Operator's CRD, read from
  the operator's API jar that jvm/pom.xml resolves into the JVM cache (``./dev.sh setup``);
  unknown fields are refused, as ``kubectl apply`` (strict field validation) would;
* the core kinds (Deployment, Service, Secret, ConfigMap, ...) against Kubernetes' own JSON
  schemas, bundled by the ``kubernetes-validate`` package, strict as well.

Then the manifests are checked against each other and against the code: every ConfigMap,
Secret, key, volume claim and service account referred to exists; ``$(VAR)`` references resolve;
Services select pods and name their ports; each job's flags and environment pass the job's own
parser; ``python -m X ...`` passes X's real click parser; the dispatcher's configuration loads.
Negative cases show the validators do refuse a broken manifest.
"""

from __future__ import annotations

import copy
import importlib
import os
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import jsonschema
import pytest
import yaml

from alerting.config import parse_config
from flink_jobs.delay.settings import DelaySettings
from flink_jobs.runtime.jars import jvm_dir
from flink_jobs.runtime.settings import JobSettings, parse
from flink_jobs.tracking.settings import TrackingSettings

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy" / "kubernetes"
FLINK_DOCKERFILE = ROOT / "docker" / "flink.Dockerfile"
# Kubernetes version whose schemas the core kinds are validated against (kubernetes-validate
# bundles one set per minor version).
K8S_VERSION = "1.33"
CRD_ENTRY = "META-INF/fabric8/flinkdeployments.flink.apache.org-v1.yml"
CRD_VERSION = "v1beta1"
IMAGES = {"fleetpulse-flink", "fleetpulse-dispatcher", "fleetpulse-gateway"}
JOB_SETTINGS: dict[str, type[JobSettings]] = {
    "/opt/fleetpulse/flink_jobs/tracking/job.py": TrackingSettings,
    "/opt/fleetpulse/flink_jobs/delay/job.py": DelaySettings,
}
# PythonDriver's own options that take a value (the rest of job.args is the job's).
PYTHON_DRIVER_OPTIONS = {"-py", "-pym", "-pyfs", "-pyarch", "-pyexec", "-pyclientexec", "-pyreq"}
# Variables that hold secrets: they must come from a Secret, never from a ConfigMap or a literal.
SECRET_VARIABLES = {
    "FLEETPULSE_GATEWAY_SECRET",
    "FLEETPULSE_WEBHOOK_SECRET",
    "PAGERDUTY_ROUTING_KEY",
    "FLEETPULSE_REDIS_PASSWORD",
    "AWS_SECRET_ACCESS_KEY",
}
PLACEHOLDER = "REPLACE_ME"
_VAR_REF = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


# -- loading ----------------------------------------------------------------------------------


def kustomization() -> dict[str, Any]:
    data = yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())
    assert isinstance(data, dict), "kustomization.yaml is not a mapping"
    return data


def load_manifests() -> list[dict[str, Any]]:
    docs = []
    for rel in kustomization()["resources"]:
        for doc in yaml.safe_load_all((DEPLOY / rel).read_text()):
            if doc is not None:
                doc["__file__"] = rel
                docs.append(doc)
    return docs


@pytest.fixture(scope="module")
def manifests() -> list[dict[str, Any]]:
    return load_manifests()


def of_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def by_name(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in of_kind(docs, kind)}


def clean(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if k != "__file__"}


def where(doc: dict[str, Any]) -> str:
    return f"{doc.get('__file__', '?')}: {doc['kind']} {doc['metadata']['name']}"


def pod_specs(docs: list[dict[str, Any]]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """(manifest, pod spec) of every workload: Deployments and FlinkDeployments' pod templates."""
    for d in docs:
        if d["kind"] == "Deployment":
            yield d, d["spec"]["template"]["spec"]
        elif d["kind"] == "FlinkDeployment":
            yield d, d["spec"]["podTemplate"]["spec"]
            for role in ("jobManager", "taskManager"):
                tmpl = d["spec"].get(role, {}).get("podTemplate")
                if tmpl:
                    yield d, tmpl["spec"]


# -- schemas ----------------------------------------------------------------------------------


def operator_api_jar() -> Path:
    d = jvm_dir() / "kubernetes"
    jars = sorted(d.glob("flink-kubernetes-operator-api-*.jar"))
    if not jars:
        pytest.fail(
            f"flink-kubernetes-operator-api-*.jar not found in {d}: run ./dev.sh setup "
            "(jvm/pom.xml resolves it into the JVM cache)"
        )
    return jars[-1]


def operator_version(jar: Path) -> str:
    return jar.name.removeprefix("flink-kubernetes-operator-api-").removesuffix(".jar")


def crd_schema() -> dict[str, Any]:
    """The FlinkDeployment openAPIV3Schema of version v1beta1, from the operator's own jar."""
    with zipfile.ZipFile(operator_api_jar()) as zf:
        crd = yaml.safe_load(zf.read(CRD_ENTRY))
    assert crd["kind"] == "CustomResourceDefinition"
    assert crd["spec"]["names"]["kind"] == "FlinkDeployment"
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == CRD_VERSION]
    schema: dict[str, Any] = version["schema"]["openAPIV3Schema"]
    return schema


def strict(schema: Any) -> Any:
    """Refuse unknown fields where the API server would (a structural schema's object with
    properties and neither additionalProperties nor x-kubernetes-preserve-unknown-fields)."""
    if isinstance(schema, list):
        return [strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: strict(v) for k, v in schema.items()}
    if (
        "properties" in out
        and "additionalProperties" not in out
        and not out.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


def flink_version_enum(schema: dict[str, Any]) -> list[str]:
    enum: list[str] = schema["properties"]["spec"]["properties"]["flinkVersion"]["enum"]
    return enum


def _version_key(v: str) -> tuple[int, ...]:
    return tuple(int(p) for p in v.removeprefix("v").split("_"))


@pytest.fixture(scope="module")
def crd() -> dict[str, Any]:
    return crd_schema()


def crd_validator(schema: dict[str, Any], manifests: list[dict[str, Any]]) -> Any:
    """A validator of the CRD's schema (strict). Where the CRD predates the Flink version the
    manifests declare (test_crd_knows_the_flink_version says so), that version is added to the
    flinkVersion enum, and only it: every other constraint stays the CRD's."""
    schema = copy.deepcopy(schema)
    # Every object's own fields, which the API server checks before the CRD's schema.
    schema["properties"].setdefault("apiVersion", {"type": "string"})
    schema["properties"].setdefault("kind", {"type": "string"})
    schema["properties"].setdefault("metadata", {"type": "object"})
    enum = flink_version_enum(schema)
    newest = max(enum, key=_version_key)
    for d in of_kind(manifests, "FlinkDeployment"):
        v = d["spec"].get("flinkVersion")
        if isinstance(v, str) and v not in enum and _version_key(v) > _version_key(newest):
            enum.append(v)
    return jsonschema.Draft7Validator(strict(schema))


def k8s_validate(doc: dict[str, Any]) -> None:
    try:
        import kubernetes_validate
    except ImportError:
        pytest.fail(
            "kubernetes-validate is not installed: it is in pyproject.toml's dev extras "
            "(./dev.sh setup installs it)"
        )
    kubernetes_validate.validate(clean(doc), K8S_VERSION, strict=True)


def k8s_errors(doc: dict[str, Any]) -> str | None:
    import kubernetes_validate

    try:
        k8s_validate(doc)
    except kubernetes_validate.ValidationError as exc:
        return str(exc)
    return None


# -- environment of a container ---------------------------------------------------------------


def container_env(container: dict[str, Any], docs: list[dict[str, Any]]) -> dict[str, str]:
    """The container's environment as the kubelet builds it: envFrom first, then env in order,
    $(VAR) expanded from what is defined before. Secret values are their placeholders."""
    configmaps = by_name(docs, "ConfigMap")
    secrets = by_name(docs, "Secret")
    env: dict[str, str] = {}

    def secret_data(name: str) -> dict[str, str]:
        s = secrets[name]
        return {**s.get("stringData", {}), **s.get("data", {})}

    for src in container.get("envFrom", []):
        if "configMapRef" in src:
            env |= configmaps[src["configMapRef"]["name"]]["data"]
        if "secretRef" in src:
            env |= secret_data(src["secretRef"]["name"])
    for var in container.get("env", []):
        if "value" in var:
            for ref in _VAR_REF.findall(var["value"]):
                assert ref in env, f"$({ref}) in {var['name']} is not defined before it"
            env[var["name"]] = _VAR_REF.sub(lambda m: env[m.group(1)], var["value"])
        else:
            ref = var["valueFrom"]
            if "secretKeyRef" in ref:
                env[var["name"]] = secret_data(ref["secretKeyRef"]["name"])[
                    ref["secretKeyRef"]["key"]
                ]
            elif "configMapKeyRef" in ref:
                cm = configmaps[ref["configMapKeyRef"]["name"]]
                env[var["name"]] = cm["data"][ref["configMapKeyRef"]["key"]]
    return env


def expand(args: list[str], env: dict[str, str]) -> list[str]:
    out = []
    for a in args:
        for name in _VAR_REF.findall(a):
            assert name in env, f"$({name}) in {a!r} is not in the container's environment"
        out.append(_VAR_REF.sub(lambda m: env[m.group(1)], a))
    return out


# -- kustomization ----------------------------------------------------------------------------


def test_kustomization_lists_every_manifest_and_nothing_missing() -> None:
    k = kustomization()
    assert k["apiVersion"] == "kustomize.config.k8s.io/v1beta1"
    assert k["kind"] == "Kustomization"
    listed = set(k["resources"]) | set(k.get("configurations", []))
    for rel in listed:
        assert (DEPLOY / rel).is_file(), f"kustomization.yaml lists {rel}, which does not exist"
    present = {
        str(p.relative_to(DEPLOY)) for p in DEPLOY.rglob("*.yaml") if p.name != "kustomization.yaml"
    }
    assert present - listed == set(), f"not listed in kustomization.yaml: {present - listed}"


def test_kustomization_images_cover_every_image(manifests: list[dict[str, Any]]) -> None:
    k = kustomization()
    entries = {i["name"]: i for i in k["images"]}
    assert set(entries) == IMAGES
    for entry in entries.values():
        assert entry.get("newTag"), f"{entry['name']}: no newTag in kustomization.yaml images"
    used = set()
    for d in manifests:
        if d["kind"] == "FlinkDeployment":
            used.add(d["spec"]["image"])
        for _, spec in pod_specs([d]):
            used |= {c["image"] for c in spec.get("containers", []) if "image" in c}
    assert used == IMAGES, f"images used {used}, kustomization.yaml sets {IMAGES}"
    # FlinkDeployment's spec.image is not a field kustomize rewrites by itself.
    fieldspecs = [
        s
        for rel in k["configurations"]
        for s in yaml.safe_load((DEPLOY / rel).read_text()).get("images", [])
    ]
    assert {"path": "spec/image", "kind": "FlinkDeployment"} in fieldspecs


# -- FlinkDeployments against the operator's CRD ----------------------------------------------


def test_flinkdeployments_match_the_operator_crd(
    crd: dict[str, Any], manifests: list[dict[str, Any]]
) -> None:
    validator = crd_validator(crd, manifests)
    deployments = of_kind(manifests, "FlinkDeployment")
    assert {d["metadata"]["name"] for d in deployments} == {
        "fleetpulse-tracking",
        "fleetpulse-delay",
    }
    for d in deployments:
        assert d["apiVersion"] == f"flink.apache.org/{CRD_VERSION}"
        errors = [
            f"{'.'.join(map(str, e.absolute_path))}: {e.message}"
            for e in validator.iter_errors(clean(d))
        ]
        assert not errors, f"{where(d)}:\n" + "\n".join(errors)


def test_crd_knows_the_flink_version(crd: dict[str, Any], manifests: list[dict[str, Any]]) -> None:
    """flinkVersion is the image's Flink (docker/flink.Dockerfile) and one the CRD knows."""
    m = re.search(r"^ARG FLINK_VERSION=(\d+)\.(\d+)", FLINK_DOCKERFILE.read_text(), re.M)
    assert m, "no ARG FLINK_VERSION in docker/flink.Dockerfile"
    image_version = f"v{m.group(1)}_{m.group(2)}"
    for d in of_kind(manifests, "FlinkDeployment"):
        assert d["spec"]["flinkVersion"] == image_version, where(d)
    enum = flink_version_enum(crd)
    if image_version not in enum and _version_key(image_version) > _version_key(
        max(enum, key=_version_key)
    ):
        pytest.skip(
            f"the CRD of flink-kubernetes-operator-api {operator_version(operator_api_jar())} "
            f"knows Flink up to {max(enum, key=_version_key)}, not {image_version}: "
            "jvm/pom.xml should resolve operator >= 1.13.0 where Maven Central serves it"
        )
    assert image_version in enum


def test_flinkdeployments_run_the_jobs_with_savepoints_ha_and_s3(
    manifests: list[dict[str, Any]],
) -> None:
    dockerfile = FLINK_DOCKERFILE.read_text()
    flink_version = re.search(r"^ARG FLINK_VERSION=(\S+)", dockerfile, re.M)
    assert flink_version
    for d in of_kind(manifests, "FlinkDeployment"):
        spec, job = d["spec"], d["spec"]["job"]
        conf = spec["flinkConfiguration"]
        assert job["entryClass"] == "org.apache.flink.client.python.PythonDriver", where(d)
        # The image copies pyflink's flink-python jar into lib/ (docker/flink.Dockerfile).
        assert job["jarURI"] == (
            f"local:///opt/flink/lib/flink-python-{flink_version.group(1)}.jar"
        ), where(d)
        assert re.search(r"cp \"\$pyflink\"/opt/flink-python-\*\.jar /opt/flink/lib/", dockerfile)
        assert job["upgradeMode"] == "savepoint", where(d)
        assert conf["high-availability.type"] == "kubernetes", where(d)
        for key in (
            "high-availability.storageDir",
            "execution.checkpointing.dir",
            "execution.checkpointing.savepoint-dir",
        ):
            assert conf[key].startswith("s3://"), f"{where(d)}: {key} is not on S3"
            assert conf[key].rstrip("/").endswith(d["metadata"]["name"]), (
                f"{where(d)}: {key} is not the job's own directory"
            )
        # What the image's config.yaml sets and the operator's mounted config.yaml replaces.
        assert conf["python.execution-mode"] == "thread", where(d)
        assert conf["taskmanager.numberOfTaskSlots"] == "1", where(d)
        env = {
            e["name"]: e.get("value")
            for c in spec["podTemplate"]["spec"]["containers"]
            for e in c.get("env", [])
        }
        assert env.get("ENABLE_BUILT_IN_PLUGINS", "").startswith("flink-s3-fs-"), (
            f"{where(d)}: no S3 filesystem plugin enabled"
        )


def test_job_args_and_environment_pass_the_jobs_parser(manifests: list[dict[str, Any]]) -> None:
    """The args after PythonDriver's options, over the pod's FLEETPULSE_* environment, go
    through the job's own parser; the operator, not the job, restores."""
    seen = set()
    for d in of_kind(manifests, "FlinkDeployment"):
        args = list(d["spec"]["job"]["args"])
        py = args[args.index("-py") + 1]
        assert py in JOB_SETTINGS, f"{where(d)}: -py {py} is not a job"
        assert (ROOT / py.removeprefix("/opt/fleetpulse/")).is_file(), py
        i, job_args = 0, []
        while i < len(args):
            if args[i] in PYTHON_DRIVER_OPTIONS:
                i += 2
            else:
                job_args.append(args[i])
                i += 1
        for flag in ("--restore", "--checkpoint-dir"):
            assert flag not in job_args, f"{where(d)}: {flag} (the operator restores)"
        (main,) = [
            c
            for c in d["spec"]["podTemplate"]["spec"]["containers"]
            if c["name"] == "flink-main-container"
        ]
        env = container_env(main, manifests)
        settings = parse(JOB_SETTINGS[py], job_args, env)
        assert settings.bootstrap == env["FLEETPULSE_BOOTSTRAP"]
        assert settings.redis_url.startswith("redis://:REPLACE_ME"), settings.redis_url
        assert settings.group_id == d["metadata"]["name"]
        seen.add(py)
    assert seen == set(JOB_SETTINGS)


# -- core kinds against Kubernetes' schemas ---------------------------------------------------


def test_core_kinds_match_the_kubernetes_schemas(manifests: list[dict[str, Any]]) -> None:
    kinds = set()
    for d in manifests:
        if d["kind"] == "FlinkDeployment":
            continue
        k8s_validate(d)
        kinds.add(d["kind"])
    assert {"Deployment", "Service", "Secret", "ConfigMap"} <= kinds


def test_references_resolve(manifests: list[dict[str, Any]]) -> None:
    configmaps, secrets = by_name(manifests, "ConfigMap"), by_name(manifests, "Secret")
    claims, accounts = (
        by_name(manifests, "PersistentVolumeClaim"),
        by_name(manifests, "ServiceAccount"),
    )
    for d, spec in pod_specs(manifests):
        account = spec.get("serviceAccountName") or d["spec"].get("serviceAccount")
        if account:
            assert account in accounts, f"{where(d)}: no ServiceAccount {account}"
        for vol in spec.get("volumes", []):
            if "configMap" in vol:
                assert vol["configMap"]["name"] in configmaps, where(d)
            if "persistentVolumeClaim" in vol:
                assert vol["persistentVolumeClaim"]["claimName"] in claims, where(d)
        for c in spec.get("containers", []):
            for src in c.get("envFrom", []):
                ref = src.get("configMapRef") or src.get("secretRef")
                assert ref["name"] in (configmaps if "configMapRef" in src else secrets), (
                    f"{where(d)}: envFrom {ref['name']} does not exist"
                )
            for var in c.get("env", []):
                ref = var.get("valueFrom", {})
                if "secretKeyRef" in ref:
                    s = secrets[ref["secretKeyRef"]["name"]]
                    assert ref["secretKeyRef"]["key"] in s.get("stringData", {}), where(d)
                if "configMapKeyRef" in ref:
                    cm = configmaps[ref["configMapKeyRef"]["name"]]
                    assert ref["configMapKeyRef"]["key"] in cm["data"], where(d)
            env = container_env(c, manifests)
            expand(c.get("command", []) + c.get("args", []), env)
    for rb in of_kind(manifests, "RoleBinding"):
        assert rb["roleRef"]["name"] in by_name(manifests, rb["roleRef"]["kind"]), where(rb)
        for s in rb["subjects"]:
            assert s["name"] in accounts, where(rb)


def test_services_select_pods_and_name_their_ports(manifests: list[dict[str, Any]]) -> None:
    for svc in of_kind(manifests, "Service"):
        matches = [
            d
            for d in of_kind(manifests, "Deployment")
            if svc["spec"]["selector"].items()
            <= d["spec"]["template"]["metadata"]["labels"].items()
        ]
        assert len(matches) == 1, f"{where(svc)} selects {len(matches)} Deployments"
        (dep,) = matches
        assert dep["spec"]["selector"]["matchLabels"].items() <= (
            dep["spec"]["template"]["metadata"]["labels"].items()
        )
        names = {
            p.get("name")
            for c in dep["spec"]["template"]["spec"]["containers"]
            for p in c.get("ports", [])
        }
        for port in svc["spec"]["ports"]:
            assert port["targetPort"] in names, f"{where(svc)}: no container port {port}"


def test_secrets_are_placeholders_and_secret_variables_come_from_secrets(
    manifests: list[dict[str, Any]],
) -> None:
    secret_keys = set()
    for s in of_kind(manifests, "Secret"):
        assert "data" not in s, f"{where(s)}: use stringData placeholders"
        for key, value in s["stringData"].items():
            assert value.startswith(PLACEHOLDER), f"{where(s)}: {key} is not a placeholder"
            secret_keys.add(key)
    assert secret_keys >= SECRET_VARIABLES
    for cm in of_kind(manifests, "ConfigMap"):
        assert not SECRET_VARIABLES & set(cm["data"]), f"{where(cm)} holds a secret"
    for d, spec in pod_specs(manifests):
        for c in spec.get("containers", []):
            for var in c.get("env", []):
                if var["name"] in SECRET_VARIABLES:
                    assert "secretKeyRef" in var.get("valueFrom", {}), (
                        f"{where(d)}: {var['name']} is not read from a Secret"
                    )


def _click_command(module: str) -> click.Command:
    main = importlib.import_module(f"{module}.__main__")
    (group,) = [v for v in vars(main).values() if isinstance(v, click.Group)]
    return group


def test_deployments_commands_pass_the_real_click_parsers(
    manifests: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(click.Command, "invoke", lambda self, ctx: None)
    seen = {}
    for d in of_kind(manifests, "Deployment"):
        (c,) = d["spec"]["template"]["spec"]["containers"]
        env = container_env(c, manifests)
        argv = expand(c["command"] + c["args"], env)
        assert argv[:2] == ["python", "-m"], f"{where(d)}: {argv}"
        module, args = argv[2], argv[3:]
        for name in [k for k in os.environ if k.startswith("FLEETPULSE_")]:
            monkeypatch.delenv(name)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        try:
            _click_command(module).main(
                args, prog_name=f"python -m {module}", standalone_mode=False
            )
        except click.ClickException as exc:
            pytest.fail(
                f"{where(d)}: python -m {module} {args} is rejected: {exc.format_message()}"
            )
        seen[module] = d["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/name"]
        probe_port = c["readinessProbe"]["httpGet"]["port"]
        assert probe_port in {p["name"] for p in c["ports"]}, where(d)
        port = next(p["containerPort"] for p in c["ports"] if p["name"] == probe_port)
        assert str(port) in args, f"{where(d)}: the probe's port {port} is not served"
    assert seen == {"alerting": "fleetpulse-dispatcher", "ws_gateway": "fleetpulse-gateway"}


def test_dispatcher_configuration_loads(manifests: list[dict[str, Any]]) -> None:
    dep = by_name(manifests, "Deployment")["fleetpulse-dispatcher"]
    (c,) = dep["spec"]["template"]["spec"]["containers"]
    args = c["args"]
    config_path = args[args.index("--config") + 1]
    mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
    volumes = {v["name"]: v for v in dep["spec"]["template"]["spec"]["volumes"]}
    (vol,) = [n for n, path in mounts.items() if config_path.startswith(path + "/")]
    cm = by_name(manifests, "ConfigMap")[volumes[vol]["configMap"]["name"]]
    text = cm["data"][config_path.rsplit("/", 1)[1]]
    cfg = parse_config(text, "alerting.yaml", env=container_env(c, manifests))
    assert {r.type for r in cfg.receivers} == {"webhook", "pagerduty"}


# -- the validators refuse --------------------------------------------------------------------


def test_crd_schema_refuses_a_wrong_field_type(
    crd: dict[str, Any], manifests: list[dict[str, Any]]
) -> None:
    validator = crd_validator(crd, manifests)
    good = clean(by_name(manifests, "FlinkDeployment")["fleetpulse-tracking"])
    assert validator.is_valid(good)
    bad = copy.deepcopy(good)
    bad["spec"]["job"]["parallelism"] = "two"
    assert not validator.is_valid(bad)
    bad = copy.deepcopy(good)
    bad["spec"]["job"]["upgradeMode"] = "checkpoint"
    assert not validator.is_valid(bad)
    bad = copy.deepcopy(good)
    bad["spec"]["job"]["upgrade_mode"] = "savepoint"  # an unknown field
    assert not validator.is_valid(bad)
    bad = copy.deepcopy(good)
    bad["spec"]["flinkConfiguration"]["taskmanager.numberOfTaskSlots"] = 1
    # A number where the CRD wants a string (operator < 1.13) or anything (>= 1.13).
    conf_schema = crd["properties"]["spec"]["properties"]["flinkConfiguration"]
    if conf_schema.get("additionalProperties", {}).get("type") == "string":
        assert not validator.is_valid(bad)


def test_kubernetes_schemas_refuse_a_broken_deployment(manifests: list[dict[str, Any]]) -> None:
    good = by_name(manifests, "Deployment")["fleetpulse-gateway"]
    assert k8s_errors(good) is None
    bad = copy.deepcopy(good)
    del bad["spec"]["template"]["spec"]["containers"]
    assert k8s_errors(bad) is not None
    bad = copy.deepcopy(good)
    bad["spec"]["replicas"] = "two"
    assert k8s_errors(bad) is not None
    bad = copy.deepcopy(good)
    bad["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy2"] = "Always"
    assert k8s_errors(bad) is not None
    svc = copy.deepcopy(by_name(manifests, "Service")["fleetpulse-gateway"])
    svc["spec"]["ports"][0]["port"] = "http"
    assert k8s_errors(svc) is not None
