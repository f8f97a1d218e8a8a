# Xiaopu image: build wheels in one stage, run as a non-root user in the next. It serves the API
# (`xiaopu serve`) or runs the worker (`xiaopu worker`) or the migrations (`xiaopu migrate`):
# docker-compose.yml says which. Base image and every installed package are pinned by version
# (requirements.lock; `make lock` regenerates it).
FROM python:3.11.14-slim-bookworm AS build
WORKDIR /src
COPY requirements.lock pyproject.toml README.md ./
COPY src ./src
# PIP_CONSTRAINT reaches the isolated build environment too, so the build backend is pinned.
ENV PIP_CONSTRAINT=/src/requirements.lock
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11.14-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 XIAOPU_ENV=production XIAOPU_HOST=0.0.0.0
RUN useradd --system --create-home --uid 10001 xiaopu
COPY --from=build /wheels /wheels
COPY requirements.lock /tmp/requirements.lock
# Only the wheels built above, and only the locked versions: nothing is resolved afresh here.
RUN pip install --no-cache-dir --no-index --find-links /wheels -c /tmp/requirements.lock xiaopu \
  && rm -rf /wheels /tmp/requirements.lock
WORKDIR /app
# Migrations are read from the working directory (see xiaopu/migrate.py).
COPY alembic.ini ./
COPY migrations ./migrations
USER xiaopu
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s \
  CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/readyz').status != 200)"
# Migrations are a step of their own (`xiaopu migrate`, the compose file's `migrate` service),
# run once before any replica starts, not by every replica on every start.
CMD ["xiaopu", "serve"]
