# runstream's Python components (ingest worker, query service) for docker-compose.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY runstream ./runstream
COPY producer ./producer
COPY ingest ./ingest
COPY query ./query
RUN pip install --no-cache-dir .
USER nobody
ENTRYPOINT ["runstream"]
