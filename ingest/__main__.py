"""``python -m ingest``: one worker configured from ``RUNSTREAM_*`` variables.

Exits 0 after SIGTERM or SIGINT once the batch in hand is written.
"""

from __future__ import annotations

import logging
import sys

from runstream.config import ConfigError, Settings

from . import IngestError, run_worker


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        run_worker(Settings.from_env())
    except (ConfigError, IngestError) as exc:
        logging.getLogger("ingest").error("%s", exc)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
