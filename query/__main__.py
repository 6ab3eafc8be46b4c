"""``python -m query``: the query service with settings from ``RUNSTREAM_*`` variables."""

from __future__ import annotations

import sys

from runstream.config import ConfigError, Settings

from . import serve

if __name__ == "__main__":
    try:
        serve(Settings.from_env())
    except ConfigError as exc:
        # One line naming the setting, not a traceback: the fix is in the environment.
        sys.exit(f"runstream query: {exc}")
