"""What the tests observe the services with: an OTLP trace receiver and a real Prometheus server.

The receiver is a plain (uninstrumented) gRPC server built from opentelemetry-proto's
TraceService, in a thread of the test process, so that it takes spans while the
event loop runs a test or sits idle between tests.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import shutil
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import grpc
import yaml
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1 import common_pb2

from voice_agent.service_spec import LOCAL_HOST
from voice_ops.stack import free_port


@dataclass(frozen=True)
class ReceivedSpan:
    service: str
    name: str
    trace_id: str
    span_id: str
    parent_id: str  # "" for a root span
    attributes: dict[str, Any]
    linked_trace_ids: tuple[str, ...] = field(default=())


def _value(value: common_pb2.AnyValue) -> Any:
    kind = value.WhichOneof("value")
    return getattr(value, kind) if kind in {"string_value", "bool_value", "int_value", "double_value"} else None


def _attributes(attributes: Any) -> dict[str, Any]:
    return {a.key: _value(a.value) for a in attributes}


class OtlpReceiver(trace_service_pb2_grpc.TraceServiceServicer):
    """Collects every span exported to it over OTLP/gRPC."""

    def __init__(self) -> None:
        self.spans: list[ReceivedSpan] = []
        self._arrived = threading.Condition()
        self.endpoint = ""

    def Export(  # noqa: N802 - the gRPC method name
        self, request: trace_service_pb2.ExportTraceServiceRequest, context: grpc.ServicerContext
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        received = [
            ReceivedSpan(
                service=_attributes(resource_spans.resource.attributes).get("service.name", ""),
                name=span.name,
                trace_id=span.trace_id.hex(),
                span_id=span.span_id.hex(),
                parent_id=span.parent_span_id.hex(),
                attributes=_attributes(span.attributes),
                linked_trace_ids=tuple(link.trace_id.hex() for link in span.links),
            )
            for resource_spans in request.resource_spans
            for scope_spans in resource_spans.scope_spans
            for span in scope_spans.spans
        ]
        with self._arrived:
            self.spans.extend(received)
            self._arrived.notify_all()
        return trace_service_pb2.ExportTraceServiceResponse()

    def wait_for(self, found: Callable[[list[ReceivedSpan]], bool], timeout_s: float = 30.0) -> list[ReceivedSpan]:
        """The spans received so far, once ``found`` accepts them; fails after the timeout."""
        with self._arrived:
            if not self._arrived.wait_for(lambda: found(self.spans), timeout_s):
                raise AssertionError(f"spans not received in {timeout_s} s; got {[s.name for s in self.spans]}")
            return list(self.spans)

    @classmethod
    @contextlib.contextmanager
    def serving(cls) -> Iterator[OtlpReceiver]:
        receiver = cls()
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(receiver, server)
        port = server.add_insecure_port(f"{LOCAL_HOST}:0")
        server.start()
        receiver.endpoint = f"http://{LOCAL_HOST}:{port}"
        try:
            yield receiver
        finally:
            server.stop(grace=None)


class Prometheus:
    """Debian's Prometheus server on loopback, scraping the given jobs every second."""

    def __init__(self, targets: dict[str, str], workdir: Path) -> None:
        binary = shutil.which("prometheus")
        assert binary, "prometheus is not installed: run `make setup` (it installs Debian's prometheus package)"
        self.port = free_port()
        self.url = f"http://{LOCAL_HOST}:{self.port}"
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "scrape_configs": [
                {"job_name": job, "static_configs": [{"targets": [target]}]} for job, target in targets.items()
            ],
        }
        (workdir / "prometheus.yml").write_text(json.dumps(config))  # JSON is YAML
        self.log = workdir / "prometheus.log"
        command = [binary, f"--config.file={workdir / 'prometheus.yml'}", f"--storage.tsdb.path={workdir / 'data'}"]
        command += [f"--web.listen-address={LOCAL_HOST}:{self.port}", "--enable-feature=exemplar-storage"]
        with open(self.log, "wb") as out:
            self._process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)

    def api(self, path: str, **params: str) -> Any:
        url = f"{self.url}/api/v1/{path}?{urllib.parse.urlencode(params)}"
        with urllib.request.urlopen(url, timeout=10) as response:
            body = json.load(response)
        assert body["status"] == "success", body
        return body["data"]

    def wait_until(self, done: Callable[[], bool], timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                if done():
                    return
            except OSError:  # still starting
                pass
            assert self._process.poll() is None, self.log.read_text()[-3000:]
            assert time.monotonic() < deadline, f"{what} within {timeout_s} s"
            time.sleep(0.5)

    def has_data(self, series: str) -> bool:
        return bool(self.api("query", query=f'count({{__name__="{series}"}})')["result"])

    def stop(self) -> None:
        self._process.terminate()
        self._process.wait(timeout=30)


REPO = Path(__file__).resolve().parents[1]


def dashboards_module() -> ModuleType:
    """deploy/grafana/dashboards.py, the dashboards generator (deploy/ is not a package: loaded by path)."""
    path = REPO / "deploy" / "grafana" / "dashboards.py"
    spec = importlib.util.spec_from_file_location("voice_agent_dashboards", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def dashboard_and_rule_series() -> set[str]:
    """Every series the dashboards and alert rules query."""
    dashboards = dashboards_module()
    rules = yaml.safe_load((REPO / "deploy" / "helm" / "voice-agent" / "files" / "alerts.yaml").read_text())
    exprs = [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    return dashboards.referenced_metrics() | {m for expr in exprs for m in dashboards.metrics_in_promql(expr)}
