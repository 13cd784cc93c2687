# Situate gateway. Build: docker build -t situate .  Run: docker run -p 8080:8080 situate
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY gateway ./gateway
COPY migrations ./migrations
RUN pip install --no-cache-dir --prefix=/install .

FROM python:3.11-slim
RUN useradd --system --uid 10001 --home-dir /app situate \
    && mkdir -p /app/data /app/policies && chown -R situate /app
COPY --from=build /install /usr/local
WORKDIR /app
USER situate
ENV PYTHONUNBUFFERED=1
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s CMD ["python", "-c", "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8080/healthz').status != 200)"]
# With no config this is the embedded demo (SQLite in /app/data); mount a config and set
# GATEWAY_CONFIG / GATEWAY_DATABASE_URL for a real deployment, and run `gateway db upgrade`
# as a separate step against PostgreSQL.
CMD ["gateway", "serve", "--host", "0.0.0.0", "--port", "8080"]
