"""The v1 scikit-learn iris notebook's training part, on the local machine instead of an AmlCompute cluster.

Written against Azure ML SDK v1 (``azureml.core``); runstream runs it with
the compatibility layer, or with ``from producer import ...`` instead. The
sample's cluster becomes ``compute_target="local"``: runstream runs scripts
on this machine (any other target raises UnsupportedError).
"""

import os

from azureml.core import Environment, Experiment, ScriptRunConfig
from azureml.core.workspace import Workspace
from azureml.widgets import RunDetails

ws = Workspace.from_config()
print(
    "Workspace name: " + ws.name,
    "Azure region: " + ws.location,
    "Subscription id: " + ws.subscription_id,
    "Resource group: " + ws.resource_group,
    sep="\n",
)
project_folder = os.path.dirname(os.path.abspath(__file__))
experiment = Experiment(ws, name="train_iris")
sklearn_env = Environment.get(ws, name="AzureML-sklearn-1.0-ubuntu20.04-py38-cpu")
src = ScriptRunConfig(
    source_directory=project_folder,
    script="train_iris.py",
    arguments=["--kernel", "linear", "--penalty", 1.0],
    compute_target="local",
    environment=sklearn_env,
)
run = experiment.submit(src)
RunDetails(run).show()
run.wait_for_completion(show_output=True)
print("IRIS", run.id)
