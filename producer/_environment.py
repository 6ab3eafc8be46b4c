"""Azure ML v1's ``Environment``: what a submitted script needs, recorded; the script runs in a local Python.

Azure builds an environment (a conda environment, a Docker image) before it
runs a script. runstream runs submitted scripts on this machine and builds
nothing, so an ``Environment`` here is a record with three effects:

* ``python.user_managed_dependencies = True`` with an ``interpreter_path``
  other than the default ``"python"`` runs the script with that interpreter;
  every other environment runs it with the Python that submits it
  (``sys.executable``), where runstream is importable;
* ``environment_variables`` are set in the script's process (v1 sets them in
  the run's container; its default ``{"EXAMPLE_ENV_VAR": "EXAMPLE_VALUE"}``
  is kept, as scripts written against v1 see it);
* the whole definition is recorded with the run (``get_details()["runDefinition"]["environment"]``).

Conda and pip specifications (``from_conda_specification``,
``from_pip_requirements``, ``CondaDependencies``) are accepted and recorded,
not installed; the driver log says so. Docker (``docker.enabled``,
``from_docker_image``...) is refused at submission with
:class:`UnsupportedError`, since nothing here runs containers.

``register(workspace)`` keeps the definition under
``<RUNSTREAM_HOME>/environments/<name>/<version>.json`` and
``Environment.get(workspace, name)`` reads it back; Azure's curated
environments (names starting ``AzureML-``) resolve to the local Python.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from producer._errors import UnsupportedError, UsageError

if TYPE_CHECKING:
    from producer._workspace import Workspace

#: Azure ML v1's default CPU image name, kept so that scripts that print or compare it still work.
DEFAULT_CPU_IMAGE = "mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu20.04"
_CURATED_PREFIX = "azureml-"
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$")
_DOCKER_REFUSAL = (
    "runstream runs submitted scripts in a Python process on this machine and starts no containers; "
    "leave docker.enabled False (or use Environment(name) with python.user_managed_dependencies = True)"
)


class CondaDependencies:
    """A conda specification: packages and channels, or the text of an environment file. Recorded, never built."""

    def __init__(self, conda_dependencies_file_path: str | os.PathLike[str] | None = None) -> None:
        self._conda_packages: list[str] = []
        self._pip_packages: list[str] = []
        self._channels: list[str] = ["anaconda", "conda-forge"]
        self._python_version: str | None = None
        self._text: str | None = None  # an environment file, kept as written
        if conda_dependencies_file_path is not None:
            self._text = _read_text(conda_dependencies_file_path, "conda specification")

    @staticmethod
    def create(
        pip_packages: list[str] | None = None,
        conda_packages: list[str] | None = None,
        python_version: str | None = None,
        pin_sdk_version: bool = True,
        pip_indexurl: str | None = None,
        channels: list[str] | None = None,
    ) -> CondaDependencies:
        """Azure ML v1's ``CondaDependencies.create``; ``pin_sdk_version`` and ``pip_indexurl`` are recorded only."""
        deps = CondaDependencies()
        for package in conda_packages or ():
            deps.add_conda_package(package)
        for package in pip_packages or ():
            deps.add_pip_package(package)
        for channel in channels or ():
            deps.add_channel(channel)
        if python_version is not None:
            deps.set_python_version(python_version)
        return deps

    def add_conda_package(self, conda_package: str) -> None:
        self._conda_packages.append(_spec(conda_package, "conda package"))

    def add_pip_package(self, pip_package: str) -> None:
        self._pip_packages.append(_spec(pip_package, "pip package"))

    def add_channel(self, channel: str) -> None:
        if _spec(channel, "channel") not in self._channels:
            self._channels.append(channel)

    def set_python_version(self, version: str) -> None:
        self._python_version = _spec(version, "python version")

    @property
    def conda_packages(self) -> list[str]:
        return list(self._conda_packages)

    @property
    def pip_packages(self) -> list[str]:
        return list(self._pip_packages)

    def as_dict(self) -> dict[str, Any]:
        """The specification as v1 records it: a conda environment document (or the file's text)."""
        if self._text is not None:
            return {"text": self._text}
        dependencies: list[Any] = [f"python={self._python_version}"] if self._python_version else []
        dependencies += self._conda_packages
        if self._pip_packages:
            dependencies.append({"pip": list(self._pip_packages)})
        return {"name": "project_environment", "channels": list(self._channels), "dependencies": dependencies}

    def serialize_to_string(self) -> str:
        """A conda environment file (YAML; JSON is YAML) for the specification."""
        if self._text is not None:
            return self._text
        return json.dumps(self.as_dict(), indent=2) + "\n"

    def save(self, path: str | os.PathLike[str]) -> str:
        Path(path).write_text(self.serialize_to_string(), encoding="utf-8")
        return str(path)


class PythonSection:
    """``environment.python``: who manages the packages, and which interpreter runs the script."""

    def __init__(self) -> None:
        self.user_managed_dependencies = False
        self.interpreter_path = "python"
        self.conda_dependencies: CondaDependencies | None = CondaDependencies()
        self.base_conda_environment: str | None = None

    def as_dict(self) -> dict[str, Any]:
        deps = self.conda_dependencies
        return {
            "userManagedDependencies": bool(self.user_managed_dependencies),
            "interpreterPath": self.interpreter_path,
            "condaDependencies": deps.as_dict() if isinstance(deps, CondaDependencies) else None,
            "baseCondaEnvironment": self.base_conda_environment,
        }


class DockerSection:
    """``environment.docker``: recorded; ``enabled = True`` is refused at submission."""

    def __init__(self) -> None:
        self.enabled = False
        self.base_image: str | None = DEFAULT_CPU_IMAGE
        self.base_dockerfile: str | None = None
        self.shm_size: str | None = None
        self.arguments: list[str] = []

    def as_dict(self) -> dict[str, Any]:
        return {
            "enabled": bool(self.enabled),
            "baseImage": self.base_image,
            "baseDockerfile": self.base_dockerfile,
            "shmSize": self.shm_size,
            "arguments": list(self.arguments),
        }


class Environment:
    """Azure ML v1's ``Environment(name)``; see the module docstring for what runs where."""

    def __init__(self, name: str, **_: Any) -> None:
        if not isinstance(name, str):
            raise TypeError(f"Environment name expected str, {type(name).__name__} found")
        self.name = name
        self.version: str | None = None
        self.python = PythonSection()
        self.docker = DockerSection()
        self.inferencing_stack_version: str | None = None
        self._environment_variables: dict[str, str] = {"EXAMPLE_ENV_VAR": "EXAMPLE_VALUE"}

    @property
    def environment_variables(self) -> dict[str, str]:
        """Variables set in the script's process (v1 deprecates this for ``RunConfiguration``'s; both work)."""
        return self._environment_variables

    @environment_variables.setter
    def environment_variables(self, value: dict[str, str]) -> None:
        self._environment_variables = check_variables(value, "Environment.environment_variables")

    def __str__(self) -> str:
        return f"Environment(Name: {self.name},\nVersion: {self.version})"

    def __repr__(self) -> str:
        return json.dumps(self.as_dict(), indent=4, sort_keys=True)

    def as_dict(self) -> dict[str, Any]:
        """The definition as recorded with a run (v1's camelCase keys)."""
        return {
            "name": self.name,
            "version": self.version,
            "python": self.python.as_dict(),
            "environmentVariables": dict(self.environment_variables),
            "docker": self.docker.as_dict(),
            "inferencingStackVersion": self.inferencing_stack_version,
        }

    def check_runnable(self) -> None:
        """Raise :class:`UnsupportedError` if running here would ignore something the environment demands."""
        if self.docker.enabled:
            raise UnsupportedError(f"Environment {self.name!r} has docker.enabled = True: {_DOCKER_REFUSAL}")

    def interpreter(self) -> str:
        """The Python that runs a script in this environment (see the module docstring)."""
        path = self.python.interpreter_path
        if self.python.user_managed_dependencies and path and path != "python":
            return str(path)
        return sys.executable

    def clone(self, new_name: str) -> Environment:
        copy = Environment._from_dict({**self.as_dict(), "name": new_name, "version": None})
        return copy

    # --- constructors -------------------------------------------------------

    @staticmethod
    def from_conda_specification(name: str, file_path: str | os.PathLike[str]) -> Environment:
        """An environment built from a conda ``environment.yml`` on Azure; here recorded, the script runs locally."""
        env = Environment(name)
        env.python.conda_dependencies = CondaDependencies(file_path)
        return env

    @staticmethod
    def from_pip_requirements(
        name: str, file_path: str | os.PathLike[str], pip_version: str | None = None
    ) -> Environment:
        """An environment built from a ``requirements.txt`` on Azure; here recorded, the script runs locally."""
        env = Environment(name)
        deps = CondaDependencies()
        if pip_version is not None:
            deps.add_conda_package(f"pip={pip_version}")
        for line in _read_text(file_path, "pip requirements").splitlines():
            requirement = line.split("#", 1)[0].strip()
            if requirement:
                deps.add_pip_package(requirement)
        env.python.conda_dependencies = deps
        return env

    @staticmethod
    def from_existing_conda_environment(name: str, conda_environment_name: str) -> Environment:
        raise UnsupportedError(
            f"Environment.from_existing_conda_environment({conda_environment_name!r}): set "
            "python.user_managed_dependencies = True and python.interpreter_path to that environment's python"
        )

    @staticmethod
    def from_docker_image(name: str, image: str, *args: Any, **kwargs: Any) -> Environment:
        raise UnsupportedError(f"Environment.from_docker_image({image!r}): {_DOCKER_REFUSAL}")

    @staticmethod
    def from_dockerfile(name: str, dockerfile: str, *args: Any, **kwargs: Any) -> Environment:
        raise UnsupportedError(f"Environment.from_dockerfile(): {_DOCKER_REFUSAL}")

    def build(self, workspace: Workspace, *args: Any, **kwargs: Any) -> Any:
        raise UnsupportedError("Environment.build(): runstream builds no images; scripts run in a local Python")

    def build_local(self, workspace: Workspace, *args: Any, **kwargs: Any) -> Any:
        raise UnsupportedError("Environment.build_local(): runstream builds no environments; install the packages")

    # --- the workspace's registry ------------------------------------------

    def register(self, workspace: Workspace) -> Environment:
        """Keep the definition under the workspace's home with the next version number; returns it so versioned."""
        _check_name(self.name)
        folder = workspace.home / "environments" / self.name
        folder.mkdir(parents=True, exist_ok=True)
        versions = [int(p.stem) for p in folder.glob("*.json") if p.stem.isdigit()]
        registered = Environment._from_dict({**self.as_dict(), "version": str(max(versions, default=0) + 1)})
        (folder / f"{registered.version}.json").write_text(json.dumps(registered.as_dict(), indent=2), "utf-8")
        return registered

    @staticmethod
    def get(workspace: Workspace, name: str, version: str | None = None, label: str | None = None) -> Environment:
        """A registered environment (the latest version by default); curated ``AzureML-*`` ones are the local Python."""
        if name.lower().startswith(_CURATED_PREFIX):
            env = Environment(name)
            env.version = version or "1"
            env.python.user_managed_dependencies = True
            return env
        _check_name(name)
        folder = workspace.home / "environments" / name
        versions = sorted((int(p.stem) for p in folder.glob("*.json") if p.stem.isdigit()), reverse=True)
        wanted = int(version) if version is not None and str(version).isdigit() else None
        found = [v for v in versions if wanted is None or v == wanted]
        if not found:
            raise UsageError(f"no registered environment {name!r}" + (f" version {version}" if version else ""))
        return Environment._from_dict(json.loads((folder / f"{found[0]}.json").read_text("utf-8")))

    @staticmethod
    def list(workspace: Workspace) -> dict[str, Environment]:
        """The latest version of each registered environment, by name."""
        root = workspace.home / "environments"
        names = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
        return {name: Environment.get(workspace, name) for name in names}

    @staticmethod
    def _from_dict(doc: dict[str, Any]) -> Environment:
        env = Environment(doc["name"])
        env.version = doc.get("version")
        python = doc.get("python") or {}
        env.python.user_managed_dependencies = bool(python.get("userManagedDependencies"))
        env.python.interpreter_path = python.get("interpreterPath") or "python"
        env.python.base_conda_environment = python.get("baseCondaEnvironment")
        env.python.conda_dependencies = _conda_from_dict(python.get("condaDependencies"))
        docker = doc.get("docker") or {}
        env.docker.enabled = bool(docker.get("enabled"))
        env.docker.base_image = docker.get("baseImage")
        env.docker.base_dockerfile = docker.get("baseDockerfile")
        env.docker.shm_size = docker.get("shmSize")
        env.docker.arguments = list(docker.get("arguments") or [])
        env._environment_variables = dict(doc.get("environmentVariables") or {})
        env.inferencing_stack_version = doc.get("inferencingStackVersion")
        return env


def check_variables(value: Any, what: str) -> dict[str, str]:
    """Environment variables: a dict of str names (no '=' or NUL) to str values (no NUL)."""
    if not isinstance(value, dict):
        raise TypeError(f"{what} must be a dict of str to str, got {type(value).__name__}")
    for key, item in value.items():
        if not isinstance(key, str) or not key or "=" in key or "\x00" in key:
            raise UsageError(f"{what}: {key!r} is not a variable name")
        if not isinstance(item, str) or "\x00" in item:
            raise UsageError(f"{what}: the value of {key} must be a str without NUL, got {item!r}"[:300])
    return dict(value)


def _conda_from_dict(doc: Any) -> CondaDependencies | None:
    if not isinstance(doc, dict):
        return None
    deps = CondaDependencies()
    if "text" in doc:
        deps._text = str(doc["text"])
        return deps
    deps._channels = [str(c) for c in doc.get("channels") or []]
    for item in doc.get("dependencies") or []:
        if isinstance(item, dict):
            deps._pip_packages += [str(p) for p in item.get("pip") or []]
        elif str(item).startswith("python="):
            deps._python_version = str(item)[len("python=") :]
        else:
            deps._conda_packages.append(str(item))
    return deps


def _read_text(path: str | os.PathLike[str], what: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read the {what} {str(path)!r}: {exc}") from None


def _spec(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value.strip() or "\x00" in value:
        raise UsageError(f"a {what} must be a non-empty str, got {value!r}"[:200])
    return value.strip()


def _check_name(name: str) -> None:
    # The name becomes a directory under the workspace's home.
    if not isinstance(name, str) or not _SAFE_NAME.match(name):
        raise UsageError(f"environment name {name!r} must be letters, digits, '.', '_' or '-' (1 to 255)"[:300])
