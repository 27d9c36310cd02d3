"""Renders the voice-agent chart offline with Helm's own Go SDK (helm-python-sdk, a ctypes binding
of libhelm_c shipped inside the wheel: no helm binary, no cluster, no network).

    from helm_render import render   # tests/ is on sys.path under pytest
    manifests = render(["values-l4.yaml"], {"tracing": {"enabled": True}})

Values are composed as `helm template -f FILE... --set ...` would: the files in order, then
set_values, each deep-merged over the previous (maps merge, lists and scalars replace), then over
the chart's values.yaml by Helm itself, which also validates the result against
values.schema.json (helm_python.HelmValuesError when it does not fit).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import helm_python as helm
import yaml

ROOT = Path(__file__).resolve().parents[1]
CHART = ROOT / "deploy" / "helm" / "voice-agent"
RELEASE = "voice"
NAMESPACE = "voice"
# The chart's own post-install message, not a manifest.
NOT_MANIFESTS = ("NOTES.txt",)


@functools.cache
def chart() -> helm.Chart:
    """The chart, loaded once per process (it is immutable and thread-safe)."""
    return helm.Chart.load(CHART)


def deep_merge(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Helm's -f/--set composition: nested maps merge, anything else replaces."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _expand(set_values: Mapping[str, Any]) -> dict[str, Any]:
    """Top-level keys with dots are paths, as with --set: {"envoy.tls.enabled": False}."""
    expanded: dict[str, Any] = {}
    for key, value in set_values.items():
        for part in reversed(key.split(".")[1:]):
            value = {part: value}
        expanded = deep_merge(expanded, {key.split(".")[0]: value})
    return expanded


def values_file(name: str | Path) -> Path:
    """A values file by path, or by name inside the chart (\"values-l4.yaml\")."""
    path = Path(name)
    return path if path.is_absolute() or path.exists() else CHART / path


def compose(values_files: Iterable[str | Path] = (), set_values: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The user-supplied values (not yet merged over the chart's defaults)."""
    values: dict[str, Any] = {}
    for name in values_files:
        values = deep_merge(values, yaml.safe_load(values_file(name).read_text()) or {})
    return deep_merge(values, _expand(set_values or {}))


def merged_values(
    values_files: Iterable[str | Path] = (), set_values: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The values the templates see: Helm's coalescing of the chart's defaults with the user's."""
    return chart().merge_values(compose(values_files, set_values))


def render_templates(
    values_files: Iterable[str | Path] = (),
    set_values: Mapping[str, Any] | None = None,
    *,
    release: str = RELEASE,
    namespace: str = NAMESPACE,
) -> dict[str, str]:
    """Template path -> rendered text, exactly as Helm's engine returns it."""
    values = compose(values_files, set_values)
    return chart().render(values, name=release, namespace=namespace, is_install=True)


def render(
    values_files: Iterable[str | Path] = (),
    set_values: Mapping[str, Any] | None = None,
    *,
    release: str = RELEASE,
    namespace: str = NAMESPACE,
) -> list[dict[str, Any]]:
    """Every rendered manifest as a dict, in template order (empty documents dropped)."""
    manifests: list[dict[str, Any]] = []
    for path, text in sorted(render_templates(values_files, set_values, release=release, namespace=namespace).items()):
        if path.endswith(NOT_MANIFESTS):
            continue
        manifests.extend(doc for doc in yaml.safe_load_all(text) if doc)
    return manifests
