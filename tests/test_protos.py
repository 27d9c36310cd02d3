"""The committed stubs must match the .proto contracts."""

import filecmp
import importlib.util
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit  # no model, no service: make test-unit

REPO = Path(__file__).resolve().parent.parent


def _generator():
    spec = importlib.util.spec_from_file_location("generate", REPO / "protos" / "generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_stubs_match_the_protos(tmp_path: Path) -> None:
    _generator().generate(tmp_path)
    generated = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*.py*"))
    assert generated, "protoc generated nothing"
    stale = [str(p) for p in generated if not filecmp.cmp(tmp_path / p, REPO / p, shallow=False)]
    assert not stale, f"stubs differ from protos/: run `make protos` and commit ({stale})"
    committed = sorted(p.relative_to(REPO) for p in (REPO / "voice_agent" / "v1").glob("*_pb2*.py*"))
    assert committed == generated, "a stub exists without its .proto (or the reverse)"
