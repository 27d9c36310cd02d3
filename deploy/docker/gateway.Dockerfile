# syntax=docker/dockerfile:1
# The conversation gateway: `Converse` over gRPC (:50051); on HTTP (:8080) the OpenAI Realtime-compatible
# WebSocket API (/v1/realtime), the browser page (/, gateway/web/) and /healthz; Prometheus /metrics (:9101).
#
#   docker build -f deploy/docker/gateway.Dockerfile -t voice-agent-gateway .   # context: the repo root
#
# Bases are pinned to exact version tags. CI should pin their digests as well
# (FROM python:3.11.14-slim-bookworm@sha256:...): digests cannot be resolved offline here.

# ---- builder: a virtual environment with the project and its `gateway` extra ----
FROM python:3.11.14-slim-bookworm AS builder
ENV PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python3.11 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
# Dependencies first, in a layer of their own, so that a code change does not reinstall them.
# Every dependency ships a manylinux wheel: --only-binary keeps it so (this stage has no compilers).
COPY pyproject.toml README.md ./
RUN mkdir voice_agent services gateway \
 && pip install --only-binary=:all: '.[gateway]'
COPY voice_agent/ voice_agent/
COPY services/ services/
COPY gateway/ gateway/
RUN pip install --only-binary=:all: --no-deps --force-reinstall .
# The browser page is package data (pyproject.toml): fail the build if a file of gateway/web/ did not
# make it into the installed package. -P: import the installed gateway, not /src/gateway.
RUN python -P -c "import gateway, pathlib, sys; src = pathlib.Path('gateway/web'); \
dst = pathlib.Path(gateway.__file__).parent / 'web'; \
missing = [str(f) for f in src.rglob('*') if f.is_file() and not (dst / f.relative_to(src)).is_file()]; \
sys.exit(f'not installed: {missing}' if missing else 0)"

# ---- runtime ----
FROM python:3.11.14-slim-bookworm
# HOME=/tmp: the only writable path with readOnlyRootFilesystem (an emptyDir in the chart).
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/venv/bin:$PATH \
    HOME=/tmp
RUN groupadd --system --gid 10001 voice \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /tmp --shell /usr/sbin/nologin voice
COPY --from=builder /opt/venv /opt/venv
WORKDIR /opt/voice-agent
# Fails the build, not the pod, if the installed package cannot be imported here, or if the echo canceller's
# native library (livekit's liblivekit_ffi.so) does not load on this base.
RUN python -c "import gateway.app; from gateway.echo.canceller import EchoCanceller; EchoCanceller().close()"
USER 10001:10001
EXPOSE 50051 8080 9101
ENTRYPOINT ["python", "-m", "gateway"]
