"""Which incarnation of a topic exists (creating topics is :func:`runstream.kafka.ensure_topics`).

:func:`topic_identity` tells a topic that was deleted and created again, or a
broker whose data was replaced, from the topic ingest stored offsets for:
Kafka gives every topic a random id (KIP-516) and every cluster one. aiokafka
asks for metadata in a protocol version that predates topic ids, so this
module sends version 12 of the Metadata request itself, through the client the
consumer already has (its connection and security settings).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from io import BytesIO
from typing import Any, Final

from aiokafka.errors import (
    IncompatibleBrokerVersion,
    KafkaConnectionError,
    for_code,
)
from aiokafka.protocol.abstract import AbstractType
from aiokafka.protocol.api import Request, RequestStruct, Response
from aiokafka.protocol.types import Boolean, CompactArray, CompactString, Int16, Int32, Schema, TaggedFields

__all__ = ["TopicIdentity", "topic_identity"]


@dataclass(frozen=True, slots=True)
class TopicIdentity:
    """What Kafka says a topic is: ``partitions`` 0 when it does not exist; ids None when the broker does not say."""

    cluster_id: str | None
    topic_id: uuid.UUID | None
    partitions: int

    def describe(self) -> str:
        return f"topic id {self.topic_id or '?'} in cluster {self.cluster_id or '?'}, {self.partitions} partitions"


_UNKNOWN_TOPIC: Final = 3
_NO_ID: Final = uuid.UUID(int=0)


async def topic_identity(client: Any, topic: str) -> TopicIdentity:
    """Ask one broker, through aiokafka's ``client``, for ``topic``'s id, partitions and the cluster's id.

    Falls back to the client's own (id-less) metadata on a broker too old for
    topic ids. Raises KafkaError when no broker answers.
    """
    node = client.get_random_node()
    if node is None:
        await client.force_metadata_update()
        node = client.get_random_node()
        if node is None:
            raise KafkaConnectionError(f"no broker answers for the metadata of {topic}")
    try:
        response = await client.send(node, _MetadataRequest(topic))
    except (IncompatibleBrokerVersion, NotImplementedError):
        await client.force_metadata_update()
        return TopicIdentity(None, None, len(client.cluster.partitions_for_topic(topic) or ()))
    for error_code, _name, topic_id, _internal, partitions, *_ in response.topics:
        if error_code == _UNKNOWN_TOPIC:
            return TopicIdentity(response.cluster_id, None, 0)
        if error_code:
            raise for_code(error_code)(f"metadata of {topic}")
        return TopicIdentity(response.cluster_id, None if topic_id == _NO_ID else topic_id, len(partitions))
    return TopicIdentity(response.cluster_id, None, 0)


class _Uuid(AbstractType[uuid.UUID]):  # type: ignore[misc]  # aiokafka is untyped: its classes are Any
    @classmethod
    def encode(cls, value: uuid.UUID) -> bytes:
        return value.bytes

    @classmethod
    def decode(cls, data: BytesIO) -> uuid.UUID:
        raw = data.read(16)
        if len(raw) != 16:
            raise ValueError("buffer underrun decoding a uuid")
        return uuid.UUID(bytes=raw)


class _MetadataResponseV12(Response):  # type: ignore[misc]  # aiokafka is untyped: its classes are Any
    API_KEY = 3
    API_VERSION = 12
    SCHEMA = Schema(
        ("throttle_time_ms", Int32),
        (
            "brokers",
            CompactArray(
                ("node_id", Int32),
                ("host", CompactString("utf-8")),
                ("port", Int32),
                ("rack", CompactString("utf-8")),
                ("tags", TaggedFields),
            ),
        ),
        ("cluster_id", CompactString("utf-8")),
        ("controller_id", Int32),
        (
            "topics",
            CompactArray(
                ("error_code", Int16),
                ("name", CompactString("utf-8")),
                ("topic_id", _Uuid),
                ("is_internal", Boolean),
                (
                    "partitions",
                    CompactArray(
                        ("error_code", Int16),
                        ("partition_index", Int32),
                        ("leader_id", Int32),
                        ("leader_epoch", Int32),
                        ("replica_nodes", CompactArray(Int32)),
                        ("isr_nodes", CompactArray(Int32)),
                        ("offline_replicas", CompactArray(Int32)),
                        ("tags", TaggedFields),
                    ),
                ),
                ("topic_authorized_operations", Int32),
                ("tags", TaggedFields),
            ),
        ),
        ("tags", TaggedFields),
    )


class _MetadataRequestV12(RequestStruct):  # type: ignore[misc]  # aiokafka is untyped: its classes are Any
    FLEXIBLE_VERSION = True
    API_KEY = 3
    API_VERSION = 12
    RESPONSE_TYPE = _MetadataResponseV12
    SCHEMA = Schema(
        ("topics", CompactArray(("topic_id", _Uuid), ("name", CompactString("utf-8")), ("tags", TaggedFields))),
        ("allow_auto_topic_creation", Boolean),
        ("include_topic_authorized_operations", Boolean),
        ("tags", TaggedFields),
    )


class _MetadataRequest(Request[_MetadataRequestV12]):  # type: ignore[misc]  # aiokafka is untyped: its classes are Any
    API_KEY = 3

    def __init__(self, topic: str) -> None:
        self._topic = topic

    def build(self, request_struct_class: type[_MetadataRequestV12]) -> _MetadataRequestV12:
        return request_struct_class([(_NO_ID, self._topic, {})], False, False, {})
