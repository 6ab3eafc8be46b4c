"""Offline runs as Azure ML v1 has them, with what runstream adds: they are recorded and published later.

``Run.get_context()`` in a process that was not started for a run returns an
:class:`_OfflineRun` (v1's own name, ``azureml.core.run._OfflineRun``, which
scripts test for) whose ``id`` is ``OfflineRun_<uuid>``, as v1's is.
``Run.get_context(allow_offline=False)`` raises :class:`RunEnvironmentError`
there instead, as v1 raises ``RunEnvironmentException``.

Where v1's offline run prints what it is given and forgets it, runstream's
writes everything to the spool (``<RUNSTREAM_HOME>/spool/<uuid>/``: records,
and files under ``files/``), and ``runstream sync`` publishes it later as the
run ``<uuid>`` of the experiment ``offline``: events and the store need a
UUID, so the prefix is dropped there and only there. ``Run(experiment,
"OfflineRun_<uuid>")`` (or the bare uuid) attaches to the synced run, whose
``id`` is then the uuid. Reads that need the query service
(``get_metrics``...) raise :class:`OfflineRunError` on the offline object.
"""

from __future__ import annotations

# The class lives beside Run (producer._run), which makes one for get_context() and child_run():
# this module is its documentation and its v1 name's home (azureml.core.run._OfflineRun).
from producer._run import OFFLINE_PREFIX, _OfflineRun

__all__ = ["OFFLINE_PREFIX", "_OfflineRun"]
