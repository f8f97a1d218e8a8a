# Xiaopu API image: build wheels in one stage, run as a non-root user in the next.
FROM python:3.11-slim AS build
WORKDIR /src
RUN pip install --no-cache-dir --upgrade pip
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 XIAOPU_ENV=production XIAOPU_HOST=0.0.0.0
RUN useradd --system --create-home --uid 10001 xiaopu
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
WORKDIR /app
# Migrations are read from the working directory (see xiaopu/migrate.py).
COPY alembic.ini ./
COPY migrations ./migrations
USER xiaopu
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s \
  CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/readyz').status != 200)"
CMD ["sh", "-c", "xiaopu migrate && exec xiaopu serve"]
