"""The local stack: Kafka, PostgreSQL, ingest and query as processes (no Docker)."""

from runstream.stack._local import LocalStack

__all__ = ["LocalStack"]
