# syntax=docker/dockerfile:1
# The TTS service on an NVIDIA GPU: Kokoro-82M (kokoro-onnx) and Piper on onnxruntime-gpu's CUDA
# provider. Production models come from the model volume, not the image: the chart sets
# VOICE_TTS_MODEL (e.g. /models/tts/kokoro-v1.0.onnx) and VOICE_TTS_VOICES (voices-v1.0.bin).
# gRPC :50053, /metrics :9103.
#
#   docker build -f deploy/docker/tts.cuda.Dockerfile -t voice-agent-tts-cuda .   # context: the repo root
#
# CUDA 12.9 (cuDNN 9), the base of asr.cuda too (one pull of the shared layers per node).
# onnxruntime-gpu 1.26.0 is the last release whose PyPI wheel is a CUDA 12 build (1.27 and later
# need CUDA 13, per their `cuda` extra); move both images to CUDA 13 once ctranslate2 ships for it.
# Python is the one of the CPU images, copied from the pinned python image.
# Bases are pinned to exact version tags. CI should pin their digests as well
# (FROM nvidia/cuda:12.9.1-cudnn-runtime-ubuntu24.04@sha256:...): not resolvable offline here.

# ---- builder: a virtual environment with the project, its `tts` extra and onnxruntime-gpu ----
FROM python:3.11.14-slim-bookworm AS builder
ENV PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python3.11 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
# Dependencies first, in a layer of their own, so that a code change does not reinstall them.
# Every dependency ships a manylinux wheel: --only-binary keeps it so (this stage has no compilers).
# onnxruntime and onnxruntime-gpu install the same `onnxruntime` module: the CPU build that the
# extra pulls in is removed before the GPU build goes in (pip check will name the swap; expected).
COPY pyproject.toml README.md ./
RUN mkdir voice_agent services gateway \
 && pip install --only-binary=:all: '.[tts]' \
 && pip uninstall -y onnxruntime \
 && pip install --only-binary=:all: 'onnxruntime-gpu==1.26.0'
COPY voice_agent/ voice_agent/
COPY services/ services/
COPY gateway/ gateway/
RUN pip install --only-binary=:all: --no-deps --force-reinstall .

# ---- runtime: CUDA 12.9 runtime + cuDNN 9 ----
FROM nvidia/cuda:12.9.1-cudnn-runtime-ubuntu24.04
# What the interpreter's extension modules link (ssl, ctypes, lzma, bz2, expat, sqlite, uuid).
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
    ca-certificates libssl3t64 libffi8 liblzma5 libbz2-1.0 zlib1g libexpat1 libsqlite3-0 libuuid1 \
 && rm -rf /var/lib/apt/lists/*
COPY --from=builder /usr/local/bin/python3.11 /usr/local/bin/python3.11
COPY --from=builder /usr/local/lib/libpython3.11.so.1.0 /usr/local/lib/libpython3.11.so.1.0
COPY --from=builder /usr/local/lib/python3.11 /usr/local/lib/python3.11
RUN ldconfig \
 && ln -s python3.11 /usr/local/bin/python3 \
 && ln -s python3.11 /usr/local/bin/python
# HOME=/tmp: the only writable path with readOnlyRootFilesystem (an emptyDir in the chart).
# ORT_DISABLE_TELEMETRY: onnxruntime's telemetry otherwise writes a device id and an event store
# under ~/.cache/Microsoft and tries to upload them.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/venv/bin:$PATH \
    HOME=/tmp \
    ORT_DISABLE_TELEMETRY=1 \
    VOICE_TTS_DEVICE=cuda
RUN groupadd --system --gid 10001 voice \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /tmp --shell /usr/sbin/nologin voice
COPY --from=builder /opt/venv /opt/venv
WORKDIR /opt/voice-agent
# Fails the build, not the pod, if the service cannot be imported here or onnxruntime has no CUDA
# provider (the provider is listed without a GPU; it loads the CUDA libraries only in a session).
RUN python -c "import ssl, ctypes, lzma, bz2, services.tts.serving, onnxruntime as ort; \
assert 'CUDAExecutionProvider' in ort.get_available_providers(), ort.get_available_providers()"
USER 10001:10001
EXPOSE 50053 9103
ENTRYPOINT ["python", "-m", "services.tts"]
