"""Azure ML v1's ``RunConfiguration``: the shape ``ScriptRunConfig.run_config`` has, for scripts that edit it.

Only what runs locally has an effect (see :mod:`producer._environment`):
``target`` must be ``"local"``, ``environment`` chooses the interpreter and
variables, ``environment_variables`` are set in the script's process,
``arguments``/``script``/``command`` say what runs and
``max_run_duration_seconds`` cancels a script that runs longer. The rest
(``framework``, ``node_count``, ``data_references``...) is kept and recorded.
"""

from __future__ import annotations

import logging
from typing import Any

from producer._environment import CondaDependencies, Environment, check_variables
from producer._errors import UnsupportedError

#: The only compute target there is: this machine.
LOCAL_TARGET = "local"
_log = logging.getLogger(__name__)


class DockerConfiguration:
    """v1's ``DockerConfiguration``; ``use_docker=True`` is refused at submission."""

    def __init__(
        self, use_docker: bool = False, shm_size: str | None = None, shared_volumes: bool = True, arguments: Any = None
    ) -> None:
        self.use_docker = use_docker
        self.shm_size = shm_size
        self.shared_volumes = shared_volumes
        self.arguments = list(arguments or [])


class RunConfiguration:
    """v1's ``RunConfiguration(script=None, arguments=None, ...)``, with the attributes scripts set."""

    def __init__(
        self,
        script: str | None = None,
        arguments: list[Any] | None = None,
        framework: str | None = None,
        communicator: str | None = None,
        conda_dependencies: CondaDependencies | None = None,
        _history_enabled: bool | None = None,
        _path: str | None = None,
        _name: str | None = None,
        command: Any = None,
    ) -> None:
        self.script = script
        self.command = command if command else ""
        self.arguments: list[Any] = list(arguments) if arguments else []
        self._target = LOCAL_TARGET
        self.framework = framework or "Python"
        self.communicator = communicator or "None"
        self.max_run_duration_seconds: int | None = None
        self.node_count = 1
        self.priority: int | None = None
        self.environment = Environment("default-environment")
        if conda_dependencies is not None:
            self.environment.python.conda_dependencies = conda_dependencies
        self.docker = DockerConfiguration()
        self.data_references: dict[str, Any] = {}
        self.data: dict[str, Any] = {}
        self.output_data: dict[str, Any] = {}
        self._environment_variables: dict[str, str] = {}
        self.credential_passthrough = False

    @property
    def target(self) -> str:
        """Where the script runs: only ``"local"`` is possible (a compute target object counts by its name)."""
        return self._target

    @target.setter
    def target(self, target: Any) -> None:
        self._target = target_name(target)

    @property
    def environment_variables(self) -> dict[str, str]:
        """Variables set in the script's process, over the environment's."""
        return self._environment_variables

    @environment_variables.setter
    def environment_variables(self, value: dict[str, str]) -> None:
        self._environment_variables = check_variables(value, "RunConfiguration.environment_variables")

    @property
    def auto_prepare_environment(self) -> bool:
        """Deprecated and unused in v1 too."""
        return True

    @auto_prepare_environment.setter
    def auto_prepare_environment(self, _: bool) -> None:
        _log.warning("'auto_prepare_environment' is deprecated and unused.")

    def check_runnable(self) -> None:
        """Raise :class:`UnsupportedError` for what cannot run on this machine as configured."""
        check_local(self._target)
        if self.docker.use_docker:
            raise UnsupportedError(
                "RunConfiguration.docker.use_docker = True: runstream runs submitted scripts in a local Python "
                "process, without containers"
            )
        if self.node_count != 1:
            raise UnsupportedError(f"node_count {self.node_count}: runstream runs a submitted script as one process")
        if not isinstance(self.environment, Environment):
            raise TypeError(f"run_config.environment must be an Environment, got {type(self.environment).__name__}")
        self.environment.check_runnable()


def target_name(target: Any) -> str:
    """A compute target's name: a str, or a ComputeTarget-like object's ``name``; None means local."""
    if target is None:
        return LOCAL_TARGET
    if isinstance(target, str):
        return target
    name = getattr(target, "name", None)
    if isinstance(name, str):
        return name
    raise TypeError(f"compute_target must be 'local', a name or a compute target, got {type(target).__name__}")


def check_local(target: str) -> None:
    if target != LOCAL_TARGET:
        raise UnsupportedError(
            f"compute_target {target!r}: runstream runs submitted scripts on this machine only; "
            "use compute_target='local' (or leave it out). Remote compute targets need Azure."
        )
