"""Submits the Keras-callback training script locally and follows it (v1's Keras sample, local target).

Written against Azure ML SDK v1 (``azureml.core``); runstream runs it with
the compatibility layer, or with ``from producer import ...`` instead.
"""

import os

from azureml.core import Environment, Experiment, ScriptRunConfig, Workspace

ws = Workspace.from_config()
exp = Experiment(workspace=ws, name="keras-mnist")
env = Environment("keras-env")
env.python.user_managed_dependencies = True
src = ScriptRunConfig(
    source_directory=os.path.dirname(os.path.abspath(__file__)),
    script="train.py",
    arguments=["--epochs", 8, "--hidden", 32],
    compute_target="local",
    environment=env,
)
run = exp.submit(src)
run.wait_for_completion(show_output=True)
print(run.get_metrics())
print("KERAS", run.id)
