"""The credentials the local stack generates, once per ``RUNSTREAM_HOME``, as 0600 files in ``<home>/secrets``.

==========================  ===================================================
file                        what it is
==========================  ===================================================
``kafka.password``          the ``runstream`` SCRAM-SHA-512 user every client of
                            the local stack uses (``RUNSTREAM_KAFKA_SASL_*``)
``kafka-broker.password``   the broker's own SCRAM user (inter-broker listener)
``kafka-controller.password``  the PLAIN user of the KRaft controller listener
``postgres.pgpass``         the ``runstream`` role (owns its database, not a
                            superuser), in libpq's passfile format
``postgres-admin.pgpass``   ``runstream_admin``, the cluster's superuser: only the
                            stack uses it, to create that role and database
``query-read.token``        the query service's read token: the SDK's reads and
                            the browser's sign-in (``RUNSTREAM_TOKEN``)
``query-write.token``       its write token: the SDK's uploads
                            (``RUNSTREAM_WRITE_TOKEN``)
``query-cookie.secret``     the key that signs sign-in cookies, so a restart of
                            the service keeps its users signed in
==========================  ===================================================

Every value is 32 random bytes in URL-safe base64: no character that a
passfile, a JAAS line or a SCRAM argument would have to escape.
"""

from __future__ import annotations

import secrets
from pathlib import Path

from ops.stack._private import private_dir, write_private
from runstream.config import LOCAL_READ_TOKEN, LOCAL_WRITE_TOKEN, read_secret_file, secrets_dir

__all__ = ["ADMIN_ROLE", "COOKIE_SECRET", "StackSecrets", "new_secret"]

ADMIN_ROLE = "runstream_admin"
COOKIE_SECRET = "query-cookie.secret"  # noqa: S105 - a file name, not a secret


def new_secret() -> str:
    return secrets.token_urlsafe(32)


class StackSecrets:
    """Reads (and on ``ensure()``, makes) the local stack's secrets."""

    def __init__(self, home: Path) -> None:
        self.dir = secrets_dir(home)

    def ensure(self) -> None:
        """Generate whichever secret is missing (the others are kept: they are in use)."""
        private_dir(self.dir)
        for name in (
            "kafka.password",
            "kafka-broker.password",
            "kafka-controller.password",
            LOCAL_READ_TOKEN,
            LOCAL_WRITE_TOKEN,
            COOKIE_SECRET,
        ):
            if not (self.dir / name).exists():
                write_private(self.dir / name, new_secret())
        for name, role in (("postgres.pgpass", None), ("postgres-admin.pgpass", ADMIN_ROLE)):
            if not (self.dir / name).exists():
                self.write_pgpass(name, role or "runstream", new_secret())

    def exists(self) -> bool:
        return (self.dir / "kafka.password").exists()

    def read(self, name: str) -> str:
        return read_secret_file(self.dir / name, f"the local stack's secret {name}")

    @property
    def kafka_password(self) -> str:
        return self.read("kafka.password")

    @property
    def kafka_broker_password(self) -> str:
        return self.read("kafka-broker.password")

    @property
    def kafka_controller_password(self) -> str:
        return self.read("kafka-controller.password")

    def pgpass_path(self, *, admin: bool = False) -> Path:
        return self.dir / ("postgres-admin.pgpass" if admin else "postgres.pgpass")

    def postgres_password(self, *, admin: bool = False) -> str:
        """The password in a passfile line ``*:*:*:<role>:<password>``."""
        line = self.read(self.pgpass_path(admin=admin).name).splitlines()[0]
        return line.split(":", 4)[4]

    def write_pgpass(self, name: str, role: str, password: str) -> None:
        write_private(self.dir / name, f"*:*:*:{role}:{password}\n")

    def write(self, name: str, value: str) -> None:
        write_private(self.dir / name, value)
