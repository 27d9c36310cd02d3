"""Which package may import which: the layers, read from the source with ``ast`` (nothing is imported
to check them, so an import inside a function counts as much as one at the top).

- ``voice_agent``: what every process shares; imports none of the others.
- ``services``: one package per service, on top of ``voice_agent``.
- ``gateway``: the conversation orchestrator, on top of ``voice_agent``.
- ``voice_ops``: the operator's side (CLI, embedded stack, demo, test speech), on top of all of them;
  no service and not the gateway imports it (the images do not even hold it).
"""

from __future__ import annotations

import ast
import importlib
import tomllib
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit  # no model, no service: make test-unit

ROOT = Path(__file__).resolve().parent.parent
NOT_FROM = {
    "voice_agent": {"services", "gateway", "voice_ops", "benchmarks", "tests"},
    "services": {"gateway", "voice_ops", "benchmarks", "tests"},
    "gateway": {"voice_ops", "benchmarks", "tests"},
}


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every absolute import in ``path``, wherever it is in the file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
    return found


def forbidden_imports(package: str) -> list[str]:
    forbidden = NOT_FROM[package]
    return [
        f"{path.relative_to(ROOT).with_suffix('').as_posix().replace('/', '.')}:{line} imports {module}"
        for path in sorted((ROOT / package).rglob("*.py"))
        for line, module in imported_modules(path)
        if module.split(".")[0] in forbidden
    ]


@pytest.mark.parametrize("package", NOT_FROM)
def test_lower_layers_never_import_higher_ones(package: str) -> None:
    assert not forbidden_imports(package), f"{package} may not import {sorted(NOT_FROM[package])}"


def test_the_check_sees_function_local_imports(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("import os\n\ndef f():\n    from voice_ops import stack\n    import gateway.config\n")
    assert imported_modules(module) == [(1, "os"), (4, "voice_ops"), (5, "gateway.config")]


def test_every_service_declares_what_the_stack_runs() -> None:
    from voice_ops.stack import SERVICES

    declared = []
    for package in [*sorted(p.parent for p in (ROOT / "services").glob("*/__main__.py")), ROOT / "gateway"]:
        module = ".".join(package.relative_to(ROOT).parts)
        spec = importlib.import_module(f"{module}.config").SERVICE
        assert spec.module == module and spec.name == package.name
        declared.append(spec)
    assert sorted(SERVICES, key=lambda s: s.name) == sorted(declared, key=lambda s: s.name)
    assert SERVICES[-1].name == "gateway", "the gateway starts after its backends"


def test_the_console_script_is_the_operator_cli() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    target = project["project"]["scripts"]["voice-agent"]
    module, function = target.split(":")
    assert target == "voice_ops.cli:main"
    assert callable(getattr(importlib.import_module(module), function))
    included = project["tool"]["setuptools"]["packages"]["find"]["include"]
    assert {"voice_agent*", "services*", "gateway*", "voice_ops*"} <= set(included)
