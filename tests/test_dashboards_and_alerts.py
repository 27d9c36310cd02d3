"""The chart's Grafana dashboards and Prometheus alerts: generated, consistent with the metric
catalogue of docs/observability.md, and valid for promtool. No servers, no network."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml
from collectors import dashboards_module

ROOT = Path(__file__).resolve().parents[1]
CHART = ROOT / "deploy" / "helm" / "voice-agent"
RULES = CHART / "files" / "alerts.yaml"
RULE_TESTS = ROOT / "deploy" / "prometheus" / "alerts_test.yaml"
CATALOGUE = ROOT / "docs" / "observability.md"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
# Series Prometheus makes itself for every target, not listed in the catalogue.
SYNTHETIC = {"up"}


@pytest.fixture(scope="module")
def generator() -> ModuleType:
    return dashboards_module()


@pytest.fixture(scope="module")
def boards(generator: ModuleType) -> dict[str, dict[str, Any]]:
    return generator.dashboards()


def panels(model: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in model["panels"] if p["type"] != "row"]


def rules() -> list[dict[str, Any]]:
    return [rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]]


def catalogue() -> dict[str, str | None]:
    """Metric name -> type ("histogram", "counter", "gauge"), or None for names the doc lists
    in prose without a type (vLLM's and DCGM's)."""
    section = CATALOGUE.read_text().split("## Metrics", 1)[1]
    names: dict[str, str | None] = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and len(cells) >= 2:  # metric tables: name(s) in the first column, type second
            for name in re.findall(r"`([^`]+)`", cells[0]):
                if cells[1]:
                    names[name] = cells[1]
                else:  # the LLM's "as above" row: keep the type from the first table
                    names.setdefault(name, None)
        else:  # prose: only full names (not `voice_`, `_total`, `vllm:` or label values like `asr`)
            for name in re.findall(r"`([a-zA-Z][\w:]*[a-zA-Z0-9])`", line):
                if "_" in name or ":" in name:
                    names.setdefault(name, None)
    return {n: t for n, t in names.items() if METRIC_NAME.fullmatch(n)}


def in_catalogue(series: str, known: dict[str, str | None]) -> bool:
    """Histograms are queried as _bucket/_sum/_count, counters and gauges by their own name;
    an untyped name may appear in any of those forms or with _total."""
    if series in known:
        return known[series] in ("counter", "gauge", None)
    base, _, suffix = series.rpartition("_")
    if base in known and suffix in ("bucket", "sum", "count"):
        return known[base] in ("histogram", None)
    return base in known and suffix == "total" and known[base] is None


def test_committed_dashboards_are_up_to_date(generator: ModuleType, boards: dict[str, dict[str, Any]]) -> None:
    on_disk = {p.name: p.read_text() for p in (CHART / "dashboards").glob("*.json")}
    generated = {name: generator.render(model) for name, model in boards.items()}
    stale = sorted(n for n in on_disk.keys() | generated.keys() if on_disk.get(n) != generated.get(n))
    assert not stale, (
        f"dashboards differ from deploy/grafana/dashboards.py: {stale}; run `python deploy/grafana/dashboards.py`"
    )


def test_every_panel_queries_the_datasource_variable(boards: dict[str, dict[str, Any]]) -> None:
    assert len({m["uid"] for m in boards.values()}) == len(boards), "dashboard uids must be distinct"
    for name, model in boards.items():
        variables = {v["name"]: v for v in model["templating"]["list"]}
        assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
        ids = [p["id"] for p in model["panels"]]
        assert len(set(ids)) == len(ids), f"{name}: panel ids must be unique"
        for panel in panels(model):
            where = f"{name}: {panel['title']!r}"
            assert panel["datasource"] == DATASOURCE, where
            assert panel.get("targets"), f"{where} has no query"
            for target in panel["targets"]:
                assert target["expr"].strip() and target["datasource"] == DATASOURCE, where


def test_latency_panels(boards: dict[str, dict[str, Any]]) -> None:
    by_title = {p["title"]: p for m in boards.values() for p in panels(m)}
    e2e = by_title["End-to-end latency"]
    defaults = e2e["fieldConfig"]["defaults"]
    # The 800 ms design target of docs/architecture.md, drawn as a line.
    assert defaults["unit"] == "s"
    assert defaults["custom"]["thresholdsStyle"]["mode"] == "line"
    assert 0.8 in [step["value"] for step in defaults["thresholds"]["steps"]]
    assert all("voice_gateway_e2e_seconds_bucket" in t["expr"] for t in e2e["targets"])

    stages = by_title["Stage breakdown (p50)"]
    assert stages["fieldConfig"]["defaults"]["custom"]["stacking"]["mode"] == "normal"
    assert "by (le, stage)" in stages["targets"][0]["expr"]


def test_metrics_are_in_the_catalogue(generator: ModuleType) -> None:
    known = catalogue()
    assert known.get("voice_gateway_e2e_seconds") == "histogram", "could not parse docs/observability.md"
    recorded = {r["record"] for r in rules() if "record" in r}
    used = {("dashboards", m) for m in generator.referenced_metrics()}
    used |= {("alerts.yaml", m) for r in rules() for m in generator.metrics_in_promql(r["expr"])}
    missing = sorted(
        f"{where}: {m}" for where, m in used if m not in SYNTHETIC | recorded and not in_catalogue(m, known)
    )
    assert not missing, f"metrics not in docs/observability.md (or used in the wrong form): {missing}"


def test_alert_rules_are_labelled_and_annotated() -> None:
    alerts = {r["alert"]: r for r in rules() if "alert" in r}
    assert set(alerts) >= {"VoiceE2ELatencyHigh", "VoiceErrorRatioHigh", "VoiceBackendDown", "VoiceGpuMemoryNearFull"}
    for name, rule in alerts.items():
        assert rule["labels"]["severity"] in ("warning", "critical"), name
        assert {"summary", "description"} <= rule["annotations"].keys(), name
        assert "Runbook" in rule["annotations"]["description"], name


def test_error_ratio_is_the_alert_expression(generator: ModuleType, boards: dict[str, dict[str, Any]]) -> None:
    # The "Error ratio" panels draw exactly what VoiceErrorRatioHigh compares with its threshold.
    def squash(expr: str) -> str:
        return re.sub(r"\s+", "", expr)

    alert = next(r for r in rules() if r.get("alert") == "VoiceErrorRatioHigh")
    ratio, threshold = squash(alert["expr"]).rsplit(">", 1)
    assert float(threshold) == generator.ERROR_RATIO_ALERT
    assert ratio == squash(generator.error_ratio("[5m]"))
    overview = boards["voice-agent-overview.json"]
    drawn = [t["expr"] for p in panels(overview) if p["title"] == "Error ratio" for t in p["targets"]]
    assert len(drawn) == 2 and set(drawn) == {generator.error_ratio()}, drawn
    # Every failed turn is also a backend error: adding failed turns would count it twice.
    assert 'outcome="failed"' not in ratio
    for code in ("CANCELLED", "INVALID_ARGUMENT", "UNAUTHENTICATED", "PERMISSION_DENIED"):
        assert code in ratio, f"client-caused {code} stream errors must not page"


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    path = shutil.which("promtool")
    # Not a skip: without promtool the rules would go unchecked. Debian/Ubuntu: apt-get install prometheus.
    assert path, "promtool is not installed: run `make setup`"
    return subprocess.run([path, *args], capture_output=True, text=True, timeout=120, cwd=ROOT)


def test_promtool_check_rules() -> None:
    result = promtool("check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_unit_tests() -> None:
    result = promtool("test", "rules", str(RULE_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr


def test_dashboard_queries_are_valid_promql(boards: dict[str, dict[str, Any]], tmp_path: Path) -> None:
    # promtool parses rule expressions: wrap each query in a recording rule, with Grafana's interval filled in.
    exprs = [
        t["expr"].replace("$__rate_interval", "5m") for m in boards.values() for p in panels(m) for t in p["targets"]
    ]
    rules_file = tmp_path / "dashboard_queries.yaml"
    records = [{"record": f"dashboard:query_{i}", "expr": e} for i, e in enumerate(exprs)]
    rules_file.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": records}]}))
    result = promtool("check", "rules", str(rules_file))
    assert result.returncode == 0, result.stdout + result.stderr


def test_chart_templates_use_declared_values() -> None:
    # helm is not needed for the tests; this catches a template reading a key values.yaml lacks.
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert (chart["apiVersion"], chart["name"], chart["version"]) == ("v2", "voice-agent", "0.1.0")
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    for template in (CHART / "templates").iterdir():
        for ref in re.findall(r"\.Values\.([\w.]+)", template.read_text()):
            node: Any = values
            for key in ref.split("."):
                assert isinstance(node, dict) and key in node, f"{template.name}: .Values.{ref} is not in values.yaml"
                node = node[key]
