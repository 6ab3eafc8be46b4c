"""The v1 "train on local" notebook's flow, as a script: one user-managed and one system-managed environment.

Written against Azure ML SDK v1 (``azureml.core``); runstream runs it with
the compatibility layer, or with ``from producer import ...`` instead.
"""

import os

import azureml.core
import numpy as np
from azureml.core import Environment, Experiment, ScriptRunConfig
from azureml.core.conda_dependencies import CondaDependencies
from azureml.core.workspace import Workspace

print("SDK version:", azureml.core.VERSION)
ws = Workspace.from_config()
print(ws.name, ws.resource_group, ws.location, ws.subscription_id, sep="\n")
exp = Experiment(workspace=ws, name="train-on-local")
here = os.path.dirname(os.path.abspath(__file__))

user_managed_env = Environment("user-managed-env")
user_managed_env.python.user_managed_dependencies = True
src = ScriptRunConfig(source_directory=here, script="train.py")
src.run_config.environment = user_managed_env
run = exp.submit(src)
print(run._repr_html_())
run.wait_for_completion(show_output=True)
print("USER_MANAGED", run.id)

system_managed_env = Environment("system-managed-env")
system_managed_env.python.user_managed_dependencies = False
cd = CondaDependencies.create(conda_packages=["scikit-learn"])
system_managed_env.python.conda_dependencies = cd
src.run_config.environment = system_managed_env
run = exp.submit(src)
run.wait_for_completion(show_output=True)
print("SYSTEM_MANAGED", run.id)

metrics = run.get_metrics()
best_alpha = metrics["alpha"][np.argmin(metrics["mse"])]
print("When alpha is {:0.2f}, we have min MSE {:0.2f}.".format(best_alpha, min(metrics["mse"])))
print(run.get_file_names())
try:
    model = run.register_model(model_name="best_ridge_model", model_path="./outputs/ridge_0.40.pkl")
except NotImplementedError as exc:  # no model registry without Azure
    print("register_model:", exc)
