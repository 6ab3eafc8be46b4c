"""The local stack: Kafka, PostgreSQL, ingest and query as processes (no Docker).

Besides :class:`LocalStack` (``runstream up / down / status``), the pieces
other tools build on: :func:`create_topics` for the topics of a settings
object (``runstream.kafka.ensure_topics`` makes any others), :func:`http_ok` and
:func:`wait_http_ok` to wait for a service they started, :func:`free_port` to
give it a port, :func:`log_tail` to show how it ended, and the
:data:`KAFKA_VERSION` the stack runs.
"""

from ops.stack._health import http_ok, wait_http_ok
from ops.stack._kafka import KAFKA_VERSION, KafkaCluster, KafkaNode
from ops.stack._local import ROTATABLE, LocalStack, create_topics
from ops.stack._ports import free_port
from ops.stack._process import log_tail

__all__ = [
    "KAFKA_VERSION",
    "KafkaCluster",
    "KafkaNode",
    "ROTATABLE",
    "LocalStack",
    "create_topics",
    "free_port",
    "http_ok",
    "log_tail",
    "wait_http_ok",
]
