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
import re
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


# ---- the module map of docs/architecture.md: one table per package, under a heading that names its folder
# (### `services/asr/`); a row's first cell names a module (`vad.py`) or a folder (`engines/`), and a
# folder's row names each module inside it.
MAPPED = ("voice_agent", "services", "gateway", "voice_ops", "benchmarks")
NOT_MAPPED = {"__init__.py", "__main__.py"}


def module_map(text: str) -> dict[str, dict[str, str]]:
    """{package folder: {name in a row's first cell: the row}} of every table under a folder's heading."""
    tables: dict[str, dict[str, str]] = {}
    package = None
    for line in text.splitlines():
        if line.startswith("#"):
            heading = re.fullmatch(r"#+ `([\w/]+)/`", line.strip())
            package = heading.group(1) if heading else None
            if package:
                tables[package] = {}
        elif package and line.startswith("|"):
            for name in re.findall(r"`([^`]+)`", line.split("|")[1]):
                tables[package][name] = line
    return tables


def is_mapped(module: str, tables: dict[str, dict[str, str]]) -> bool:
    """Whether ``module`` (a path from the root) is named in the table of the package folder nearest above it:
    in a row of its own, or in the row of the folder that holds it."""
    parts = module.split("/")
    for depth in range(len(parts) - 1, 0, -1):
        rows = tables.get("/".join(parts[:depth]))
        if rows is None:
            continue
        inside = parts[depth:]
        if "/".join(inside) in rows:
            return True
        folder = "/".join(inside[:-1]) + "/"
        return len(inside) > 1 and folder in rows and f"`{inside[-1]}`" in rows[folder]
    return False


def test_every_module_is_in_the_module_map() -> None:
    tables = module_map((ROOT / "docs" / "architecture.md").read_text())
    modules = [
        path.relative_to(ROOT).as_posix()
        for package in MAPPED
        for path in sorted((ROOT / package).rglob("*.py"))
        if path.name not in NOT_MAPPED
    ]
    assert len(modules) > 50 and tables, "no modules found, or no module map in docs/architecture.md"
    missing = [module for module in modules if not is_mapped(module, tables)]
    assert not missing, f"modules missing from the module map of docs/architecture.md: {missing}"


def test_the_module_map_check_reads_rows_and_folders() -> None:
    text = "## Module map\n### `pkg/`\n| module | what |\n|---|---|\n| `a.py`, `b.py` | x |\n| `sub/` | `c.py` |\n"
    tables = module_map(text)
    assert all(is_mapped(m, tables) for m in ["pkg/a.py", "pkg/b.py", "pkg/sub/c.py"])
    assert not any(is_mapped(m, tables) for m in ["pkg/d.py", "pkg/sub/a.py", "other/a.py"])
