"""The chaos suite (issues 7 and 13): faults injected while real load flows, and a ledger that proves the outcome.

``python -m tests.chaos`` (``make chaos``) runs every scenario at full size,
``--quick`` the reduced form CI runs (``tests/test_chaos.py``). It starts its
own Kafka and PostgreSQL on free ports in a temporary directory (never the
shared stack: it stops and freezes them), and per scenario a private
database, topic and consumer group with real processes on them: ingest
workers, the query service and four training processes using the SDK.

Modules: :mod:`.trainer` (a training process and its ledger), :mod:`.ledger`
(what must be stored, read back from PostgreSQL and the query service),
:mod:`.box` (one scenario's processes), :mod:`.scenarios` (the faults),
:mod:`.sse` (live-stream clients) and :mod:`.__main__` (the runner and its
table).
"""
