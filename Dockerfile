# syntax=docker/dockerfile:1
# Build stage: install the package and its dependencies into a virtualenv.
FROM python:3.11-slim AS build
WORKDIR /src
RUN python -m venv /opt/venv
COPY pyproject.toml ./
COPY app ./app
RUN /opt/venv/bin/pip install --no-cache-dir --upgrade pip \
 && /opt/venv/bin/pip install --no-cache-dir .

# Runtime stage: the virtualenv, the migrations, and an unprivileged user.
FROM python:3.11-slim
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOST=0.0.0.0 \
    PORT=8000
RUN useradd --system --create-home --uid 10001 scimgraph
WORKDIR /srv/scimgraph
COPY --from=build /opt/venv /opt/venv
COPY app ./app
COPY migrations ./migrations
RUN mkdir -p data && chown scimgraph:scimgraph data
USER scimgraph
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=3s CMD python -c "import urllib.request,os; urllib.request.urlopen(f'http://127.0.0.1:{os.environ.get(\"PORT\",\"8000\")}/healthz')"
# DATABASE_URL selects PostgreSQL in production; without it the embedded SQLite lives in ./data.
CMD ["python", "-m", "app", "serve"]
