"""``python -m ingest``: one worker configured from ``RUNSTREAM_*`` variables.

Exits 0 after SIGTERM or SIGINT once the batch in hand is written; 2 on a
setting it cannot use (a wrong password, a schema it does not understand).
Logs as ``RUNSTREAM_LOG_FORMAT`` says (``json`` for one object per line).
"""

from __future__ import annotations

import logging
import sys

from runstream.config import ConfigError, Settings
from runstream.logs import configure_logging

from . import IngestError, run_worker


def main() -> int:
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        print(f"runstream ingest: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_format, component="ingest")
    try:
        run_worker(settings)
    except (ConfigError, IngestError) as exc:
        logging.getLogger("ingest").error("%s", exc)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
