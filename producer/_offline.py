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

import os
import uuid
from typing import TYPE_CHECKING, Any

from producer._run import Run

if TYPE_CHECKING:
    from producer._experiment import Experiment

#: The prefix of an offline run's id, as in Azure ML v1.
OFFLINE_PREFIX = "OfflineRun_"


class _OfflineRun(Run):
    """A run recorded to the local spool; see the module docstring."""

    def __init__(
        self,
        experiment: Experiment,
        run_id: str | None = None,
        *,
        outputs: str | os.PathLike[str] | None = None,
        display_name: str | None = None,
        parent_id: str | None = None,
        offline: bool = True,
        spool_dir: str | os.PathLike[str] | None = None,
        **_: Any,
    ) -> None:
        super().__init__(
            experiment,
            run_id if run_id is not None else str(uuid.uuid4()),
            outputs=outputs,
            display_name=display_name,
            parent_id=parent_id,
            offline=True,
            spool_dir=spool_dir,
        )
        self.id = OFFLINE_PREFIX + self._stored_id
