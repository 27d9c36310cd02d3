"""The Helm chart (deploy/helm/voice-agent), rendered offline by Helm's own Go SDK (helm-python-sdk)
for the default, L4 and CPU profiles: strict lint, every manifest valid for Kubernetes (strict
kubernetes-validate), the values schema rejecting bad values, and the deployment's invariants:
one GPU per GPU pod, GPU memory budgets that fit one L4, probes and requests everywhere, grace
periods that cover the drains, non-root pods, scrape jobs the dashboards expect, and network
policies that let only Envoy reach the gateway and only the gateway reach the models.
No cluster, no helm binary, no network."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import helm_python as helm
import kubernetes_validate
import pytest
import yaml
from helm_render import CHART, NAMESPACE, RELEASE, merged_values, render, render_templates

from gateway.config import GatewayConfig
from services.asr.config import AsrConfig
from services.tts.config import TtsConfig

KUBERNETES_VERSION = "1.33"
PREFIX = f"{RELEASE}-voice-agent"
PROFILES = {"default": [], "l4": ["values-l4.yaml"], "cpu": ["values-cpu.yaml"]}
# Everything optional switched on, so that those manifests are validated too.
EVERYTHING = {
    "metrics": {"serviceMonitor": {"enabled": True}, "prometheusRule": {"enabled": True}},
    "tracing": {"enabled": True, "collector": {"enabled": True}},
    "gpu": {"timeSlicing": {"createConfigMap": True}},
    "gateway": {"autoscaling": {"sessionsMetric": {"enabled": True}}},
    "mtls": {"enabled": True},
    "records": {
        "postgresql": {"enabled": True, "password": "dev-only"},
        "recordings": {"record": True, "s3": {"bucket": "voice-recordings", "credentialsSecret": "s3-keys"}},
        "retentionDays": 30,
    },
}
# Custom resources of the Prometheus Operator: kubernetes-validate has no schema for them, so they
# are skipped by name (and only these), and checked by the tests below instead.
CRD_KINDS = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
    ("monitoring.coreos.com/v1", "PodMonitor"),
    ("monitoring.coreos.com/v1", "PrometheusRule"),
}
WORKLOADS = ("Deployment", "Job")
# The scrape jobs the dashboards and alert rules select on (docs/observability.md).
SCRAPE_JOBS = {"voice-gateway", "voice-asr", "voice-tts", "voice-llm"}
GPU = "nvidia.com/gpu"
L4_MEMORY_GIB = 23034 / 1024  # what CUDA reports for a "24 GB" L4


# --- helpers ----------------------------------------------------------------------------------


def by_kind(manifests: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {m["metadata"]["name"]: m for m in manifests if m["kind"] == kind}


def one(manifests: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = by_kind(manifests, kind)
    assert name in found, f"no {kind} {name}; have {sorted(found)}"
    return found[name]


def pod_specs(manifests: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    for m in manifests:
        if m["kind"] in WORKLOADS:
            yield f"{m['kind']}/{m['metadata']['name']}", m["spec"]["template"]["spec"]


def containers(spec: dict[str, Any]) -> list[dict[str, Any]]:
    """Init containers and containers."""
    return spec.get("initContainers", []) + spec["containers"]


def env(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e.get("value") for e in container.get("env", [])}


def component(labels: dict[str, str]) -> str:
    return labels["app.kubernetes.io/component"]


def gpu_count(spec: dict[str, Any]) -> int:
    return sum(int(c.get("resources", {}).get("limits", {}).get(GPU, 0)) for c in containers(spec))


def spec_labels(manifests: list[dict[str, Any]], name: str) -> dict[str, str]:
    """The pod labels of a workload named as pod_specs names it ("Deployment/voice-...")."""
    kind, _, resource = name.partition("/")
    return one(manifests, kind, resource)["spec"]["template"]["metadata"]["labels"]


def pod_spec(manifests: list[dict[str, Any]], comp: str) -> dict[str, Any]:
    """The pod spec of a component's Deployment."""
    return one(manifests, "Deployment", f"{PREFIX}-{comp}")["spec"]["template"]["spec"]


def main_container(manifests: list[dict[str, Any]], comp: str) -> dict[str, Any]:
    return pod_spec(manifests, comp)["containers"][0]


def workload_labels(manifests: list[dict[str, Any]]) -> list[dict[str, str]]:
    return [spec_labels(manifests, name) for name, _ in pod_specs(manifests)]


def policies_of(manifests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return list(by_kind(manifests, "NetworkPolicy").values())


@pytest.fixture(scope="module", params=sorted(PROFILES))
def profile(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(scope="module")
def manifests(profile: str) -> list[dict[str, Any]]:
    return render(PROFILES[profile])


# --- render, lint, validate -------------------------------------------------------------------


def test_the_sdk_is_self_contained() -> None:
    # The Go SDK ships inside the wheel as a shared library: nothing is downloaded at run time.
    assert CHART.joinpath("values.schema.json").is_file()
    assert str(helm.library_path).startswith(helm.__path__[0]), helm.library_path
    assert helm.helm_sdk_version().startswith("v")


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_lint_strict(name: str) -> None:
    values = yaml.safe_load((CHART / PROFILES[name][0]).read_text()) if PROFILES[name] else None
    report = helm.lint(CHART, values, strict=True, kube_version=f"v{KUBERNETES_VERSION}.0")
    # Info messages (severity 1, "icon is recommended") are not findings; warnings and errors are.
    findings = [m for m in report["messages"] if m["severity"] >= 2]
    assert not findings and not report["errors"], findings or report["errors"]


@pytest.mark.parametrize("name", sorted(PROFILES))
@pytest.mark.parametrize("optional", [False, True], ids=["as-is", "everything-on"])
def test_every_manifest_is_valid_kubernetes(name: str, optional: bool) -> None:
    docs = render(PROFILES[name], EVERYTHING if optional else None)
    skipped: set[tuple[str, str]] = set()
    for doc in docs:
        kind = (doc["apiVersion"], doc["kind"])
        if kind in CRD_KINDS:
            skipped.add(kind)
            continue
        where = f"{name}: {doc['kind']}/{doc['metadata']['name']}"
        try:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            pytest.fail(f"{where}: {error.message} at {list(error.path)}")
    # The CRD kinds are skipped explicitly, and only they: with the operator's resources on,
    # exactly the ServiceMonitors and the PrometheusRule were left out.
    expected = {("monitoring.coreos.com/v1", "ServiceMonitor"), ("monitoring.coreos.com/v1", "PrometheusRule")}
    assert skipped == (expected if optional else set()), skipped


def test_every_manifest_is_namespaced_in_the_release_except_the_time_slicing_config() -> None:
    for doc in render(["values-l4.yaml"], EVERYTHING):
        namespace = doc["metadata"].get("namespace")
        if doc["kind"] == "ConfigMap" and doc["metadata"]["name"] == "time-slicing-config":
            assert namespace == "gpu-operator"  # read by the device plugin, in the GPU operator's namespace
        else:
            assert namespace is None, doc["metadata"]["name"]  # helm installs it into the release namespace


# --- values schema ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "complaint"),
    [
        ({"gateway": {"replcas": 2}}, "replcas"),  # a misspelled key
        ({"envoy": {"tls": {"secret": "x"}}}, "secret"),  # a misspelled nested key
        ({"gateway": {"replicas": -1}}, "replicas"),  # out of range
        ({"gateway": {"port": "fifty"}}, "port"),  # a wrong type
        ({"asr": {"gpu": {"enabled": "yes"}}}, "enabled"),
        ({"llm": {"engine": "tgi"}}, "engine"),  # not one of vllm, embedded
        ({"llm": {"vllm": {"gpuMemoryUtilization": 1.5}}}, "gpuMemoryUtilization"),
        ({"tts": {"resources": {"requests": {"cpus": "1"}}}}, "cpus"),
        ({"securityContext": {"runAsUser": 0}}, "runAsUser"),  # root is not a value
        ({"models": {"download": [{"name": "llm", "repo": "no-owner", "revision": "main"}]}}, "repo"),
        ({"envoy": {"streamIdleTimeout": "five minutes"}}, "streamIdleTimeout"),
        ({"metrics": {"serviceMonitor": {"enable": True}}}, "enable"),
    ],
)
def test_schema_rejects_bad_values(values: dict[str, Any], complaint: str) -> None:
    with pytest.raises(helm.HelmValuesError, match=complaint):
        render(set_values=values)


def test_schema_covers_every_value() -> None:
    # Every key of values.yaml and of the profiles is declared in the schema, down to the leaves
    # (objects that are maps by nature, like env or annotations, declare their value type instead).
    schema = yaml.safe_load((CHART / "values.schema.json").read_text())

    def resolve(node: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in node:
            node = schema["definitions"][node["$ref"].rsplit("/", 1)[1]]
        return node

    def walk(value: Any, node: dict[str, Any], path: str) -> None:
        node = resolve(node)
        if isinstance(value, dict) and node.get("type") == "object":
            if "properties" not in node and "additionalProperties" not in node:
                return  # a declared pass-through (the collector's exporters): its owner's schema applies
            if "properties" in node:
                assert node.get("additionalProperties") is False, f"{path}: unknown keys are not rejected"
            for key, item in value.items():
                sub = node.get("properties", {}).get(key) or node.get("additionalProperties")
                assert isinstance(sub, dict), f"{path}.{key} is not in values.schema.json"
                walk(item, sub, f"{path}.{key}")
        elif isinstance(value, list) and "items" in node:
            for index, item in enumerate(value):
                walk(item, node["items"], f"{path}[{index}]")

    for name in ["values.yaml", "values-l4.yaml", "values-cpu.yaml"]:
        walk(yaml.safe_load((CHART / name).read_text()), schema, name)


# --- GPU ------------------------------------------------------------------------------------


EXPECTED_GPU_PODS = {"default": {"llm"}, "l4": {"llm", "asr", "tts"}, "cpu": set()}


def test_every_gpu_pod_requests_exactly_one_gpu(profile: str, manifests: list[dict[str, Any]]) -> None:
    gpu_pods = set()
    for name, spec in pod_specs(manifests):
        wanting = [c for c in containers(spec) if GPU in str(c.get("resources", {}))]
        if not wanting:
            continue
        gpu_pods.add(component(spec_labels(manifests, name)))
        assert len(wanting) == 1, f"{name}: more than one container asks for a GPU"
        resources = wanting[0]["resources"]
        assert resources["limits"][GPU] == 1 and resources["requests"][GPU] == 1, f"{name}: {resources}"
        # On an L4 node (either spelling of the product label: time-slicing appends -SHARED) and
        # tolerating the GPU taint.
        terms = spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
        assert terms == [
            {
                "matchExpressions": [
                    {"key": "nvidia.com/gpu.product", "operator": "In", "values": ["NVIDIA-L4", "NVIDIA-L4-SHARED"]}
                ]
            }
        ]
        assert {"key": GPU, "operator": "Exists", "effect": "NoSchedule"} in spec["tolerations"]
    assert gpu_pods == EXPECTED_GPU_PODS[profile]
    # The device plugin must hand out a slice to every GPU pod at once.
    values = merged_values(PROFILES[profile])
    replicas = {"llm": values["llm"]["replicas"], "asr": values["asr"]["replicas"], "tts": values["tts"]["replicas"]}
    assert sum(replicas[c] for c in gpu_pods) <= values["gpu"]["timeSlicing"]["replicas"]


def test_gpu_deployments_are_recreated_not_rolled(profile: str, manifests: list[dict[str, Any]]) -> None:
    # A second copy of a model during a rolling update would not fit in the shared GPU's memory.
    for deployment in by_kind(manifests, "Deployment").values():
        if gpu_count(deployment["spec"]["template"]["spec"]):
            assert deployment["spec"]["strategy"] == {"type": "Recreate"}, deployment["metadata"]["name"]


def test_l4_gpu_memory_budgets_fit_one_l4() -> None:
    values = merged_values(["values-l4.yaml"])
    card = values["gpu"]["memoryGiB"]
    assert card <= L4_MEMORY_GIB + 0.01, "gpu.memoryGiB is more than an L4 has"
    utilization = values["llm"]["vllm"]["gpuMemoryUtilization"]
    budgets = {"llm": utilization * card}
    for name in ("asr", "tts"):
        assert values[name]["gpu"]["enabled"], f"{name} is on the GPU in the L4 profile"
        assert values[name]["gpu"]["memoryBudgetGiB"] > 0, f"{name} on the GPU must declare its budget"
        budgets[name] = values[name]["gpu"]["memoryBudgetGiB"]
    assert sum(budgets.values()) <= card, f"{budgets} add up to more than {card} GiB"
    # The design measured about 12.5 GB peak for the whole pipeline: the budgets must cover it.
    assert sum(budgets.values()) * 2**30 >= 12.5e9
    # ...and what is deployed is what was added up.
    llm = pod_spec(render(["values-l4.yaml"]), "llm")
    assert f"--gpu-memory-utilization={utilization}" in llm["containers"][0]["args"]


def test_time_slicing_config() -> None:
    shipped = yaml.safe_load((CHART / "files" / "time-slicing-config.yaml").read_text())
    config = yaml.safe_load(shipped["data"]["any"])
    assert config["version"] == "v1"
    sharing = config["sharing"]["timeSlicing"]
    assert sharing["failRequestsGreaterThanOne"] is True
    assert sharing["resources"] == [{"name": GPU, "replicas": 4}]
    # The chart renders the same config, with the replicas and place from its values.
    rendered = one(
        render(set_values={"gpu.timeSlicing": {"createConfigMap": True, "replicas": 6}}),
        "ConfigMap",
        "time-slicing-config",
    )
    assert rendered["metadata"]["namespace"] == "gpu-operator"
    config["sharing"]["timeSlicing"]["resources"][0]["replicas"] = 6
    assert yaml.safe_load(rendered["data"]["any"]) == config
    assert not by_kind(render(), "ConfigMap").get("time-slicing-config"), "off by default"


# --- health, resources, shutdown --------------------------------------------------------------

GRPC_PORTS = {"gateway": 50051, "asr": 50052, "tts": 50053}


def test_every_container_has_probes_and_requests(profile: str, manifests: list[dict[str, Any]]) -> None:
    for name, spec in pod_specs(manifests):
        for container in containers(spec):
            requests = container.get("resources", {}).get("requests", {})
            assert {"cpu", "memory"} <= requests.keys(), f"{name}/{container['name']}: requests {requests}"
        if name.startswith("Job/"):
            continue  # a run-to-completion download: nothing to probe
        for container in spec["containers"]:
            where = f"{name}/{container['name']}"
            assert "readinessProbe" in container and "livenessProbe" in container, where
            comp = component(spec_labels(manifests, name))
            if comp in GRPC_PORTS:
                # gRPC health (grpc.health.v1): NOT_SERVING until the model has loaded.
                for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                    assert container[probe]["grpc"] == {"port": GRPC_PORTS[comp]}, f"{where} {probe}"
            if comp in ("asr", "tts", "llm"):
                startup = container["startupProbe"]
                allowed = startup["periodSeconds"] * startup["failureThreshold"]
                assert allowed >= merged_values(PROFILES[profile])[comp]["startupSeconds"], where


def test_vllm_probes_health_and_waits_long_for_its_model() -> None:
    llm = main_container(render(["values-l4.yaml"]), "llm")
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert llm[probe]["httpGet"] == {"path": "/health", "port": "http"}
    startup = llm["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 15 * 60, "vLLM loads for many minutes"


def test_grace_period_covers_the_drain(profile: str, manifests: list[dict[str, Any]]) -> None:
    drained = set()
    for name, spec in pod_specs(manifests):
        for container in spec["containers"]:
            drains = [float(v) for k, v in env(container).items() if k.endswith("_SHUTDOWN_GRACE_S")]
            if not drains:
                continue
            drained.add(component(spec_labels(manifests, name)))
            sleep = container.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
            # The kubelet's clock starts before the preStop sleep; SIGTERM (and the drain) after it.
            assert spec["terminationGracePeriodSeconds"] > sleep + max(drains), name
    assert drained == {"gateway", "asr", "tts"}
    values = merged_values(PROFILES[profile])
    gateway = pod_spec(manifests, "gateway")
    assert env(gateway["containers"][0])["VOICE_GATEWAY_SHUTDOWN_GRACE_S"] == str(values["gateway"]["drainSeconds"])


# --- security ---------------------------------------------------------------------------------


def non_root_violations(manifests: list[dict[str, Any]]) -> set[str]:
    broken = set()
    for name, spec in pod_specs(manifests):
        pod = spec["securityContext"]
        if not (pod.get("runAsNonRoot") is True and pod.get("runAsUser", 0) != 0):
            broken.add(name)
        if (
            pod.get("seccompProfile") != {"type": "RuntimeDefault"}
            or spec.get("automountServiceAccountToken") is not False
        ):
            broken.add(name)
        for container in containers(spec):
            sc = container["securityContext"]
            if not (
                sc.get("allowPrivilegeEscalation") is False
                and sc.get("readOnlyRootFilesystem") is True
                and sc.get("capabilities") == {"drop": ["ALL"]}
            ):
                broken.add(name)
    return broken


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_every_pod_runs_as_non_root_with_a_read_only_root(name: str) -> None:
    assert non_root_violations(render(PROFILES[name], EVERYTHING)) == set()


def test_the_only_root_exception_is_the_documented_llm_switch() -> None:
    manifests = render(["values-l4.yaml"], {"llm.runAsRoot": True})
    assert non_root_violations(manifests) == {f"Deployment/{PREFIX}-llm"}
    # The switch is about vLLM's image only: the embedded server stays non-root.
    assert non_root_violations(render(["values-cpu.yaml"], {"llm.runAsRoot": True})) == set()


# --- wiring -----------------------------------------------------------------------------------


def test_gateway_finds_its_backends_by_service_dns(profile: str, manifests: list[dict[str, Any]]) -> None:
    services = by_kind(manifests, "Service")
    gateway = env(main_container(manifests, "gateway"))

    def service_port(name: str, port: str) -> int:
        return next(p["port"] for p in services[name]["spec"]["ports"] if p["name"] == port)

    assert gateway["VOICE_GATEWAY_ASR_ADDRESS"] == f"{PREFIX}-asr:{service_port(f'{PREFIX}-asr', 'grpc')}"
    assert gateway["VOICE_GATEWAY_TTS_ADDRESS"] == f"{PREFIX}-tts:{service_port(f'{PREFIX}-tts', 'grpc')}"
    assert gateway["VOICE_GATEWAY_LLM_BASE_URL"] == f"http://{PREFIX}-llm:{service_port(f'{PREFIX}-llm', 'http')}/v1"
    values = merged_values(PROFILES[profile])
    llm = values["llm"]
    served = llm["vllm"]["servedModelName"] if llm["engine"] == "vllm" else llm["embedded"]["modelAlias"]
    assert gateway["VOICE_GATEWAY_LLM_MODEL"] == served
    # An instruction-tuned model on vLLM ends its replies itself; the "\n" stop is the base model's.
    assert ("VOICE_GATEWAY_LLM_STOP" in gateway) == (llm["engine"] == "vllm")
    for name in ("gateway", "asr", "tts"):
        ports = {p["name"] for p in services[f"{PREFIX}-{name}"]["spec"]["ports"]}
        assert ports == {"grpc", "metrics"} | ({"http"} if name == "gateway" else set()), name


def test_envoy_reaches_the_gateway_through_the_headless_service() -> None:
    manifests = render()
    headless = one(manifests, "Service", f"{PREFIX}-gateway-headless")
    assert headless["spec"]["clusterIP"] == "None"
    assert headless["spec"]["ports"] == [
        {"name": "grpc", "port": 50051, "targetPort": "grpc", "appProtocol": "kubernetes.io/h2c"},
        {"name": "http", "port": 8080, "targetPort": "http"},
    ]
    config = yaml.safe_load(one(manifests, "ConfigMap", f"{PREFIX}-envoy")["data"]["envoy.yaml"])
    # gRPC Converse to the gRPC port; the Realtime WebSocket and the page to the HTTP port.
    for name, port in (("gateway", 50051), ("gateway-http", 8080)):
        cluster = next(c for c in config["static_resources"]["clusters"] if c["name"] == name)
        assert cluster["type"] == "STRICT_DNS"
        endpoint = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]
        address = endpoint["address"]["socket_address"]
        assert address["address"].startswith(f"{PREFIX}-gateway-headless.{NAMESPACE}."), name
        assert address["port_value"] == port, name


@pytest.mark.parametrize("http_port", [8080, 8090])
def test_the_gateway_serves_its_http_front_on_http_port(http_port: int) -> None:
    # The Realtime WebSocket API and the browser page: VOICE_GATEWAY_HTTP_PORT from gateway.httpPort,
    # a named container port that both Services publish, and Envoy's HTTP cluster on it.
    manifests = render(set_values={"gateway.httpPort": http_port})
    gateway = main_container(manifests, "gateway")
    assert env(gateway)["VOICE_GATEWAY_HTTP_PORT"] == str(http_port)
    assert {p["name"]: p["containerPort"] for p in gateway["ports"]} == {
        "grpc": 50051,
        "http": http_port,
        "metrics": 9101,
    }
    for service in (f"{PREFIX}-gateway", f"{PREFIX}-gateway-headless"):
        ports = {p["name"]: p for p in one(manifests, "Service", service)["spec"]["ports"]}
        assert ports["http"] == {"name": "http", "port": http_port, "targetPort": "http"}, service
    # Readiness stays the gRPC health status (it turns NOT_SERVING while draining, for both fronts).
    assert probed_ports(gateway) == {50051}
    config = yaml.safe_load(one(manifests, "ConfigMap", f"{PREFIX}-envoy")["data"]["envoy.yaml"])
    cluster = next(c for c in config["static_resources"]["clusters"] if c["name"] == "gateway-http")
    assert (
        cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"][
            "port_value"
        ]
        == http_port
    )
    # Without Envoy the port is still there, for networkPolicy.gatewayExtraIngress peers.
    alone = main_container(render(set_values={"envoy.enabled": False}), "gateway")
    assert env(alone)["VOICE_GATEWAY_HTTP_PORT"] == "8080"


def test_the_gateway_reads_its_http_port_setting() -> None:
    assert "VOICE_GATEWAY_HTTP_PORT" in settings_of("gateway")


def test_envoy_service_publishes_only_the_client_port() -> None:
    manifests = render()
    public = one(manifests, "Service", f"{PREFIX}-envoy")
    assert public["spec"]["type"] == "LoadBalancer"
    assert [(p["name"], p["port"], p["targetPort"]) for p in public["spec"]["ports"]] == [("https", 443, "https")]
    admin = one(manifests, "Service", f"{PREFIX}-envoy-admin")
    assert admin["spec"]["type"] == "ClusterIP" and [p["name"] for p in admin["spec"]["ports"]] == ["admin"]
    envoy = main_container(manifests, "envoy")
    assert {p["name"]: p["containerPort"] for p in envoy["ports"]} == {"https": 8443, "admin": 9901}


@pytest.mark.parametrize(("tls", "jwt"), [(True, True), (False, False), (True, False)])
def test_envoy_mounts_tls_and_jwks_only_when_enabled(tls: bool, jwt: bool) -> None:
    values = {
        "envoy": {"tls": {"enabled": tls, "secretName": "edge-cert"}, "jwt": {"enabled": jwt, "jwksKey": "keys.json"}}
    }
    spec = pod_spec(render(set_values=values), "envoy")
    mounts = {m["name"]: m["mountPath"] for m in spec["containers"][0]["volumeMounts"]}
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert ("tls" in mounts) == tls and ("jwt" in mounts) == jwt
    if tls:
        assert mounts["tls"] == "/etc/envoy/tls" and volumes["tls"]["secret"]["secretName"] == "edge-cert"
    if jwt:
        assert mounts["jwt"] == "/etc/envoy/jwt"
        assert volumes["jwt"]["secret"]["items"] == [{"key": "keys.json", "path": "keys.json"}]
    probe = spec["containers"][0]["readinessProbe"]["httpGet"]
    assert probe["scheme"] == ("HTTPS" if tls else "HTTP") and probe["path"] == "/healthz"


def test_project_images_follow_registry_and_tags() -> None:
    manifests = render(set_values={"image": {"registry": "ghcr.io/acme/", "tag": "1.2.3"}, "asr.image.tag": "1.2.4"})
    images = {
        component(spec_labels(manifests, name)): spec["containers"][0]["image"] for name, spec in pod_specs(manifests)
    }
    assert images["gateway"] == "ghcr.io/acme/voice-agent-gateway:1.2.3"
    assert images["asr"] == "ghcr.io/acme/voice-agent-asr:1.2.4"
    assert images["llm"] == "vllm/vllm-openai:v0.32.0"  # third-party images keep their own pinned tags
    assert images["envoy"] == "envoyproxy/envoy:v1.36.2"
    default = {component(spec_labels(render(), n)): s["containers"][0]["image"] for n, s in pod_specs(render())}
    assert default["tts"] == "voice-agent-tts:0.1.0", "default tag: the chart's appVersion"


def test_component_env_overrides_the_charts_own() -> None:
    manifests = render(set_values={"asr.env": {"VOICE_ASR_LOG_FORMAT": "text", "VOICE_ASR_BEAM_SIZE": 5}})
    asr = env(main_container(manifests, "asr"))
    assert asr["VOICE_ASR_LOG_FORMAT"] == "text" and asr["VOICE_ASR_BEAM_SIZE"] == "5"
    assert asr["VOICE_ASR_PORT"] == "50052" and asr["HF_HUB_OFFLINE"] == "1"


# --- models -----------------------------------------------------------------------------------


def test_l4_models_come_from_the_cache_filled_by_the_job() -> None:
    manifests = render(["values-l4.yaml"])
    values = merged_values(["values-l4.yaml"])
    (job,) = by_kind(manifests, "Job").values()
    spec = job["spec"]["template"]["spec"]
    script = spec["containers"][0]["command"][-1]
    for entry in values["models"]["download"]:
        assert f"'{entry['repo']}' --revision '{entry['revision']}' --local-dir '/models/{entry['name']}'" in script
    marker = re.search(r'marker="([^"]+)"', script).group(1)
    assert script.rstrip().splitlines()[-2].strip() == 'touch "$marker"', "the marker is written last"
    token = next(e for e in spec["containers"][0]["env"] if e["name"] == "HF_TOKEN")
    assert token["valueFrom"]["secretKeyRef"] == {"name": "hf-token", "key": "token"}
    claim = one(manifests, "PersistentVolumeClaim", f"{PREFIX}-models")
    assert claim["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    # The Job lands where the GPU pods are (a ReadWriteOnce claim is shared on one node only).
    assert spec["affinity"] == pod_spec(manifests, "llm")["affinity"]
    for comp in ("llm", "asr", "tts"):
        pod = pod_spec(manifests, comp)
        (wait,) = pod["initContainers"]
        assert f"marker={marker}" in wait["command"][-1], f"{comp} waits for this Job's marker"
        assert {"name": "models", "mountPath": "/models", "readOnly": True} in pod["containers"][0]["volumeMounts"]
        assert env(pod["containers"][0])["HF_HUB_OFFLINE"] == "1", f"{comp} must not reach a model hub"
    # A different model list is a different Job (its pod template is immutable) and marker.
    other = render(["values-l4.yaml"], {"models.download": values["models"]["download"][:1]})
    assert set(by_kind(other, "Job")).isdisjoint(by_kind(manifests, "Job"))


def test_cpu_profile_is_embedded_and_gpu_free() -> None:
    manifests = render(["values-cpu.yaml"])
    assert not by_kind(manifests, "PersistentVolumeClaim") and not by_kind(manifests, "Job")
    assert GPU not in yaml.safe_dump(manifests) and "nvidia.com/gpu.product" not in yaml.safe_dump(manifests)
    llm = main_container(manifests, "llm")
    assert llm["command"] == ["python", "-m", "services.llm"] and llm["image"] == "voice-agent-llm:0.1.0"
    assert llm["readinessProbe"]["httpGet"]["path"] == "/v1/models"  # llama.cpp's server has no /health
    assert env(llm)["VOICE_LLM_PORT"] == "8000"
    for name, spec in pod_specs(manifests):
        assert all(v["name"] != "models" for v in spec.get("volumes", [])), name


def test_vllm_arguments_come_from_values() -> None:
    values = {
        "llm.vllm": {
            "quantization": "",
            "maxModelLen": 8192,
            "enablePrefixCaching": False,
            "extraArgs": ["--max-num-seqs", "16"],
        }
    }
    args = main_container(render(set_values=values), "llm")["args"]
    assert "--max-model-len=8192" in args and args[-2:] == ["--max-num-seqs", "16"]
    assert not any(a.startswith("--quantization") for a in args) and "--enable-prefix-caching" not in args
    default = main_container(render(), "llm")["args"]
    for arg in ("--model=/models/llm", "--served-model-name=llama-3.1-8b-instruct", "--enable-prefix-caching"):
        assert arg in default
    assert "--quantization=awq_marlin" in default


# --- observability ----------------------------------------------------------------------------


def matches(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    for key, value in selector.get("matchLabels", {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions", []):
        present, values = expression["key"] in labels, expression.get("values", [])
        ok = {
            "In": present and labels.get(expression["key"]) in values,
            "NotIn": not present or labels.get(expression["key"]) not in values,
            "Exists": present,
            "DoesNotExist": not present,
        }[expression["operator"]]
        if not ok:
            return False
    return True


def test_service_monitors_produce_the_dashboards_job_labels() -> None:
    manifests = render(set_values={"metrics.serviceMonitor.enabled": True})
    services = list(by_kind(manifests, "Service").values())
    jobs = {}
    for monitor in by_kind(manifests, "ServiceMonitor").values():
        spec = monitor["spec"]
        (service,) = [s for s in services if matches(spec["selector"], s["metadata"]["labels"])]
        # Prometheus takes `job` from this label of the Service (jobLabel), not from its name.
        job = service["metadata"]["labels"][spec["jobLabel"]]
        (endpoint,) = spec["endpoints"]
        assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
        jobs[job] = endpoint["path"]
    assert jobs == {
        "voice-gateway": "/metrics",
        "voice-asr": "/metrics",
        "voice-tts": "/metrics",
        "voice-llm": "/metrics",
        "voice-envoy": "/stats/prometheus",
    }
    used = set(re.findall(r'job="([^"]+)"', (CHART / "files" / "alerts.yaml").read_text()))
    for board in (CHART / "dashboards").glob("*.json"):
        used |= set(re.findall(r'job=\\"([^"\\]+)\\"', board.read_text()))
    assert SCRAPE_JOBS <= used <= jobs.keys(), used
    assert not by_kind(render(), "ServiceMonitor"), "off by default: a CRD"


def test_tracing_through_the_charts_collector() -> None:
    values = {
        "tracing": {
            "enabled": True,
            "collector": {"enabled": True, "exporters": {"otlp/tempo": {"endpoint": "tempo:4317"}}},
        }
    }
    manifests = render(["values-l4.yaml"], values)
    endpoint = f"http://{PREFIX}-otel-collector:4317"
    for comp in ("gateway", "asr", "tts"):
        container = main_container(manifests, comp)
        assert env(container)["OTEL_EXPORTER_OTLP_ENDPOINT"] == endpoint
        assert env(container)["OTEL_EXPORTER_OTLP_INSECURE"] == "true"
    llm = main_container(manifests, "llm")
    assert f"--otlp-traces-endpoint={endpoint}" in llm["args"]
    config = yaml.safe_load(one(manifests, "ConfigMap", f"{PREFIX}-otel-collector")["data"]["config.yaml"])
    assert config["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"].endswith(":4317")
    assert config["service"]["pipelines"]["traces"]["exporters"] == ["otlp/tempo"]
    service = one(manifests, "Service", f"{PREFIX}-otel-collector")
    assert [p["port"] for p in service["spec"]["ports"]] == [4317]
    # Off: no OTEL_ variables and no vLLM flag.
    off = yaml.safe_dump(render(["values-l4.yaml"]))
    assert "OTEL_EXPORTER_OTLP_ENDPOINT" not in off and "--otlp-traces-endpoint" not in off


def test_tracing_to_an_existing_collector_and_a_missing_one() -> None:
    manifests = render(set_values={"tracing": {"enabled": True, "endpoint": "http://tempo.monitoring:4317"}})
    gateway = main_container(manifests, "gateway")
    assert env(gateway)["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://tempo.monitoring:4317"
    assert not by_kind(manifests, "Deployment").get(f"{PREFIX}-otel-collector")
    with pytest.raises(helm.HelmRenderError, match=r"tracing\.endpoint"):
        render(set_values={"tracing.enabled": True})


def test_gateway_autoscaling_and_disruption_budgets() -> None:
    manifests = render(set_values={"gateway.autoscaling.sessionsMetric": {"enabled": True, "averageValue": 30}})
    hpa = one(manifests, "HorizontalPodAutoscaler", f"{PREFIX}-gateway")["spec"]
    metrics = {m["type"]: m for m in hpa["metrics"]}
    assert metrics["Resource"]["resource"]["name"] == "cpu"
    assert metrics["Pods"]["pods"]["metric"]["name"] == "voice_gateway_active_sessions"
    assert metrics["Pods"]["pods"]["target"] == {"type": "AverageValue", "averageValue": "30"}
    assert "replicas" not in one(manifests, "Deployment", f"{PREFIX}-gateway")["spec"], "the HPA owns replicas"
    assert set(by_kind(manifests, "PodDisruptionBudget")) == {f"{PREFIX}-gateway", f"{PREFIX}-envoy"}
    default = one(render(), "HorizontalPodAutoscaler", f"{PREFIX}-gateway")["spec"]["metrics"]
    assert [m["type"] for m in default] == ["Resource"], "the sessions metric needs prometheus-adapter: off by default"


# --- network policies -------------------------------------------------------------------------


@dataclass(frozen=True)
class Pod:
    name: str
    labels: dict[str, str] = field(hash=False)
    namespace: str = NAMESPACE
    external: bool = False  # an address outside the cluster (a model hub, a phone)

    @property
    def namespace_labels(self) -> dict[str, str]:
        return {"kubernetes.io/metadata.name": self.namespace}


def peer_matches(peer: dict[str, Any], pod: Pod) -> bool:
    if pod.external:
        return "ipBlock" in peer
    if "ipBlock" in peer:
        return False
    if "namespaceSelector" in peer:
        in_namespace = matches(peer["namespaceSelector"], pod.namespace_labels)
    else:
        in_namespace = pod.namespace == NAMESPACE
    return in_namespace and matches(peer.get("podSelector", {}), pod.labels)


def rule_allows(rule: dict[str, Any], peers_key: str, peer: Pod, port: int, protocol: str) -> bool:
    peers = rule.get(peers_key) or []
    if peers and not any(peer_matches(p, peer) for p in peers):
        return False
    ports = rule.get("ports") or []
    return not ports or any(p.get("port") in (None, port) and p.get("protocol", "TCP") == protocol for p in ports)


def allowed(policies: list[dict[str, Any]], source: Pod, target: Pod, port: int, protocol: str = "TCP") -> bool:
    """Whether NetworkPolicies admit a connection: the source's egress and the target's ingress."""

    def admits(pod: Pod, direction: str, peers_key: str, peer: Pod) -> bool:
        if pod.external or pod.namespace != NAMESPACE:
            return True  # no policy of this chart applies to it
        applicable = [
            p
            for p in policies
            if direction in p["spec"]["policyTypes"] and matches(p["spec"]["podSelector"], pod.labels)
        ]
        rules = [r for p in applicable for r in p["spec"].get(direction.lower(), [])]
        return not applicable or any(rule_allows(r, peers_key, peer, port, protocol) for r in rules)

    return admits(source, "Egress", "to", target) and admits(target, "Ingress", "from", source)


def test_network_policies() -> None:
    manifests = render(["values-l4.yaml"])
    policies = policies_of(manifests)
    pods = {component(labels): Pod(component(labels), labels) for labels in workload_labels(manifests)}
    assert set(pods) == {"gateway", "asr", "tts", "llm", "envoy", "models"}
    others = {
        "prometheus": Pod("prometheus", {"app.kubernetes.io/name": "prometheus"}, namespace="monitoring"),
        "neighbour": Pod("neighbour", {"app": "neighbour"}),  # another app in the release's namespace
        "stranger": Pod("stranger", {"app": "stranger"}, namespace="default"),
        "internet": Pod("internet", {}, external=True),
    }
    everyone = {**pods, **others}

    def who_reaches(target: str, port: int) -> set[str]:
        return {name for name, pod in everyone.items() if name != target and allowed(policies, pod, pods[target], port)}

    # Every pod of the release is under a policy, both ways.
    for name, pod in pods.items():
        types = {t for p in policies if matches(p["spec"]["podSelector"], pod.labels) for t in p["spec"]["policyTypes"]}
        assert types == {"Ingress", "Egress"}, name
    assert who_reaches("gateway", 50051) == {"envoy"}, "only Envoy reaches the gateway"
    assert who_reaches("gateway", 8080) == {"envoy"}, "only Envoy reaches the gateway's HTTP port"
    assert who_reaches("asr", 50052) == {"gateway"}
    assert who_reaches("tts", 50053) == {"gateway"}
    # The LLM serves /metrics on its API port: Prometheus is its one other client.
    assert who_reaches("llm", 8000) == {"gateway", "prometheus"}
    for target, port in (("gateway", 9101), ("asr", 9102), ("tts", 9103), ("envoy", 9901)):
        assert who_reaches(target, port) == {"prometheus"}, f"{target}:{port}"
    assert {"internet", "stranger", "neighbour"} <= who_reaches("envoy", 8443), "clients reach Envoy"
    assert who_reaches("models", 443) == set(), "nothing connects to the download Job"
    dns = Pod("kube-dns", {"k8s-app": "kube-dns"}, namespace="kube-system")
    for name, pod in pods.items():
        assert allowed(policies, pod, dns, 53, "UDP") and allowed(policies, pod, dns, 53, "TCP"), f"{name}: DNS"
    # Only the download Job may leave the cluster (for the model hub); model pods run offline.
    internet = others["internet"]
    assert {name for name, pod in pods.items() if allowed(policies, pod, internet, 443)} == {"models"}
    # More peers for the gateway, e.g. an in-cluster load generator.
    loadgen = {"podSelector": {"matchLabels": {"app": "loadgen"}}}
    extra = policies_of(render(["values-l4.yaml"], {"networkPolicy.gatewayExtraIngress": [loadgen]}))
    assert allowed(extra, Pod("loadgen", {"app": "loadgen"}), pods["gateway"], 50051)
    assert allowed(extra, Pod("loadgen", {"app": "loadgen"}), pods["gateway"], 8080)
    assert not by_kind(render(set_values={"networkPolicy.enabled": False}), "NetworkPolicy")


def test_network_policies_let_traces_reach_the_collector() -> None:
    manifests = render(set_values={"tracing": {"enabled": True, "collector": {"enabled": True}}})
    policies = policies_of(manifests)
    pods = {component(labels): Pod(component(labels), labels) for labels in workload_labels(manifests)}
    for name in ("gateway", "asr", "tts", "llm"):
        assert allowed(policies, pods[name], pods["otel-collector"], 4317), name
    assert not allowed(policies, Pod("stranger", {}, namespace="default"), pods["otel-collector"], 4317)


# --- transport security -----------------------------------------------------------------------

CONFIGS = {"gateway": GatewayConfig, "asr": AsrConfig, "tts": TtsConfig}


def settings_of(comp: str) -> set[str]:
    """The environment variables a component's process reads."""
    config = CONFIGS[comp]
    return {config.env_name(name) for name in config.setting_names()}


def mounted_secrets(spec: dict[str, Any]) -> dict[str, str]:
    """Mount path -> Secret name, for the pod's Secret volumes mounted read-only."""
    secrets = {v["name"]: v["secret"]["secretName"] for v in spec["volumes"] if "secret" in v}
    mounts = spec["containers"][0]["volumeMounts"]
    return {m["mountPath"]: secrets[m["name"]] for m in mounts if m["name"] in secrets and m.get("readOnly")}


def tls_env(container: dict[str, Any]) -> dict[str, str]:
    return {k: v for k, v in env(container).items() if "_TLS_" in k or k.endswith("_HEALTH_PORT")}


def probed_ports(container: dict[str, Any]) -> set[int]:
    return {container[p]["grpc"]["port"] for p in ("startupProbe", "readinessProbe", "livenessProbe")}


def grpc_app_protocol(manifests: list[dict[str, Any]], service: str) -> str | None:
    ports = one(manifests, "Service", service)["spec"]["ports"]
    return next(p for p in ports if p["name"] == "grpc").get("appProtocol")


def test_mtls_wires_one_secret_into_the_backends_and_the_gateway() -> None:
    values = {"mtls": {"enabled": True, "secretName": "voice-mtls", "serverName": "voice-backends"}}
    manifests = render(["values-l4.yaml"], values)
    for comp, prefix, health in (("asr", "VOICE_ASR", 50062), ("tts", "VOICE_TTS", 50063)):
        spec = pod_spec(manifests, comp)
        container = spec["containers"][0]
        assert mounted_secrets(spec) == {"/etc/voice-agent/mtls": "voice-mtls"}, comp
        assert tls_env(container) == {
            f"{prefix}_TLS_CERT_FILE": "/etc/voice-agent/mtls/tls.crt",
            f"{prefix}_TLS_KEY_FILE": "/etc/voice-agent/mtls/tls.key",
            f"{prefix}_TLS_CLIENT_CA_FILE": "/etc/voice-agent/mtls/ca.crt",
            f"{prefix}_HEALTH_PORT": str(health),
        }
        assert tls_env(container).keys() <= settings_of(comp), "the process reads every variable"
        # The kubelet's gRPC probes speak plaintext only: they use the health-only port.
        assert probed_ports(container) == {health}
        assert {"name": "health", "containerPort": health} in container["ports"]
        assert grpc_app_protocol(manifests, f"{PREFIX}-{comp}") is None, "not cleartext HTTP/2 any more"
    gateway = main_container(manifests, "gateway")
    assert mounted_secrets(pod_spec(manifests, "gateway")) == {"/etc/voice-agent/mtls": "voice-mtls"}
    assert tls_env(gateway) == {
        "VOICE_GATEWAY_BACKEND_TLS_CA_FILE": "/etc/voice-agent/mtls/ca.crt",
        "VOICE_GATEWAY_BACKEND_TLS_CERT_FILE": "/etc/voice-agent/mtls/tls.crt",
        "VOICE_GATEWAY_BACKEND_TLS_KEY_FILE": "/etc/voice-agent/mtls/tls.key",
        "VOICE_GATEWAY_BACKEND_TLS_SERVER_NAME": "voice-backends",
    }
    assert tls_env(gateway).keys() <= settings_of("gateway")
    assert probed_ports(gateway) == {50051}, "the gateway's own port stays plaintext behind Envoy"
    # The default Secret name, and nothing of it when off.
    default = render(set_values={"mtls.enabled": True})
    assert mounted_secrets(pod_spec(default, "asr")) == {"/etc/voice-agent/mtls": f"{PREFIX}-mtls"}
    assert "VOICE_GATEWAY_BACKEND_TLS_SERVER_NAME" not in env(main_container(default, "gateway"))
    off = render()
    for comp in ("gateway", "asr", "tts"):
        assert not tls_env(main_container(off, comp)) and not mounted_secrets(pod_spec(off, comp)), comp
        assert grpc_app_protocol(off, f"{PREFIX}-{comp}") == "kubernetes.io/h2c"


def test_the_gateway_serves_tls_from_a_secret_only_without_envoy() -> None:
    manifests = render(set_values={"envoy.enabled": False, "gateway.tls.secretName": "voice-gateway-tls"})
    for doc in manifests:
        if (doc["apiVersion"], doc["kind"]) not in CRD_KINDS:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
    spec = pod_spec(manifests, "gateway")
    gateway = spec["containers"][0]
    assert mounted_secrets(spec) == {"/etc/voice-agent/tls": "voice-gateway-tls"}
    assert tls_env(gateway) == {
        "VOICE_GATEWAY_TLS_CERT_FILE": "/etc/voice-agent/tls/tls.crt",
        "VOICE_GATEWAY_TLS_KEY_FILE": "/etc/voice-agent/tls/tls.key",
        "VOICE_GATEWAY_HEALTH_PORT": "50061",
    }
    assert tls_env(gateway).keys() <= settings_of("gateway")
    assert probed_ports(gateway) == {50061}
    for service in (f"{PREFIX}-gateway", f"{PREFIX}-gateway-headless"):
        assert grpc_app_protocol(manifests, service) is None
    # Envoy reaches the gateway in plaintext: the two together are refused, by name.
    with pytest.raises(helm.HelmRenderError, match=r"gateway\.tls\.secretName"):
        render(set_values={"gateway.tls.secretName": "voice-gateway-tls"})


def test_network_policies_leave_the_plaintext_health_ports_to_the_kubelet() -> None:
    # The health-only ports answer the kubelet (host traffic, outside NetworkPolicy); no pod reaches them,
    # and mTLS changes nothing else: only the gateway reaches asr and tts.
    manifests = render(["values-l4.yaml"], {"mtls.enabled": True})
    policies = policies_of(manifests)
    pods = {component(labels): Pod(component(labels), labels) for labels in workload_labels(manifests)}
    for target, grpc_port, health_port in (("asr", 50052, 50062), ("tts", 50053, 50063)):
        reaching = {name for name, pod in pods.items() if allowed(policies, pod, pods[target], grpc_port)}
        assert reaching == {"gateway"}, target
        assert not any(allowed(policies, pod, pods[target], health_port) for pod in pods.values()), target


def test_templates_render_identically_twice() -> None:
    # No randomness (generated passwords, timestamps): an unchanged upgrade changes nothing.
    assert render_templates(["values-l4.yaml"], EVERYTHING) == render_templates(["values-l4.yaml"], EVERYTHING)


# --- conversation records (docs/conversations.md) --------------------------------------------

RECORDS_IN_CHART = {
    "records": {
        "postgresql": {"enabled": True, "password": "dev p@ss"},
        "recordings": {
            "record": True,
            "s3": {"bucket": "voice-rec", "prefix": "/eu/", "endpoint": "https://minio.example:9000"},
        },
        "retentionDays": 30,
    }
}
MANAGED = {
    "records": {
        "database": {
            "urlSecret": {"name": "voice-db", "key": "dsn"},
            "egressTo": [{"ipBlock": {"cidr": "10.9.0.0/24"}}],
        },
        "recordings": {"s3": {"bucket": "voice-rec", "credentialsSecret": "s3-keys", "port": 9000}},
    }
}


def env_sources(container: dict[str, Any]) -> dict[str, dict[str, str]]:
    return {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container.get("env", []) if "valueFrom" in e}


def test_without_a_database_the_gateway_keeps_records_in_memory_and_records_nothing() -> None:
    manifests = render()
    gateway = main_container(manifests, "gateway")
    assert "VOICE_GATEWAY_RECORDS_URL" not in env(gateway) and "VOICE_GATEWAY_RECORDINGS_URL" not in env(gateway)
    assert env(gateway)["VOICE_GATEWAY_RECORD"] == "false" and env(gateway)["VOICE_GATEWAY_RETENTION_DAYS"] == "0"
    assert not by_kind(manifests, "StatefulSet") and f"{PREFIX}-records-migrate" not in by_kind(manifests, "Job")
    settings = GatewayConfig.setting_names()
    assert {"records_url", "recordings_url", "record", "retention_days"} <= set(settings)


def test_the_development_postgresql_its_url_secret_and_the_migration_hook() -> None:
    manifests = render(set_values=RECORDS_IN_CHART)
    pg = f"{PREFIX}-postgresql"
    secret = one(manifests, "Secret", pg)["stringData"]
    assert secret["url"] == f"postgresql://voice:dev+p%40ss@{pg}:5432/voice"  # the password URL-quoted
    statefulset = one(manifests, "StatefulSet", pg)["spec"]
    assert statefulset["replicas"] == 1 and statefulset["volumeClaimTemplates"][0]["spec"]["resources"]
    pod = statefulset["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] and pod["containers"][0]["securityContext"]["readOnlyRootFilesystem"]
    assert one(manifests, "Service", pg)["spec"]["ports"][0]["port"] == 5432

    gateway = main_container(manifests, "gateway")
    assert env_sources(gateway)["VOICE_GATEWAY_RECORDS_URL"] == {"name": pg, "key": "url"}
    assert env(gateway)["VOICE_GATEWAY_RECORDINGS_URL"] == "s3://voice-rec/eu"
    assert env(gateway)["AWS_ENDPOINT_URL_S3"] == "https://minio.example:9000"
    assert env(gateway)["VOICE_GATEWAY_RECORD"] == "true" and env(gateway)["VOICE_GATEWAY_RETENTION_DAYS"] == "30"

    job = one(manifests, "Job", f"{PREFIX}-records-migrate")
    annotations = job["metadata"]["annotations"]
    assert annotations["helm.sh/hook"] == "post-install,pre-upgrade"
    assert "hook-succeeded" in annotations["helm.sh/hook-delete-policy"]
    migrate = job["spec"]["template"]["spec"]["containers"][0]
    assert migrate["command"] == ["python", "-m", "gateway.records.migrate"]
    assert migrate["image"] == gateway["image"]
    assert env_sources(migrate) == {"VOICE_GATEWAY_RECORDS_URL": {"name": pg, "key": "url"}}  # no S3 keys
    for doc in manifests:
        if (doc["apiVersion"], doc["kind"]) not in CRD_KINDS:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_a_managed_database_and_s3_from_secrets() -> None:
    manifests = render(set_values=MANAGED)
    gateway = main_container(manifests, "gateway")
    sources = env_sources(gateway)
    assert sources["VOICE_GATEWAY_RECORDS_URL"] == {"name": "voice-db", "key": "dsn"}
    assert sources["AWS_ACCESS_KEY_ID"] == {"name": "s3-keys", "key": "AWS_ACCESS_KEY_ID"}
    assert sources["AWS_SECRET_ACCESS_KEY"] == {"name": "s3-keys", "key": "AWS_SECRET_ACCESS_KEY"}
    assert env(gateway)["VOICE_GATEWAY_RECORDINGS_URL"] == "s3://voice-rec/recordings"
    assert "AWS_ENDPOINT_URL_S3" not in env(gateway)  # AWS itself
    assert not by_kind(manifests, "StatefulSet")
    assert one(manifests, "Job", f"{PREFIX}-records-migrate")
    no_job = render(set_values={**MANAGED, "records": {**MANAGED["records"], "migrations": {"enabled": False}}})
    assert f"{PREFIX}-records-migrate" not in by_kind(no_job, "Job")


@pytest.mark.parametrize(
    ("values", "complaint"),
    [
        ({"records": {"postgresql": {"enabled": True}}}, "password is required"),
        (
            {"records": {"postgresql": {"enabled": True, "password": "x"}, "database": {"urlSecret": {"name": "db"}}}},
            "not both",
        ),
        ({"records": {"recordings": {"s3": {"bucket": "Not_A_Bucket"}}}}, "bucket"),
        ({"records": {"retentionDays": -1}}, "retentionDays"),
        ({"records": {"postgres": {}}}, "postgres"),
    ],
)
def test_bad_records_values_are_refused(values: dict[str, Any], complaint: str) -> None:
    with pytest.raises((helm.HelmValuesError, helm.HelmError), match=complaint):
        render(set_values=values)


def test_network_policies_for_the_records() -> None:
    manifests = render(["values-l4.yaml"], RECORDS_IN_CHART)
    policies = policies_of(manifests)
    labels = [
        *workload_labels(manifests),
        one(manifests, "StatefulSet", f"{PREFIX}-postgresql")["spec"]["template"]["metadata"]["labels"],
    ]
    pods = {component(pod_labels): Pod(component(pod_labels), pod_labels) for pod_labels in labels}
    assert {"postgresql", "records-migrate"} <= set(pods)
    everyone = {
        **pods,
        "neighbour": Pod("neighbour", {"app": "neighbour"}),
        "internet": Pod("internet", {}, external=True),
    }
    reaches_pg = {
        name
        for name, pod in everyone.items()
        if name != "postgresql" and allowed(policies, pod, pods["postgresql"], 5432)
    }
    assert reaches_pg == {"gateway", "records-migrate"}
    assert not allowed(policies, pods["postgresql"], everyone["internet"], 443), "the database stays offline"
    assert not allowed(policies, pods["records-migrate"], everyone["internet"], 443)
    assert allowed(policies, pods["gateway"], everyone["internet"], 443), "the S3 endpoint, on its port"
    assert not allowed(policies, pods["gateway"], everyone["internet"], 5432)

    managed = policies_of(render(["values-l4.yaml"], MANAGED))
    database = Pod("rds", {}, external=True)
    gateway = Pod("gateway", pods["gateway"].labels)
    assert allowed(managed, gateway, database, 5432) and allowed(managed, gateway, database, 9000)
    assert not allowed(managed, gateway, database, 443)
