# The image every Dagster service of the compose stack runs (code server, webserver, daemon,
# and each run's container under the Docker run launcher), plus the MLflow server.
FROM python:3.11-slim-bookworm

# Bytecode is compiled once at build time (UV_COMPILE_BYTECODE, and compileall for the project,
# which uv installs editable): every Dagster run is a fresh process, and importing the stack
# from source costs ~4 s more per run than from .pyc.
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 UV_COMPILE_BYTECODE=1 \
    UV_PROJECT_ENVIRONMENT=/opt/venv PATH=/opt/venv/bin:$PATH \
    DAGSTER_HOME=/opt/dagster/dagster_home
RUN pip install --no-cache-dir uv==0.13.9

WORKDIR /opt/snoiq
# Dependencies first, from the lock file, so code edits do not reinstall the stack.
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --no-install-project
COPY snoiq_assets ./snoiq_assets
COPY data/sample ./data/sample
RUN uv sync --frozen --no-dev && python -m compileall -q snoiq_assets

RUN mkdir -p $DAGSTER_HOME
COPY dagster.yaml workspace.yaml $DAGSTER_HOME/

EXPOSE 4000 3000 5000
