"""Puts runstream_azureml_compat.pth at the top of the wheel (site-packages), where Python reads it at start-up."""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

PTH = "runstream_azureml_compat.pth"


class BuildWithPth(build_py):
    def run(self) -> None:
        super().run()
        self.copy_file(str(Path(__file__).parent / PTH), str(Path(self.build_lib) / PTH))


setup(cmdclass={"build_py": BuildWithPth})
