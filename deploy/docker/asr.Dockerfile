# syntax=docker/dockerfile:1
# The VAD+ASR service on CPU: Silero VAD + Whisper (faster-whisper on CTranslate2), with the
# embedded Whisper tiny.en int8 and the Silero ONNX model baked in (both ship in PyPI packages).
# `Recognize` over gRPC (:50052), Prometheus /metrics (:9102). GPU: asr.cuda.Dockerfile.
#
#   docker build -f deploy/docker/asr.Dockerfile -t voice-agent-asr .   # context: the repo root
#
# Bases are pinned to exact version tags. CI should pin their digests as well
# (FROM python:3.11.14-slim-bookworm@sha256:...): digests cannot be resolved offline here.

# ---- builder: a virtual environment with the project, its `asr` extra and the embedded models ----
FROM python:3.11.14-slim-bookworm AS builder
ENV PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python3.11 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
# Dependencies first, in a layer of their own, so that a code change does not reinstall them.
# Every dependency ships a manylinux wheel: --only-binary keeps it so (this stage has no compilers).
# silero-vad without its dependencies (as in the Makefile): they pull a multi-GB torch that the
# service never imports; only the package's ONNX file is used. pipecat-ai likewise, for its
# Smart Turn v3.2 ONNX file only (turn_detector smart_turn or both).
COPY pyproject.toml README.md ./
RUN mkdir voice_agent services gateway \
 && pip install --only-binary=:all: '.[asr,asr-embedded]' \
 && pip install --only-binary=:all: --no-deps 'silero-vad==6.2.3' 'pipecat-ai==1.14.0'
COPY voice_agent/ voice_agent/
COPY services/ services/
COPY gateway/ gateway/
RUN pip install --only-binary=:all: --no-deps --force-reinstall .

# ---- runtime ----
FROM python:3.11.14-slim-bookworm
# Nothing is written at run time: the models are read from the packages in the venv.
# HOME=/tmp: the only writable path with readOnlyRootFilesystem (an emptyDir in the chart).
# ORT_DISABLE_TELEMETRY: onnxruntime's telemetry otherwise writes a device id and an event store
# under ~/.cache/Microsoft and tries to upload them.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/venv/bin:$PATH \
    HOME=/tmp \
    ORT_DISABLE_TELEMETRY=1 \
    HF_HUB_OFFLINE=1
RUN groupadd --system --gid 10001 voice \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /tmp --shell /usr/sbin/nologin voice
COPY --from=builder /opt/venv /opt/venv
WORKDIR /opt/voice-agent
# Fails the build, not the pod, if the service cannot be imported or a model file is missing.
RUN python -c "import services.asr.serving; from services.asr.models import embedded_models; \
missing = [str(p) for p in embedded_models().values() if not p.exists()]; assert not missing, missing"
USER 10001:10001
EXPOSE 50052 9102
ENTRYPOINT ["python", "-m", "services.asr"]
