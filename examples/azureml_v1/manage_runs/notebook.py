"""The v1 "manage runs" notebook's flow, as a script (run from its own directory, as the notebook is).

Written against Azure ML SDK v1 (``azureml.core``); runstream runs it with
the compatibility layer, or with ``from producer import ...`` instead.
"""

import azureml.core
from azureml.core import Experiment, ScriptRunConfig, Workspace

print(azureml.core.VERSION)
ws = Workspace.from_config()
exp = Experiment(workspace=ws, name="explore-runs")

notebook_run = exp.start_logging()
notebook_run.log(name="message", value="Hello from run!")
print(notebook_run.get_status())
print(notebook_run._repr_html_())
print(notebook_run.get_details())
notebook_run.complete()
print(notebook_run.get_status())

with exp.start_logging() as notebook_run:
    notebook_run.log(name="message", value="Hello from run!")
    print("Is it still running?", notebook_run.get_status())
print("Has it completed?", notebook_run.get_status())

with open(".amlignore", "w") as ignore:
    ignore.write("# Exclude the outputs directory automatically created by our earlier runs.\n/outputs\n")

run_config = ScriptRunConfig(source_directory=".", script="hello.py")
local_script_run = exp.submit(run_config)
print(local_script_run.get_status())
print(local_script_run.get_details_with_logs())
local_script_run.wait_for_completion(show_output=True)
print(local_script_run.get_status())

local_script_run.add_properties({"author": "azureml-user"})
print(local_script_run.get_properties())
try:
    local_script_run.add_properties({"author": "different-user"})
except Exception as e:
    print(e)
local_script_run.tag("quality", "great run")
print(local_script_run.get_tags())
local_script_run.tag("quality", "fantastic run")
print(local_script_run.get_tags())
local_script_run.tag("worth another look")
print(local_script_run.get_tags())
print(list(exp.get_runs(properties={"author": "azureml-user"}, tags={"quality": "fantastic run"})))
print(list(exp.get_runs(properties={"author": "azureml-user"}, tags="worth another look")))

run_config = ScriptRunConfig(source_directory=".", script="hello_with_children.py")
local_script_run = exp.submit(run_config)
local_script_run.wait_for_completion(show_output=True)
print(local_script_run.get_status())
print("CHILDREN_PARENT", local_script_run.id)

with exp.start_logging() as parent_run:
    for c, _count in enumerate(range(5)):
        with parent_run.child_run() as child:
            child.log(name="Hello from child run", value=c)
print(list(parent_run.get_children()))
print("LOGGED_PARENT", parent_run.id)

run_config = ScriptRunConfig(source_directory=".", script="hello_with_delay.py")
local_script_run = exp.submit(run_config)
print("Did the run start?", local_script_run.get_status())
local_script_run.cancel()
print("Did the run cancel?", local_script_run.get_status())
print("CANCELED", local_script_run.id)

local_script_run = exp.submit(run_config)
local_script_run.fail()
print(local_script_run.get_status())
print("FAILED", local_script_run.id)

print("SNAPSHOT", local_script_run.restore_snapshot(path="snapshots"))
