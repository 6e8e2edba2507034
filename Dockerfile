# The image is set up by the Makefile's own targets (install, index), the same steps
# `make run` takes on a developer machine, so the two cannot drift apart.
FROM python:3.11-slim

# Optional: a PyTorch CPU wheel index, so torch==2.13.0 comes without CUDA libraries.
ARG PIP_EXTRA_INDEX_URL=""
ENV PIP_EXTRA_INDEX_URL=${PIP_EXTRA_INDEX_URL} \
    PIP_NO_CACHE_DIR=1 \
    PYTHONUNBUFFERED=1

RUN apt-get update \
    && apt-get install -y --no-install-recommends make \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 10001 papersearch

WORKDIR /app
COPY --chown=papersearch:papersearch pyproject.toml Makefile README.md ./
# The lock files `make install` installs from: the exact versions the tests passed with.
COPY --chown=papersearch:papersearch requirements ./requirements
COPY --chown=papersearch:papersearch models ./models
COPY --chown=papersearch:papersearch indexing ./indexing
COPY --chown=papersearch:papersearch service ./service
COPY --chown=papersearch:papersearch seeds ./seeds
RUN chown papersearch:papersearch /app
USER papersearch

# Installs .venv from the lock files (torch pinned, the model inside its package), then builds
# data/index from seeds/.
RUN make install && make index

ENV PATH=/app/.venv/bin:$PATH \
    PAPERSEARCH_INDEX_DIR=/app/data/index \
    PAPERSEARCH_CACHE_DIR=/app/data/cache
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/readyz', timeout=4)"
CMD ["papersearch", "serve", "--host", "0.0.0.0", "--port", "8000"]
