# Embeddings gateway image. Build from the repository root:
#   docker build -t embeddings-gateway .
# Configuration: config.yaml (baked in at /app/config.yaml; mount another over it or set
# GATEWAY_CONFIG) plus REDIS_URL, OPENAI_API_KEY, NANOGPT_API_KEY, GATEWAY_API_KEYS,
# GATEWAY_INTERNAL_TOKEN from the environment.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN useradd --system --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin gateway

# Only what the package needs, so the layer cache survives edits to tests and deploy files.
# README.md* : the project's readme, copied when present (pyproject names it).
WORKDIR /src
COPY pyproject.toml README.md* ./
COPY gateway ./gateway
# Install into site-packages, then drop the sources so nothing shadows the installed package.
RUN pip install . && rm -rf /src

WORKDIR /app
COPY config.yaml /app/config.yaml
# The embedded SQLite store (usage and runtime keys without Redis): mount a volume to keep it.
RUN mkdir -p /app/data && chown 10001:10001 /app/data

USER 10001:10001
ENV GATEWAY_CONFIG=/app/config.yaml \
    GATEWAY_DATA_DIR=/app/data
VOLUME /app/data

EXPOSE 8080
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=3s --start-period=15s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2).status == 200 else 1)"]

# Needs GATEWAY_API_KEYS (or add --allow-unauthenticated for a keyless local setup).
# Several workers share the port and report summed metrics (see gateway/metrics.py).
CMD ["python", "-m", "gateway", "serve", "--host", "0.0.0.0", "--port", "8080", "--workers", "2"]
