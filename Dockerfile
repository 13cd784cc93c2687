# Situate gateway. Build: docker build -t situate .  Run: docker run -p 8080:8080 situate
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY gateway ./gateway
COPY migrations ./migrations
COPY policies ./policies
RUN pip install --no-cache-dir --prefix=/install .

FROM python:3.11-slim
RUN useradd --system --uid 10001 --home-dir /app situate \
    && mkdir -p /app/data && chown -R situate /app
COPY --from=build /install /usr/local
# The example contexts (demo, bank-support, kids-tutor, coding-assistant) with their guidelines;
# mount your own folder over /app/policies for a real deployment.
COPY --chown=situate policies /app/policies
WORKDIR /app
USER situate
ENV PYTHONUNBUFFERED=1
EXPOSE 8080
# Ready, not merely alive: the database at the current schema, policies loaded, records flowing.
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s CMD ["python", "-c", "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8080/readyz').status != 200)"]
# With no config this is the embedded demo (SQLite in /app/data); mount a config and set
# GATEWAY_CONFIG / GATEWAY_DATABASE_URL for a real deployment, and run `gateway db upgrade`
# as a separate step against PostgreSQL.
CMD ["gateway", "serve", "--host", "0.0.0.0", "--port", "8080"]
