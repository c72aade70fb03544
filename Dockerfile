# The serving image: the model library and the HTTP service, no training code, no training extras.
# Build from the repository root after `make model` (the default bundle must exist in models/default):
#   make model && docker build -t podskazka . && docker run -p 8000:8000 podskazka
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PODSKAZKA_MODEL_DIR=/app/models/default

WORKDIR /app

# Dependencies first (cached layer): the runtime needs of model/ and serve/ only. scikit-learn is
# pinned to the version the bundle was trained with (its manifest says which): a bundle is refused
# by another minor version.
COPY docker/requirements-serve.txt /tmp/requirements-serve.txt
COPY models/default/manifest.json /tmp/manifest.json
RUN SKLEARN="$(python -c 'import json; print(json.load(open("/tmp/manifest.json"))["libraries"]["scikit-learn"])')" \
    && pip install -r /tmp/requirements-serve.txt "scikit-learn==${SKLEARN}" \
    && rm /tmp/requirements-serve.txt /tmp/manifest.json

# The code that serves, and the default bundle (checked against its manifest at start-up).
COPY model/ /app/model/
COPY serve/ /app/serve/
COPY models/default/ /app/models/default/

RUN useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin podskazka \
    && chown -R podskazka:podskazka /app
USER podskazka

EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/readyz', timeout=4).status == 200 else 1)"]

CMD ["python", "-m", "serve", "--host", "0.0.0.0", "--port", "8000", "--model", "/app/models/default"]
