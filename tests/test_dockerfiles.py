"""The service images' Dockerfiles (deploy/docker/), checked without Docker.

Images cannot be built here (no registry for the base images), so these tests read each
Dockerfile and check what the deployment relies on: multi-stage builds on pinned bases, a
numeric non-root user, the ports and the entry module, the CUDA bases of the GPU variants, only
each service's extras, and COPY sources that exist and are not excluded by .dockerignore.
"""

from __future__ import annotations

import dataclasses
import json
import re
import tomllib
from functools import cache
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit  # no model, no service: make test-unit

ROOT = Path(__file__).resolve().parent.parent
DOCKER_DIR = ROOT / "deploy" / "docker"


@dataclasses.dataclass(frozen=True)
class Image:
    module: str
    ports: frozenset[int]
    extras: frozenset[str]
    cuda: bool = False


def image(module: str, ports: set[int], extras: set[str], cuda: bool = False) -> Image:
    return Image(module, frozenset(ports), frozenset(extras), cuda)


# What each Dockerfile must build. The GPU profile's LLM is vLLM's own image: no Dockerfile.
IMAGES = {
    "gateway": image("gateway", {50051, 8080, 9101}, {"gateway"}),
    "asr": image("services.asr", {50052, 9102}, {"asr", "asr-embedded"}),
    "asr.cuda": image("services.asr", {50052, 9102}, {"asr"}, cuda=True),
    "tts": image("services.tts", {50053, 9103}, {"tts", "tts-embedded"}),
    "tts.cuda": image("services.tts", {50053, 9103}, {"tts"}, cuda=True),
    "llm": image("services.llm", {8000}, {"llm"}),
}


# ---- a Dockerfile reader: instructions, stages ----


@dataclasses.dataclass
class Instruction:
    keyword: str  # upper case
    args: str  # continuation lines joined, comments removed
    line: int  # where it starts, 1-based

    def words(self) -> list[str]:
        return self.args.split()


@dataclasses.dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction]

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]

    def env(self) -> dict[str, str]:
        values: dict[str, str] = {}
        for instruction in self.all("ENV"):
            values.update(parse_env(instruction.args))
        return values


def parse_dockerfile(text: str) -> list[Instruction]:
    """Instructions with their continuation lines joined; comment lines dropped (inside a continuation too)."""
    instructions: list[Instruction] = []
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if stripped.startswith("#") or (not stripped and not pending):
            continue
        if not pending:
            start = number
        continued = stripped.endswith("\\")
        pending.append(stripped[:-1] if continued else stripped)
        if not continued:
            keyword, _, args = " ".join(pending).strip().partition(" ")
            instructions.append(Instruction(keyword.upper(), args.strip(), start))
            pending = []
    assert not pending, "the last instruction ends in a line continuation"
    return instructions


def stages(instructions: list[Instruction]) -> list[Stage]:
    result: list[Stage] = []
    for instruction in instructions:
        if instruction.keyword == "FROM":
            words = [w for w in instruction.words() if not w.startswith("--")]
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            assert len(words) in (1, 3), f"line {instruction.line}: unexpected FROM {instruction.args!r}"
            result.append(Stage(words[0], name, []))
        elif result:
            result[-1].instructions.append(instruction)
        else:
            assert instruction.keyword == "ARG", f"line {instruction.line}: {instruction.keyword} before FROM"
    return result


def parse_env(args: str) -> dict[str, str]:
    """ENV KEY=VALUE ... (values may be double-quoted); the legacy `ENV KEY VALUE` form too."""
    if "=" not in args.split()[0]:
        key, _, value = args.partition(" ")
        return {key: value.strip()}
    pairs = re.findall(r'([A-Za-z_][A-Za-z0-9_]*)=("(?:[^"\\]|\\.)*"|\S*)', args)
    return {key: value[1:-1] if value.startswith('"') else value for key, value in pairs}


def exec_form(instruction: Instruction) -> list[str]:
    value = json.loads(instruction.args)
    assert isinstance(value, list), f"line {instruction.line}: {instruction.keyword} must be in exec (JSON) form"
    return value


@cache
def dockerfile(name: str) -> list[Stage]:
    return stages(parse_dockerfile((DOCKER_DIR / f"{name}.Dockerfile").read_text()))


def runs(stage: Stage) -> list[str]:
    return [i.args for i in stage.all("RUN")]


def pip_installs(stage: Stage) -> list[str]:
    """Each `pip install ...` command of the stage's RUN instructions, up to the next shell operator."""
    commands: list[str] = []
    for command in runs(stage):
        for part in re.split(r"&&|\|\||;", command):
            words = part.split()
            for index in range(len(words) - 1):
                if words[index] == "pip" and words[index + 1] == "install":
                    commands.append(" ".join(words[index:]))
    return commands


# ---- .dockerignore, with Docker's rules ----


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    """A .dockerignore pattern (Go filepath.Match syntax plus `**`) as a regex over slash-separated paths."""
    out = ""
    index = 0
    while index < len(pattern):
        char = pattern[index]
        if pattern.startswith("**/", index):
            out += "(?:.*/)?"
            index += 3
            continue
        if pattern.startswith("**", index):
            out += ".*"
            index += 2
            continue
        if char == "*":
            out += "[^/]*"
        elif char == "?":
            out += "[^/]"
        elif char == "[":
            end = pattern.index("]", index)
            out += "[" + pattern[index + 1 : end].replace("!", "^", 1) + "]"
            index = end
        else:
            out += re.escape(char)
        index += 1
    return re.compile(f"^{out}$")


@cache
def dockerignore_rules() -> list[tuple[bool, re.Pattern[str]]]:
    rules = []
    for raw in (ROOT / ".dockerignore").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        include = line.startswith("!")
        pattern = line[1:].strip() if include else line
        pattern = re.sub(r"/+", "/", pattern).strip("/")
        rules.append((include, _pattern_regex(pattern)))
    return rules


def ignored(path: str) -> bool:
    """Whether Docker leaves `path` out of the build context: the last rule matching it or a parent decides."""
    parts = path.strip("/").split("/")
    candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    excluded = False
    for include, regex in dockerignore_rules():
        if any(regex.match(candidate) for candidate in candidates):
            excluded = not include
    return excluded


# ---- the tests ----


def test_one_dockerfile_per_image() -> None:
    found = {p.name.removesuffix(".Dockerfile") for p in DOCKER_DIR.glob("*.Dockerfile")}
    assert found == set(IMAGES)


def test_the_reader_understands_continuations_comments_and_env() -> None:
    parsed = parse_dockerfile('FROM a:1.2.3 AS b\n# note\nRUN x \\\n  # inside\n  && y\nENV A=1 B="two words"\n')
    assert [(i.keyword, i.args, i.line) for i in parsed] == [
        ("FROM", "a:1.2.3 AS b", 1),
        ("RUN", "x  && y", 3),
        ("ENV", 'A=1 B="two words"', 6),
    ]
    assert parse_env(parsed[2].args) == {"A": "1", "B": "two words"}
    assert parse_env("PATH /opt/venv/bin") == {"PATH": "/opt/venv/bin"}


@pytest.mark.parametrize("name", IMAGES)
def test_multi_stage_from_pinned_bases(name: str) -> None:
    built = dockerfile(name)
    assert len(built) >= 2, "a builder stage and a runtime stage"
    names = {stage.name for stage in built if stage.name}
    for stage in built:
        if stage.base in names:
            continue  # FROM an earlier stage
        repository, colon, tag = stage.base.partition("@")[0].rpartition(":")
        assert repository and colon and "/" not in tag, f"{stage.base}: no tag"
        assert tag != "latest", f"{stage.base}: latest is not a pin"
        assert re.search(r"(?<![\d.])\d+\.\d+\.\d+(?![\d.])", tag), f"{stage.base}: not an exact x.y.z version tag"
        assert "$" not in stage.base, f"{stage.base}: the base must be literal, not an ARG"
    # The final stage is the image: no compilers there.
    final = built[-1]
    assert not any("build-essential" in command or "gcc" in command.split() for command in runs(final))


@pytest.mark.parametrize("name", IMAGES)
def test_runs_as_numeric_non_root_user(name: str) -> None:
    final = dockerfile(name)[-1]
    users = final.all("USER")
    assert users, "the final stage sets USER"
    match = re.fullmatch(r"(\d+)(?::(\d+))?", users[-1].args)
    assert match, f"USER {users[-1].args!r} must be numeric (runAsNonRoot can only verify a number)"
    assert int(match.group(1)) != 0 and int(match.group(2) or 1) != 0
    entrypoint = final.all("ENTRYPOINT")[-1]
    assert users[-1].line < entrypoint.line
    after_user = [i for i in final.instructions if i.line > users[-1].line]
    assert not [i for i in after_user if i.keyword in ("RUN", "COPY", "ADD")], "nothing runs as root after USER"


@pytest.mark.parametrize("name", IMAGES)
def test_ports_and_entrypoint(name: str) -> None:
    final = dockerfile(name)[-1]
    exposed = {int(port.split("/")[0]) for i in final.all("EXPOSE") for port in i.words()}
    assert exposed == IMAGES[name].ports
    assert exec_form(final.all("ENTRYPOINT")[-1]) == ["python", "-m", IMAGES[name].module]
    assert not final.all("CMD"), "arguments come from the pod spec"
    everything = [i for stage in dockerfile(name) for i in stage.instructions]
    assert not [i for i in everything if i.keyword == "HEALTHCHECK"], "Kubernetes probes do health"


@pytest.mark.parametrize("name", IMAGES)
def test_cuda_variants_run_on_nvidia_cuda_and_cpu_images_on_slim_python(name: str) -> None:
    final = dockerfile(name)[-1]
    env = final.env()
    if IMAGES[name].cuda:
        assert final.base.startswith("nvidia/cuda:")
        assert "cudnn" in final.base and "-runtime-" in final.base, "the runtime image with cuDNN, not devel"
        device = "VOICE_ASR_DEVICE" if IMAGES[name].module == "services.asr" else "VOICE_TTS_DEVICE"
        assert env.get(device) == "cuda"
    else:
        assert final.base.startswith("python:3.11.") and "-slim" in final.base
        assert not any("DEVICE" in key for key in env)


@pytest.mark.parametrize("name", IMAGES)
def test_python_settings_and_no_pip_cache(name: str) -> None:
    for stage in dockerfile(name):
        if pip_installs(stage):
            no_cache = stage.env().get("PIP_NO_CACHE_DIR") in ("1", "true", "yes", "on")
            assert no_cache or all("--no-cache-dir" in c for c in pip_installs(stage)), "no pip cache in layers"
    env = dockerfile(name)[-1].env()
    assert env.get("PYTHONDONTWRITEBYTECODE") == "1"
    assert env.get("HOME") == "/tmp", "with a read-only root filesystem only /tmp is writable"
    assert env.get("PATH", "").startswith("/opt/venv/bin:")
    if IMAGES[name].extras & {"asr", "tts"}:
        # onnxruntime's telemetry writes under ~/.cache/Microsoft and uploads unless told not to.
        assert env.get("ORT_DISABLE_TELEMETRY") == "1"


def _extras_in(command: str) -> set[str]:
    found = re.findall(r"""['"]?\.\[([a-z0-9,-]+)\]['"]?""", command)
    return {extra.strip() for group in found for extra in group.split(",")}


@pytest.mark.parametrize("name", IMAGES)
def test_installs_only_the_services_extras(name: str) -> None:
    declared = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"])
    commands = [c for stage in dockerfile(name) for c in pip_installs(stage)]
    extras = set().union(*(_extras_in(c) for c in commands))
    assert extras == IMAGES[name].extras
    assert extras <= declared
    for command in commands:
        # The project itself goes in only as `.[extras]` or, for the code layer, as `. --no-deps`.
        if re.search(r"(?:^|\s)['\"]?\.(?:\[|['\"]?(?:\s|$))", command) and not _extras_in(command):
            assert "--no-deps" in command, f"{command!r}: the project without extras must not pull dependencies"
    if "asr" in extras:
        # As in the Makefile: silero-vad without its dependencies (they pull torch), at the same version.
        pin = re.search(r"silero-vad==[\w.]+", (ROOT / "Makefile").read_text())
        assert pin
        assert any(pin.group(0) in c and "--no-deps" in c for c in commands)
    assert not any("torch" in c for c in commands)


def test_gpu_tts_swaps_onnxruntime_for_its_cuda_build() -> None:
    builder = dockerfile("tts.cuda")[0]
    commands = " && ".join(runs(builder))
    uninstall = commands.index("pip uninstall -y onnxruntime")
    install = re.search(r"onnxruntime-gpu==\d+\.\d+\.\d+", commands)
    assert install and uninstall < install.start(), "the CPU build out first: both own the onnxruntime module"
    assert "onnxruntime-gpu" not in " ".join(runs(dockerfile("asr.cuda")[0])), "Silero VAD stays on CPU"


def test_embedded_models_are_prepared_at_build_time() -> None:
    # Kokoro: joined into KOKORO_JA_CACHE in the builder; the runtime reads it there.
    builder, final = dockerfile("tts")[0], dockerfile("tts")[-1]
    cache_dir = final.env()["KOKORO_JA_CACHE"]
    assert builder.env()["KOKORO_JA_CACHE"] == cache_dir
    assert any("model_path()" in command for command in runs(builder))
    copied = [i.words()[-1] for i in final.all("COPY") if i.args.startswith("--from=")]
    assert any(cache_dir.startswith(target) for target in copied)
    # The LLM: the template-bearing GGUF at VOICE_LLM_MODEL, made in the builder.
    builder, final = dockerfile("llm")[0], dockerfile("llm")[-1]
    model = final.env()["VOICE_LLM_MODEL"]
    assert any("embedded_llm_model()" in c and model in c for c in runs(builder))
    copied = [i.words()[-1] for i in final.all("COPY") if i.args.startswith("--from=")]
    assert any(model.startswith(target + "/") for target in copied)
    # llama.cpp portable, not -march=native for the build machine; text only, as the dev venv's.
    assert "-DGGML_NATIVE=OFF" in builder.env()["CMAKE_ARGS"] and "-DLLAVA_BUILD=OFF" in builder.env()["CMAKE_ARGS"]


@pytest.mark.parametrize("name", IMAGES)
def test_copy_sources_exist_and_are_in_the_build_context(name: str) -> None:
    for stage in dockerfile(name):
        for instruction in stage.all("COPY") + stage.all("ADD"):
            assert instruction.keyword == "COPY", "COPY, not ADD"
            words = instruction.words()
            if any(w.startswith("--from=") for w in words):
                continue  # from another stage
            sources = [w for w in words if not w.startswith("--")][:-1]
            assert sources
            for source in sources:
                assert not Path(source).is_absolute() and ".." not in Path(source).parts
                assert (ROOT / source).exists(), f"line {instruction.line}: {source} is not in the repo"
                assert not ignored(source), f"line {instruction.line}: .dockerignore leaves {source} out"


def test_dockerignore_keeps_the_context_small() -> None:
    for path in [
        ".git/config",
        ".venv/bin/python",
        ".venv-vllm/bin/python",
        ".venv-envoy/bin/python",
        "demo-output/latency.json",
        "benchmarks/results/asr.json",
        "tests/test_gateway.py",
        "voice_ops/cli.py",  # the operator's side: no service imports it (tests/test_layout.py)
        "deploy/helm/voice-agent/values.yaml",
        "voice_agent.egg-info/PKG-INFO",
        "services/asr/__pycache__/serving.cpython-311.pyc",
        ".pytest_cache/v/cache/nodeids",
        ".ruff_cache/CACHEDIR.TAG",
    ]:
        assert ignored(path), path
    for path in [
        "pyproject.toml",
        "README.md",
        "voice_agent/v1/asr_pb2.py",
        "services/asr/serving.py",
        "services/llm/chat_template.jinja",
        "gateway/serving.py",
    ]:
        assert not ignored(path), path
