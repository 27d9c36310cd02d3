"""The chart's Envoy bootstrap (deploy/helm/voice-agent/files/envoy.yaml): rendered by Helm's own
Go SDK (helm-python-sdk) for each profile, parsed strictly into Envoy's Bootstrap proto by
deploy/envoy/validate.py (xds-protos, in its own venv .venv-envoy), and checked for the
properties long-lived conversation streams need: gRPC Converse, and the Realtime WebSocket and the
browser page on the gateway's HTTP port. No cluster, no Envoy binary, no network."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import helm_python as helm
import pytest
import yaml
from helm_render import CHART, compose, merged_values
from helm_render import render as render_chart

ROOT = Path(__file__).resolve().parents[1]
VALIDATE = ROOT / "deploy" / "envoy" / "validate.py"
ENVOY_PYTHON = ROOT / ".venv-envoy" / "bin" / "python"
RELEASE, NAMESPACE = "va", "voice"

# The chart renders files/envoy.yaml exactly this way (tpl, so that it can use the values and
# the helpers); the test renders that one file in a copy of the chart with just this template,
# which keeps it independent of the chart's other templates and tests exactly the file.
CONFIGMAP = """apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ include "voice-agent.fullname" . }}-envoy
data:
  envoy.yaml: |-
    {{- tpl (.Files.Get "files/envoy.yaml") . | nindent 4 }}
"""
# The agreed Envoy values: the contract between files/envoy.yaml and the chart's templates.
CONTRACT = {
    "port",
    "adminPort",
    "tls.enabled",
    "tls.secretName",
    "jwt.enabled",
    "jwt.issuer",
    "jwt.audiences",
    "jwt.jwksSecretName",
    "jwt.jwksKey",
    "cors.allowOrigins",
    "streamIdleTimeout",
    "maxStreamDuration",
}
PROFILES = sorted(p.name for p in CHART.glob("values-*.yaml"))
CASES: dict[str, tuple[list[str], dict[str, Any]]] = {
    "defaults": ([], {}),
    # Development: plaintext and no authentication.
    "dev": ([], {"envoy": {"tls": {"enabled": False}, "jwt": {"enabled": False}}}),
    # Every value set to something other than its default, so that each one visibly flows through.
    "configured": (
        [],
        {
            "gateway": {"port": 50061, "httpPort": 8081},
            "envoy": {
                "port": 9443,
                "adminPort": 9902,
                "jwt": {
                    "issuer": "https://auth.example.com/",
                    "audiences": ["voice-agent", "voice-agent-web"],
                    "jwksKey": "keys.json",
                },
                "cors": {"allowOrigins": ["https://app.example.com", "https://coach.example.com"]},
                "streamIdleTimeout": "120s",
                "maxStreamDuration": "1800s",
            },
        },
    ),
    **{profile.removesuffix(".yaml"): ([profile], {}) for profile in PROFILES},
}
HCM = "envoy.filters.network.http_connection_manager"
LUA = "envoy.filters.http.lua"
JWT = "envoy.filters.http.jwt_authn"
GRPC_WEB_HEADERS = {"x-grpc-web", "content-type", "authorization", "x-user-agent", "grpc-timeout", "traceparent"}


def render_file(workdir: Path, values_files: list[str], set_values: dict[str, Any]) -> tuple[str, str]:
    """files/envoy.yaml rendered on its own, as the chart's ConfigMap renders it: (fullname, envoy.yaml)."""
    chart = workdir / "voice-agent"
    if not chart.exists():
        (chart / "templates").mkdir(parents=True)
        # Only the metadata: the copy has no subcharts, whatever the chart depends on.
        meta = yaml.safe_load((CHART / "Chart.yaml").read_text())
        keep = ("apiVersion", "name", "version", "appVersion", "type")
        (chart / "Chart.yaml").write_text(yaml.safe_dump({k: meta[k] for k in keep if k in meta}))
        shutil.copy(CHART / "values.yaml", chart / "values.yaml")
        shutil.copy(CHART / "templates" / "_helpers.tpl", chart / "templates" / "_helpers.tpl")
        shutil.copytree(CHART / "files", chart / "files")
        (chart / "templates" / "envoy-configmap.yaml").write_text(CONFIGMAP)
    with helm.Chart.load(chart) as loaded:
        manifests = loaded.render(values=compose(values_files, set_values), name=RELEASE, namespace=NAMESPACE)
    configmap = yaml.safe_load(manifests["voice-agent/templates/envoy-configmap.yaml"])
    return configmap["metadata"]["name"].removesuffix("-envoy"), configmap["data"]["envoy.yaml"]


def render_from_chart(values_files: list[str], set_values: dict[str, Any]) -> tuple[str, str]:
    """The whole chart rendered, and its Envoy ConfigMap's envoy.yaml: (fullname, envoy.yaml)."""
    manifests = render_chart([str(CHART / name) for name in values_files], set_values)
    [configmap] = [m for m in manifests if m.get("kind") == "ConfigMap" and "envoy.yaml" in (m.get("data") or {})]
    return configmap["metadata"]["name"].removesuffix("-envoy"), configmap["data"]["envoy.yaml"]


def validate(text: str, *args: str) -> subprocess.CompletedProcess[str]:
    """deploy/envoy/validate.py under .venv-envoy: the file named in args, else text on stdin."""
    if not ENVOY_PYTHON.exists():  # a failure, not a skip: the check must not silently vanish
        pytest.fail(f"{ENVOY_PYTHON.relative_to(ROOT)} (xds-protos in its own venv) is missing: run make envoy-setup")
    return subprocess.run(
        [str(ENVOY_PYTHON), str(VALIDATE), *(args or ("-",))],
        input=text,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def walk(node: Any) -> Iterator[tuple[Any, Any]]:
    """Every (key, value) pair of every mapping in the document."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield key, value
            yield from walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from walk(item)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("envoy-chart")


@pytest.fixture(scope="module")
def default_render(workdir: Path) -> str:
    return render_file(workdir, *CASES["defaults"])[1]


def test_chart_values_carry_the_envoy_contract() -> None:
    envoy = yaml.safe_load((CHART / "values.yaml").read_text()).get("envoy") or {}

    def has(path: str) -> bool:
        node: Any = envoy
        for part in path.split("."):
            if not isinstance(node, dict) or part not in node:
                return False
            node = node[part]
        return True

    missing = sorted(path for path in CONTRACT if not has(path))
    assert not missing, f"values.yaml lacks envoy.{', envoy.'.join(missing)}, which files/envoy.yaml uses"


@pytest.mark.parametrize("source", ["file", "chart"])
@pytest.mark.parametrize("case", list(CASES))
def test_rendered_bootstrap_is_strictly_valid_and_fit_for_long_streams(workdir: Path, case: str, source: str) -> None:
    """source "file": files/envoy.yaml alone; "chart": the Envoy ConfigMap of the whole chart."""
    if source == "file":
        fullname, text = render_file(workdir, *CASES[case])
    else:
        fullname, text = render_from_chart(*CASES[case])
    result = validate(text)
    assert result.returncode == 0, f"{case}: {result.stderr}"
    assert "valid envoy.config.bootstrap.v3.Bootstrap" in result.stdout
    assert "deprecated" not in result.stderr, result.stderr

    envoy = merged_values(*CASES[case])["envoy"]
    config = yaml.safe_load(text)
    [listener] = config["static_resources"]["listeners"]
    [chain] = listener["filter_chains"]
    [hcm] = [f["typed_config"] for f in chain["filters"] if f["name"] == HCM]
    filters = [f["name"] for f in hcm["http_filters"]]
    [vhost] = hcm["route_config"]["virtual_hosts"]
    [converse] = [r for r in vhost["routes"] if r["match"].get("path") == "/voice_agent.v1.Gateway/Converse"]
    clusters = {c["name"]: c for c in config["static_resources"]["clusters"]}
    assert set(clusters) == {"gateway", "gateway-http"}
    cluster = clusters["gateway"]

    # Ports, and the admin interface where Prometheus scrapes /stats/prometheus.
    assert listener["address"]["socket_address"]["port_value"] == envoy["port"]
    assert config["admin"]["address"]["socket_address"] == {"address": "0.0.0.0", "port_value": envoy["adminPort"]}

    # Long-lived streams: no per-request timeout, an idle and a maximum duration from the values,
    # and no retries anywhere (a retried Converse would replay a conversation into a new session).
    assert hcm["stream_idle_timeout"] == envoy["streamIdleTimeout"]
    assert converse["route"]["timeout"] == "0s"
    assert converse["route"]["max_stream_duration"] == {
        "max_stream_duration": envoy["maxStreamDuration"],
        "grpc_timeout_header_max": envoy["maxStreamDuration"],
    }
    assert "request_timeout" not in hcm
    assert not [key for key, _ in walk(config) if key in ("retry_policy", "hedge_policy")]
    assert hcm["use_remote_address"] is True

    # Upstream: every gateway pod through the headless Service, over HTTP/2, health-checked.
    assert converse["route"]["cluster"] == cluster["name"]
    assert cluster["type"] == "STRICT_DNS"
    [[endpoint]] = [group["lb_endpoints"] for group in cluster["load_assignment"]["endpoints"]]
    upstream = endpoint["endpoint"]["address"]["socket_address"]
    assert upstream["port_value"] == merged_values(*CASES[case])["gateway"]["port"]
    assert upstream["address"].startswith(f"{fullname}-gateway-headless.")
    assert upstream["address"].endswith(".svc.cluster.local")
    if source == "file":  # the whole chart's release namespace is helm_render's choice
        assert upstream["address"] == f"{fullname}-gateway-headless.{NAMESPACE}.svc.cluster.local"
    options = cluster["typed_extension_protocol_options"]["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]
    assert "http2_protocol_options" in options["explicit_http_config"]
    assert [check["grpc_health_check"] for check in cluster["health_checks"]] == [{"service_name": ""}]
    assert cluster["outlier_detection"]

    # Filters: the JWT filter exactly when authentication is on, gRPC-Web and CORS always, the
    # router last, the pod's own /healthz first (its probes carry no token).
    assert (JWT in filters) == envoy["jwt"]["enabled"]
    assert (JWT in converse.get("typed_per_filter_config", {})) == envoy["jwt"]["enabled"]
    assert {"envoy.filters.http.grpc_web", "envoy.filters.http.cors"} <= set(filters)
    assert filters[0] == "envoy.filters.http.health_check"
    assert filters[-1] == "envoy.filters.http.router"
    assert filters.index("envoy.filters.http.cors") < filters.index("envoy.filters.http.router")
    if envoy["jwt"]["enabled"]:
        assert filters.index("envoy.filters.http.cors") < filters.index(JWT)
        jwt = hcm["http_filters"][filters.index(JWT)]["typed_config"]
        [provider] = jwt["providers"].values()
        assert provider["local_jwks"] == {"filename": f"/etc/envoy/jwt/{envoy['jwt']['jwksKey']}"}
        assert provider["forward"] is True
        assert provider["from_headers"] == [{"name": "Authorization", "value_prefix": "Bearer "}]
        assert provider.get("issuer", "") == envoy["jwt"]["issuer"]
        assert provider.get("audiences", []) == envoy["jwt"]["audiences"]
        requirement = converse["typed_per_filter_config"][JWT]["requirement_name"]
        assert jwt["requirement_map"][requirement] == {"provider_name": "voice-agent"}

    # CORS for browsers: the allowed origins, the headers gRPC-Web sends, the status it must read.
    cors = converse["typed_per_filter_config"]["envoy.filters.http.cors"]
    origins = [
        ".*" if "safe_regex" in match else match["exact"] for match in cors.get("allow_origin_string_match") or []
    ]
    assert origins == [".*" if o == "*" else o for o in envoy["cors"]["allowOrigins"]]
    assert {h.strip() for h in cors["allow_headers"].split(",")} >= GRPC_WEB_HEADERS
    assert {h.strip() for h in cors["expose_headers"].split(",")} >= {"grpc-status", "grpc-message"}

    # TLS termination (HTTP/2 and HTTP/1.1 by ALPN) exactly when enabled.
    assert ("transport_socket" in chain) == envoy["tls"]["enabled"]
    if envoy["tls"]["enabled"]:
        tls = chain["transport_socket"]["typed_config"]["common_tls_context"]
        assert tls["alpn_protocols"] == ["h2", "http/1.1"]
        assert tls["tls_certificates"] == [
            {
                "certificate_chain": {"filename": "/etc/envoy/tls/tls.crt"},
                "private_key": {"filename": "/etc/envoy/tls/tls.key"},
            }
        ]

    # The second front, on the gateway's HTTP port: the Realtime WebSocket and the browser page.
    check_http_front(config, fullname, source, merged_values(*CASES[case]))

    # Access logs: JSON on stdout, and never the bearer token.
    logs = [log for key, value in walk(config) if key == "access_log" for log in value]
    assert logs
    for log in logs:
        assert log["name"] == "envoy.access_loggers.stdout"
        fields = log["typed_config"]["log_format"]["json_format"]
        assert "authorization" not in json.dumps(fields).lower(), fields


def check_http_front(config: dict[str, Any], fullname: str, source: str, values: dict[str, Any]) -> None:
    """/v1/realtime upgraded to a WebSocket and / (GET, HEAD) routed to the gateway's HTTP port over
    HTTP/1.1, timed like Converse, with Converse's JWT check (a browser's token taken from the
    WebSocket subprotocol) and none for the page."""
    envoy = values["envoy"]
    [listener] = config["static_resources"]["listeners"]
    [hcm] = [f["typed_config"] for f in listener["filter_chains"][0]["filters"] if f["name"] == HCM]
    [vhost] = hcm["route_config"]["virtual_hosts"]
    routes = {route["name"]: route for route in vhost["routes"]}
    names = [route["name"] for route in vhost["routes"]]
    assert names == ["converse", "realtime", "conversations", "conversations-http", "web"], "the catch-all last"
    realtime, web, converse = routes["realtime"], routes["web"], routes["converse"]
    records_grpc, records_http = routes["conversations"], routes["conversations-http"]
    clusters = {c["name"]: c for c in config["static_resources"]["clusters"]}

    # The Realtime API: its exact path (a ?model= query does not take part in the match), upgraded
    # to a WebSocket; upgrades nowhere else (not on the listener, not on the other routes).
    assert realtime["match"] == {"path": "/v1/realtime"}
    assert realtime["route"]["cluster"] == "gateway-http"
    assert realtime["route"]["upgrade_configs"] == [{"upgrade_type": "websocket"}]
    upgrades = [value for key, value in walk(config) if key == "upgrade_configs"]
    assert upgrades == [realtime["route"]["upgrade_configs"]], "only /v1/realtime may become a WebSocket"
    # A long-lived socket: no per-request timeout, Converse's bounds (the idle one is the listener's).
    assert realtime["route"]["timeout"] == "0s"
    assert realtime["route"]["max_stream_duration"] == {"max_stream_duration": envoy["maxStreamDuration"]}
    assert hcm["stream_idle_timeout"] == envoy["streamIdleTimeout"]

    # The page: every GET and HEAD not routed before; gRPC (POST) to other methods finds no route.
    assert web["match"] == {
        "prefix": "/",
        "headers": [{"name": ":method", "string_match": {"safe_regex": {"regex": "GET|HEAD"}}}],
    }
    assert web["route"]["cluster"] == "gateway-http"
    assert web["route"]["timeout"] not in ("0s", None)

    # The conversation records: the whole gRPC service, and GET/DELETE under /v1/conversations, bounded.
    assert records_grpc["match"] == {"prefix": "/voice_agent.v1.Conversations/"}
    assert records_grpc["route"]["cluster"] == "gateway"
    assert records_http["match"]["safe_regex"] == {"regex": "/v1/conversations(/.*)?"}
    assert records_http["match"]["headers"][0]["string_match"] == {"safe_regex": {"regex": "GET|HEAD|DELETE"}}
    assert records_http["route"]["cluster"] == "gateway-http"
    assert all(route["route"]["timeout"] not in ("0s", None) for route in (records_grpc, records_http))

    # Authentication: the realtime and records routes require what Converse requires; the page nothing.
    http_filters = hcm["http_filters"]
    names = [f["name"] for f in http_filters]
    if envoy["jwt"]["enabled"]:
        per_route = realtime["typed_per_filter_config"]
        assert per_route[JWT] == converse["typed_per_filter_config"][JWT]
        for route in (records_grpc, records_http):
            assert route["typed_per_filter_config"][JWT] == converse["typed_per_filter_config"][JWT]
        assert web["typed_per_filter_config"][JWT]["disabled"] is True
        # A browser's token arrives as the subprotocol openai-insecure-api-key.<token>: the Lua
        # filter, off except on the realtime route, copies it into Authorization before the JWT check.
        lua = http_filters[names.index(LUA)]
        assert lua["disabled"] is True
        assert names.index("envoy.filters.http.cors") < names.index(LUA) < names.index(JWT)
        script = lua["typed_config"]["source_codes"][per_route[LUA]["name"]]["inline_string"]
        assert "sec-websocket-protocol" in script and "openai%-insecure%-api%-key%." in script
        assert 'headers:add("authorization", "Bearer " .. token)' in script
        assert [route for route in routes.values() if LUA in route.get("typed_per_filter_config", {})] == [realtime]
        # The header stays for the gateway (it answers with an offered subprotocol): forwarded as is.
        [provider] = http_filters[names.index(JWT)]["typed_config"]["providers"].values()
        assert provider["forward"] is True
    else:
        assert LUA not in names
        assert "typed_per_filter_config" not in realtime and "typed_per_filter_config" not in web

    # The HTTP cluster: every gateway pod through the headless Service, on the HTTP port, over
    # HTTP/1.1 (the upgrade is HTTP/1.1's), health-checked on the gateway's /healthz.
    cluster = clusters["gateway-http"]
    assert cluster["type"] == "STRICT_DNS" and cluster["lb_policy"] == "LEAST_REQUEST"
    [[endpoint]] = [group["lb_endpoints"] for group in cluster["load_assignment"]["endpoints"]]
    upstream = endpoint["endpoint"]["address"]["socket_address"]
    assert upstream["port_value"] == values["gateway"]["httpPort"] != values["gateway"]["port"]
    grpc_upstream = clusters["gateway"]["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]
    assert upstream["address"] == grpc_upstream["address"]["socket_address"]["address"]
    if source == "file":
        assert upstream["address"] == f"{fullname}-gateway-headless.{NAMESPACE}.svc.cluster.local"
    options = cluster["typed_extension_protocol_options"]["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]
    assert options["explicit_http_config"] == {"http_protocol_options": {}}
    assert [check["http_health_check"] for check in cluster["health_checks"]] == [{"path": "/healthz"}]
    assert cluster["outlier_detection"]
    # One upstream connection per socket: the connection limit is not below the listener's cap.
    [monitor] = config["overload_manager"]["resource_monitors"]
    cap = monitor["typed_config"]["max_active_downstream_connections"]
    [thresholds] = cluster["circuit_breakers"]["thresholds"]
    assert thresholds["max_connections"] >= cap and thresholds["max_requests"] >= cap


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        # A plain Bootstrap field (the upstream cluster's).
        ("connect_timeout:", "conect_timeout:", "static_resources.clusters[0].conect_timeout"),
        # A field inside an extension's typed_config (an Any): the HTTP connection manager's.
        ("stream_idle_timeout:", "stream_idle_timout:", "<HttpConnectionManager>.stream_idle_timout"),
        # An Any inside an Any: the JWT provider inside an HTTP filter inside the HCM.
        ("local_jwks:", "local_jwk:", "<JwtAuthentication>.providers[voice-agent].local_jwk"),
        # The WebSocket upgrade of the realtime route, and the Lua filter's scripts.
        ("upgrade_type:", "upgrade_typ:", "upgrade_configs[0].upgrade_typ"),
        ("source_codes:", "source_code:", "<Lua>.source_code"),
        # An extension type that does not exist.
        ("cors.v3.CorsPolicy", "cors.v3.CorsPolicyy", "unknown type"),
        # Values of the wrong kind: a Duration must be a string with a unit, an enum a known name.
        ("timeout: 0s", "timeout: 0", "route.timeout"),
        ("codec_type: AUTO", "codec_type: AUTOMATIC", "codec_type"),
    ],
)
def test_a_misspelled_field_is_rejected(default_render: str, tmp_path: Path, old: str, new: str, expected: str) -> None:
    assert old in default_render
    broken = tmp_path / "envoy.yaml"
    broken.write_text(default_render.replace(old, new, 1))
    result = validate("", str(broken))
    assert result.returncode == 1, result.stdout
    assert expected in result.stderr, result.stderr
    assert not result.stdout
