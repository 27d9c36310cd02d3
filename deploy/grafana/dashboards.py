"""Grafana dashboards for voice-agent, as code.

`python deploy/grafana/dashboards.py` (re)writes the JSON files the Helm chart ships under
deploy/helm/voice-agent/dashboards/; `--check` writes nothing and exits 1 listing stale files.
Metric names, labels and scrape jobs are the ones catalogued in docs/observability.md.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path

from grafana_foundation_sdk.builders import dashboard, gauge, prometheus, stat, timeseries
from grafana_foundation_sdk.builders.common import GraphThresholdsStyleConfig as ThresholdsStyle
from grafana_foundation_sdk.builders.common import StackingConfig, VizLegendOptions, VizTooltipOptions
from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.common import (
    GraphThresholdsStyleMode,
    LegendDisplayMode,
    SortOrder,
    StackingMode,
    TooltipDisplayMode,
)
from grafana_foundation_sdk.models.dashboard import (
    DashboardCursorSync,
    DashboardLinkType,
    DataSourceRef,
    Threshold,
    ThresholdsMode,
)
from grafana_foundation_sdk.models.dashboard import Panel as PanelModel

OUT_DIR = Path(__file__).resolve().parents[1] / "helm" / "voice-agent" / "dashboards"

# Every query goes through the `datasource` variable so the dashboards import into any Grafana.
DS = DataSourceRef(type_val="prometheus", uid="${datasource}")
E2E_TARGET_S = 0.8  # The design's goal (docs/architecture.md, Latency targets): end to end < 800 ms.
ERROR_RATIO_ALERT = 0.01  # VoiceErrorRatioHigh in files/alerts.yaml.
ERROR_RATIO_DESCRIPTION = (
    "Backend errors the gateway reported to clients (a failed turn counts once) plus gateway streams that ended"
    " with a server-side error, per agent turn; the VoiceErrorRatioHigh expression. Client-caused stream errors"
    " (CANCELLED, INVALID_ARGUMENT, UNAUTHENTICATED, PERMISSION_DENIED) do not count."
)

GW = 'job="voice-gateway"'
SERVICES = 'job=~"voice-(gateway|asr|tts|llm)"'
RATE = "[$__rate_interval]"

Panel = Builder[PanelModel]  # any panel builder: timeseries, stat, gauge


def quantile(q: float, metric: str, selector: str = "", by: tuple[str, ...] = ()) -> str:
    """p-quantile of a histogram over the rate window, aggregated across instances (keeping `by`)."""
    labels = ", ".join(("le", *by))
    return f"histogram_quantile({q}, sum by ({labels}) (rate({metric}_bucket{{{selector}}}{RATE})))"


def rate(metric: str, selector: str = "", by: tuple[str, ...] = ()) -> str:
    grouping = f" by ({', '.join(by)}) " if by else ""
    return f"sum{grouping}(rate({metric}{{{selector}}}{RATE}))"


# Stream endings that are no server fault: the client caused them (a hang-up, a client bug, bad
# credentials, its session's idle or length limit: DEADLINE_EXCEEDED), or they are the gateway doing its
# job (RESOURCE_EXHAUSTED: a refusal past a limit, alerted on by VoiceSessionsRefused; UNAVAILABLE: loading
# or draining on a rollout, the client reconnects). Backend faults are counted as backend errors instead.
CLIENT_CODES = (
    "CANCELLED|INVALID_ARGUMENT|UNAUTHENTICATED|PERMISSION_DENIED|DEADLINE_EXCEEDED|RESOURCE_EXHAUSTED|UNAVAILABLE"
)


def error_ratio(window: str = RATE) -> str:
    """Errors per turn, the ratio VoiceErrorRatioHigh alerts on (files/alerts.yaml, window [5m]).

    Errors: backend failures the gateway reported to clients (every failed turn is one of them, so
    turns_total{outcome="failed"} is not added again) plus gateway streams that ended with a
    server-side error (codes in CLIENT_CODES excluded). Turns: every outcome. Unset counters count
    as 0; no turns gives no point rather than 0/0 or x/0.
    """
    backend_errors = f"(sum(rate(voice_gateway_backend_errors_total{{{GW}}}{window})) or vector(0))"
    stream_errors = (
        f'(sum(rate(voice_errors_total{{{GW},service="gateway",code!~"{CLIENT_CODES}"}}{window})) or vector(0))'
    )
    turns = f"(sum(rate(voice_gateway_turns_total{{{GW}}}{window})) > 0)"
    return f"({backend_errors} + {stream_errors}) / {turns}"


def target(expr: str, legend: str, exemplar: bool = False) -> prometheus.Dataquery:
    return prometheus.Dataquery().expr(expr).legend_format(legend).datasource(DS).exemplar(exemplar)


def p50_p95(metric: str, selector: str = "", by: tuple[str, ...] = (), name: str = "") -> list[prometheus.Dataquery]:
    suffix = "".join(f" {{{{{label}}}}}" for label in by)
    return [target(quantile(q, metric, selector, by), f"{name}p{int(q * 100)}{suffix}") for q in (0.5, 0.95)]


def steps(*pairs: tuple[float | None, str]) -> dashboard.ThresholdsConfig:
    return (
        dashboard.ThresholdsConfig()
        .mode(ThresholdsMode.ABSOLUTE)
        .steps([Threshold(value=v, color=c) for v, c in pairs])
    )


def series(title: str, unit: str, targets: list[prometheus.Dataquery], description: str = "") -> timeseries.Panel:
    panel = (
        timeseries.Panel()
        .title(title)
        .datasource(DS)
        .unit(unit)
        .height(8)
        .span(12)
        .fill_opacity(10)
        .legend(VizLegendOptions().display_mode(LegendDisplayMode.LIST).show_legend(True))
        .tooltip(VizTooltipOptions().mode(TooltipDisplayMode.MULTI).sort(SortOrder.DESCENDING))
    )
    if description:
        panel.description(description)
    for ref, t in zip("ABCDEFGH", targets, strict=False):
        panel.with_target(t.ref_id(ref))
    return panel


def with_threshold_line(panel: timeseries.Panel, value: float) -> timeseries.Panel:
    """Draw `value` as a red line; the base step is transparent so only the line shows."""
    return panel.thresholds(steps((None, "transparent"), (value, "red"))).thresholds_style(
        ThresholdsStyle().mode(GraphThresholdsStyleMode.LINE)
    )


def single(title: str, unit: str, expr: str, thresholds: dashboard.ThresholdsConfig) -> stat.Panel:
    return (
        stat.Panel()
        .title(title)
        .datasource(DS)
        .unit(unit)
        .height(4)
        .span(6)
        .thresholds(thresholds)
        .with_target(target(expr, title).ref_id("A"))
    )


def new_dashboard(uid: str, title: str, description: str) -> dashboard.Dashboard:
    return (
        dashboard.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(["voice-agent"])
        .editable()
        .tooltip(DashboardCursorSync.CROSSHAIR)
        .time("now-1h", "now")
        .refresh("30s")
        .timezone("browser")
        # Grafana's own annotations (alerts, manual notes), which Grafana adds to every dashboard it saves.
        .annotation(
            dashboard.AnnotationQuery()
            .name("Annotations & Alerts")
            .datasource(DataSourceRef(type_val="grafana", uid="-- Grafana --"))
            .built_in(1)
            .enable(True)
            .hide(True)
            .icon_color("rgba(0, 211, 255, 1)")
            .type("dashboard")
        )
        .with_variable(dashboard.DatasourceVariable("datasource").label("Data source").type("prometheus"))
        # The other voice-agent dashboard, keeping the time range and data source.
        .link(
            dashboard.DashboardLink("voice-agent")
            .type(DashboardLinkType.DASHBOARDS)
            .tags(["voice-agent"])
            .as_dropdown(True)
            .include_vars(True)
            .keep_time(True)
        )
    )


def add(board: dashboard.Dashboard, rows: dict[str, list[Panel]]) -> dashboard.Dashboard:
    """Expanded rows: an empty row, then its panels at the top level (Grafana drops panels nested in open rows)."""
    for title, panels in rows.items():
        board.with_row(dashboard.Row(title))
        for panel in panels:
            board.with_panel(panel)
    return board


def overview() -> dashboard.Dashboard:
    turns = f"(sum(rate(voice_gateway_turns_total{{{GW}}}{RATE})) > 0)"  # no traffic: no point, not a 0/0
    errors_per_turn = error_ratio()
    e2e_p95 = quantile(0.95, "voice_gateway_e2e_seconds", GW)
    stages = "|".join(("vad_wait", "asr", "llm_ttft", "tts_ttfa", "overhead"))

    e2e = with_threshold_line(
        series(
            "End-to-end latency",
            "s",
            [
                target(quantile(0.5, "voice_gateway_e2e_seconds", GW), "p50"),
                target(e2e_p95, "p95", exemplar=True),  # exemplars carry the turn's trace id
            ],
            "End of the user's speech to the first agent audio sent, at the gateway. Red line: the 800 ms target.",
        ),
        E2E_TARGET_S,
    )
    breakdown = series(
        "Stage breakdown (p50)",
        "s",
        [target(quantile(0.5, "voice_gateway_stage_seconds", f'{GW},stage=~"{stages}"', ("stage",)), "{{stage}}")],
        "Median of each stage of a completed turn, stacked: roughly the median end-to-end latency.",
    ).stacking(StackingConfig().mode(StackingMode.NORMAL))
    first_bytes = series(
        "LLM time to first token and TTS time to first audio",
        "s",
        [
            *p50_p95("voice_gateway_stage_seconds", f'{GW},stage="llm_ttft"', name="gateway llm_ttft "),
            *p50_p95("voice_gateway_stage_seconds", f'{GW},stage="tts_ttfa"', name="gateway tts_ttfa "),
            *p50_p95("voice_tts_ttfa_seconds", 'job="voice-tts"', name="tts service ttfa "),
        ],
        "As the gateway sees them (stage histograms), and TTS's own first text to first audio.",
    )
    return add(
        new_dashboard("voice-agent-overview", "Voice agent: overview", "Latency, load and errors of conversations."),
        {
            "Now": [
                single("End-to-end p95", "s", e2e_p95, steps((None, "green"), (E2E_TARGET_S, "yellow"), (1, "red"))),
                single(
                    "Active sessions", "short", f"sum(voice_gateway_active_sessions{{{GW}}})", steps((None, "green"))
                ),
                single("Turns /s", "short", rate("voice_gateway_turns_total", GW), steps((None, "green"))),
                single(
                    "Error ratio",
                    "percentunit",
                    errors_per_turn,
                    steps((None, "green"), (ERROR_RATIO_ALERT, "red")),
                ).description(ERROR_RATIO_DESCRIPTION),
            ],
            "Latency": [e2e, breakdown, first_bytes],
            "Load": [
                series(
                    "Active sessions and streams",
                    "short",
                    [
                        target(f"sum(voice_gateway_active_sessions{{{GW}}})", "sessions"),
                        target(f"sum by (service) (voice_active_streams{{{SERVICES}}})", "streams {{service}}"),
                    ],
                ),
                series(
                    "Inference queue depth and busy workers",
                    "short",
                    [
                        target(f"sum by (service) (voice_inference_queue_depth{{{SERVICES}}})", "queued {{service}}"),
                        target(f"sum by (service) (voice_inference_busy_workers{{{SERVICES}}})", "busy {{service}}"),
                    ],
                    "Jobs waiting for an ASR or TTS worker; a growing queue is latency to come.",
                ),
            ],
            "Errors and interruptions": [
                series(
                    "Turns by outcome /s",
                    "short",
                    [target(rate("voice_gateway_turns_total", GW, ("outcome",)), "{{outcome}}")],
                ),
                with_threshold_line(
                    series(
                        "Error ratio",
                        "percentunit",
                        [target(errors_per_turn, "(backend errors + server-side stream errors) / turns")],
                        f"{ERROR_RATIO_DESCRIPTION} Red line: 1 %, the VoiceErrorRatioHigh threshold.",
                    ),
                    ERROR_RATIO_ALERT,
                ),
                series(
                    "Backend errors by backend and code /s",
                    "short",
                    [
                        target(
                            rate("voice_gateway_backend_errors_total", GW, ("backend", "code")), "{{backend}} {{code}}"
                        )
                    ],
                ),
                series(
                    "Interruptions",
                    "percentunit",
                    [
                        target(
                            f"sum(rate(voice_gateway_interruptions_total{{{GW}}}{RATE})) / {turns}",
                            "barge-ins per turn",
                        )
                    ],
                    "Share of turns the user barged in on.",
                ),
                series(
                    "Speech over the agent, by decision /s",
                    "short",
                    [
                        target(rate("voice_gateway_interruption_decisions_total", GW, ("kind",)), "{{kind}}"),
                        target(
                            f"sum(rate(voice_gateway_false_interruptions_resumed_total{{{GW}}}{RATE}))",
                            "resumed (not an interruption)",
                        ),
                        target(f"sum(rate(voice_gateway_echo_rejected_total{{{GW}}}{RATE}))", "echo rejected"),
                        target(
                            rate("voice_gateway_speech_over_echo_total", GW, ("outcome",)),
                            "heard over echo: {{outcome}}",
                        ),
                    ],
                    "What speech that began while the agent talked was decided to be (gateway/turn_taking):"
                    " interruption, backchannel, noise, echo; how often held agent audio resumed; and speech that"
                    " read as echo heard again with the echo removed (interruption: the user's words over it).",
                ),
                series(
                    "Empty LLM replies /s",
                    "short",
                    [target(rate("voice_gateway_empty_replies_total", GW, ("recovery",)), "{{recovery}}")],
                    "Turns whose LLM reply had nothing to say (often a persona the model was not shown how to"
                    " answer): retry, the built-in persona answered; fallback, the fallback line was said. The"
                    " gateway logs each one.",
                ),
                series(
                    "Sessions refused /s",
                    "short",
                    [
                        target(
                            rate(
                                "voice_errors_total",
                                f'{GW},service="gateway",code=~"RESOURCE_EXHAUSTED|UNAUTHENTICATED"',
                                ("code",),
                            ),
                            "{{code}}",
                        )
                    ],
                    "RESOURCE_EXHAUSTED: past --max-streams or a credential's quota (clients retry after the hint);"
                    " UNAUTHENTICATED: no valid token. docs/security.md.",
                ),
                series(
                    "Preemptive replies kept",
                    "percentunit",
                    [
                        target(
                            f'sum(rate(voice_gateway_preemptive_turns_total{{{GW},outcome="kept"}}{RATE}))'
                            f" / sum(rate(voice_gateway_preemptive_turns_total{{{GW}}}{RATE}))",
                            "kept / started",
                        )
                    ],
                    "Replies started on a pause's transcript that the final transcript confirmed; the rest were"
                    " discarded unheard. Low: pauses mid-sentence are common (docs/performance.md).",
                ),
            ],
            "Conversation records": records_panels(),
        },
    )


def records_panels() -> list[Panel]:
    """The record writer (gateway/records/writer.py; docs/conversations.md), per pod: what the
    VoiceRecordStoreDown, VoiceRecordsDropped and VoiceRecordWriteLagHigh alerts watch."""
    return [
        series(
            "Record store up",
            "short",
            [target(f"min by (instance) (voice_gateway_record_store_up{{{GW}}})", "{{instance}}")],
            "1 while the gateway's record writes succeed; 0 from a failed write until one succeeds again."
            " Conversations go on meanwhile, their writes buffered (VoiceRecordStoreDown).",
        ),
        series(
            "Record writes",
            "short",
            [
                target(f"sum(rate(voice_gateway_record_write_failures_total{{{GW}}}{RATE}))", "failed /s (retried)"),
                target(rate("voice_gateway_record_drops_total", GW, ("kind",)), "dropped /s: {{kind}}"),
                target(f"sum by (instance) (voice_gateway_record_buffered_writes{{{GW}}})", "buffered: {{instance}}"),
            ],
            "Writes that failed (each retried in order), writes dropped from a full buffer (only recording"
            " audio, never a transcript: VoiceRecordsDropped), and writes waiting per pod.",
        ),
        with_threshold_line(
            series(
                "Record write lag",
                "s",
                [target(f"max by (instance) (voice_gateway_record_write_lag_seconds{{{GW}}})", "{{instance}}")],
                "Age of the oldest write waiting in each pod's buffer. Red line: VoiceRecordWriteLagHigh's 60 s.",
            ),
            60,
        ),
    ]


def backends() -> dashboard.Dashboard:
    fb_used, fb_free = "DCGM_FI_DEV_FB_USED", "DCGM_FI_DEV_FB_FREE"
    gpu = "{{Hostname}} GPU {{gpu}}"
    return add(
        new_dashboard(
            "voice-agent-backends", "Voice agent: backends", "Model inference, vLLM, process CPU and memory, and GPU."
        ),
        {
            "Model inference": [
                series(
                    "ASR: Whisper inference",
                    "s",
                    p50_p95("voice_asr_inference_seconds", 'job="voice-asr"', ("kind",)),
                ),
                series(
                    "ASR: end of turn to final transcript",
                    "s",
                    p50_p95("voice_asr_final_latency_seconds", 'job="voice-asr"'),
                ),
                series(
                    "ASR: silence waited for the end of turn, by detector",
                    "s",
                    p50_p95("voice_asr_end_of_turn_seconds", 'job="voice-asr"', ("detector",)),
                    "From the end of speech to the end-of-turn decision, in audio time: text (the pause"
                    " transcript), smart_turn, both (RecognitionConfig.turn_detector with the adaptive end of"
                    " turn), or silence (the fixed wait).",
                ),
                series(
                    "TTS: engine time per phrase",
                    "s",
                    p50_p95("voice_tts_inference_seconds", 'job="voice-tts"', ("engine",)),
                ),
                series(
                    "LLM (embedded): completion and time to first token",
                    "s",
                    [
                        *p50_p95("voice_llm_inference_seconds", 'job="voice-llm"', name="completion "),
                        *p50_p95("voice_llm_ttft_seconds", 'job="voice-llm"', name="ttft "),
                    ],
                ),
            ],
            "vLLM": [
                series("vLLM time to first token", "s", p50_p95("vllm:time_to_first_token_seconds", 'job="voice-llm"')),
                series(
                    "vLLM requests",
                    "short",
                    [
                        target('sum(vllm:num_requests_running{job="voice-llm"})', "running"),
                        target('sum(vllm:num_requests_waiting{job="voice-llm"})', "waiting"),
                    ],
                ),
                series(
                    "vLLM KV cache usage",
                    "percentunit",
                    [target('max(vllm:kv_cache_usage_perc{job="voice-llm"})', "KV cache")],
                ).max(1),
            ],
            # prometheus_client's process collector, on every process's /metrics.
            "Processes": [
                series(
                    "CPU per process",
                    "short",
                    [target(f"sum by (job) (rate(process_cpu_seconds_total{{{SERVICES}}}{RATE}))", "{{job}}")],
                    "CPU cores in use by each service's processes.",
                ),
                series(
                    "Memory per process",
                    "bytes",
                    [target(f"sum by (job) (process_resident_memory_bytes{{{SERVICES}}})", "{{job}}")],
                    "Resident memory of each service's processes.",
                ),
            ],
            # DCGM exporter is not part of this chart, so no job selector.
            "GPU": [
                series("GPU utilisation", "percentunit", [target("DCGM_FI_DEV_GPU_UTIL / 100", gpu)]).max(1),
                series(
                    "GPU memory",
                    "mbytes",  # DCGM reports framebuffer in MiB
                    [
                        target(fb_used, f"used {gpu}"),
                        target(f"{fb_used} + {fb_free}", f"total {gpu}"),
                    ],
                ),
                gauge.Panel()
                .title("GPU memory used")
                .datasource(DS)
                .unit("percentunit")
                .min(0)
                .max(1)
                .height(8)
                .span(12)
                .thresholds(steps((None, "green"), (0.8, "yellow"), (0.95, "red")))
                .with_target(target(f"{fb_used} / ({fb_used} + {fb_free})", gpu).ref_id("A")),
            ],
        },
    )


def _number_panels(board: dict) -> dict:
    """Stable panel ids (Grafana would otherwise assign them on load), used by viewPanel links."""
    for i, panel in enumerate(board["panels"], start=1):
        panel["id"] = i
    return board


def dashboards() -> dict[str, dict]:
    """File name -> dashboard JSON model (plain dicts, as written to disk)."""
    built = {"voice-agent-overview.json": overview(), "voice-agent-backends.json": backends()}
    return {name: _number_panels(json.loads(json.dumps(b.build(), cls=JSONEncoder))) for name, b in built.items()}


def render(model: dict) -> str:
    return json.dumps(model, indent=2, sort_keys=True) + "\n"


def expressions(model: dict) -> Iterator[str]:
    for panel in model.get("panels", []):
        for t in panel.get("targets") or []:
            yield t["expr"]


# PromQL words that look like metric names but are not.
_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless", "offset"}


def metrics_in_promql(expr: str) -> set[str]:
    """Series names an expression selects, exactly as written (e.g. `voice_gateway_e2e_seconds_bucket`)."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # label values may contain anything
    expr = re.sub(r"\{[^}]*\}|\[[^\]]*\]", " ", expr)  # matchers and range windows
    expr = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", expr)  # label lists
    names = re.findall(r"(?<![\w.:])([a-zA-Z_:][\w:]*)(?![\w:]|\s*\()", expr)  # not functions, not numbers like 1e3
    return {n for n in names if n not in _KEYWORDS}


def referenced_metrics() -> set[str]:
    """Every series name the dashboards' queries select, exactly as in the PromQL: histogram
    quantiles appear as their `_bucket` series, counters with `_total`, gauges and `vllm:`/DCGM names as is."""
    return {m for model in dashboards().values() for e in expressions(model) for m in metrics_in_promql(e)}


def stale_files(out_dir: Path = OUT_DIR) -> list[Path]:
    """Dashboard files that differ from the generator, are missing, or are no longer generated."""
    wanted = {out_dir / name: render(model) for name, model in dashboards().items()}
    stale = [p for p, text in wanted.items() if not p.exists() or p.read_text() != text]
    return stale + sorted(set(out_dir.glob("*.json")) - set(wanted))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if any file is stale")
    args = parser.parse_args(argv)
    stale = stale_files()
    if args.check:
        for path in stale:
            print(f"stale: {path}")
        if stale:
            print("run: python deploy/grafana/dashboards.py")
        return 1 if stale else 0
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    generated = dashboards()
    for path in stale:
        if path.name in generated:
            path.write_text(render(generated[path.name]))
        else:
            path.unlink()  # a dashboard the generator no longer makes
        print(f"wrote: {path}" if path.exists() else f"removed: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
