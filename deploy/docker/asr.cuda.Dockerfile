# syntax=docker/dockerfile:1
# The VAD+ASR service on an NVIDIA GPU: Whisper on CTranslate2's CUDA build (the PyPI wheel of
# ctranslate2, which loads CUDA 12's cuBLAS and cuDNN 9 from the base image), Silero VAD on CPU
# (0.12 ms a frame: not worth a GPU). Production models come from the model volume, not the image:
# the chart sets VOICE_ASR_MODEL (e.g. /models/asr, distil-medium.en). gRPC :50052, /metrics :9102.
#
#   docker build -f deploy/docker/asr.cuda.Dockerfile -t voice-agent-asr-cuda .   # context: the repo root
#
# CUDA 12.9 (cuDNN 9): ctranslate2 4.x wheels are CUDA 12 builds; the node's driver must be R575 or
# newer (vLLM's CUDA 13 image already needs R580). Python is the one of the CPU images, copied from
# the pinned python image (same interpreter, same bytecode, Ubuntu 24.04 has the libraries it links).
# Bases are pinned to exact version tags. CI should pin their digests as well
# (FROM nvidia/cuda:12.9.1-cudnn-runtime-ubuntu24.04@sha256:...): not resolvable offline here.

# ---- builder: a virtual environment with the project and its `asr` extra (no embedded model) ----
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
 && pip install --only-binary=:all: '.[asr]' \
 && pip install --only-binary=:all: --no-deps 'silero-vad==6.2.3' 'pipecat-ai==1.14.0'
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
    HF_HUB_OFFLINE=1 \
    VOICE_ASR_DEVICE=cuda \
    VOICE_ASR_COMPUTE_TYPE=int8_float16
RUN groupadd --system --gid 10001 voice \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /tmp --shell /usr/sbin/nologin voice
COPY --from=builder /opt/venv /opt/venv
WORKDIR /opt/voice-agent
# Fails the build, not the pod, if the service cannot be imported here (no GPU is needed to import).
RUN python -c "import ssl, ctypes, lzma, bz2, ctranslate2, onnxruntime, services.asr.serving"
USER 10001:10001
EXPOSE 50052 9102
ENTRYPOINT ["python", "-m", "services.asr"]
