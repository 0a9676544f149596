# syntax=docker/dockerfile:1
# The gateway as a container image: `python -m shared serve` (uvicorn) on port 8080 (GATEWAY_PORT), as a
# non-root user, on a read-only root filesystem (only /tmp, a tmpfs or emptyDir, is written). No
# setting and no credential is baked in: they come from the environment (deploy/kubernetes).
#
# The base is pinned by tag. Where images are promoted, pin its digest too:
#   docker buildx imagetools inspect python:3.13.9-slim-trixie
#   docker build --build-arg PYTHON_IMAGE=python:3.13.9-slim-trixie@sha256:<digest> .
ARG PYTHON_IMAGE=python:3.13.9-slim-trixie

# --- build: wheels for requirements.txt (compilers for any package without one), into a venv --------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY requirements.txt .
RUN python -m pip wheel --wheel-dir /wheels -r requirements.txt \
    && python -m venv /opt/gateway \
    && /opt/gateway/bin/python -m pip install --no-index --find-links /wheels -r requirements.txt \
    && /opt/gateway/bin/python -m pip uninstall -y pip
COPY shared/ /app/shared/
# bytecode made here: at run time nothing may be written beside the code
RUN python -m compileall -q /app/shared /opt/gateway/lib

# --- runtime: the interpreter, the venv and the code; no compiler -------------------------------------
FROM ${PYTHON_IMAGE} AS runtime
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/gateway/bin:$PATH \
    HOME=/tmp \
    TMPDIR=/tmp \
    GATEWAY_PORT=8080
COPY --from=build /opt/gateway /opt/gateway
COPY --from=build /app/shared /app/shared
WORKDIR /app
USER 10001:10001
EXPOSE 8080
# listening on every address of the pod: the NetworkPolicy and the Service decide who reaches it
ENTRYPOINT ["/opt/gateway/bin/python", "-m", "shared", "serve", "--host", "0.0.0.0"]
