"""``python -m query``: the query service with settings from ``RUNSTREAM_*`` variables."""

from __future__ import annotations

from runstream.config import Settings

from . import serve

if __name__ == "__main__":
    serve(Settings.from_env())
