"""Create the events and dead-letter topics if they do not exist yet.

Several workers may start at once; a topic another one created in between is
as good as one this worker created.
"""

from __future__ import annotations

import logging
from typing import Final

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError, for_code

from runstream.events import MAX_RECORD_BYTES

__all__ = ["ensure_topics"]

log = logging.getLogger(__name__)

_ALREADY_EXISTS: Final = TopicAlreadyExistsError.errno
# Above the format's limit, so that an oversized record reaches ingest and is
# dead-lettered with its reason instead of failing in the producer.
_MAX_MESSAGE_BYTES: Final = 2 * MAX_RECORD_BYTES


async def ensure_topics(bootstrap_servers: str, topics: dict[str, int]) -> None:
    """Make sure each topic in ``{name: partitions}`` exists."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = {name: n for name, n in topics.items() if name not in existing}
        if not missing:
            return
        brokers = len((await admin.describe_cluster())["brokers"])
        replication = min(3, max(1, brokers))
        response = await admin.create_topics(
            [
                NewTopic(
                    name,
                    num_partitions=n,
                    replication_factor=replication,
                    topic_configs={"max.message.bytes": str(_MAX_MESSAGE_BYTES)},
                )
                for name, n in missing.items()
            ]
        )
        for topic_error in response.topic_errors:
            name, code = topic_error[0], topic_error[1]
            if code == 0:
                log.info("created topic %s", name)
            elif code != _ALREADY_EXISTS:
                error: type[KafkaError] = for_code(code)
                raise error(f"creating topic {name}: {topic_error[2] if len(topic_error) > 2 else ''}")
    finally:
        await admin.close()
