"""The v1 "logging API" notebook's flow, as a script: every logging call, then reading the run back.

Written against Azure ML SDK v1 (``azureml.core``); runstream runs it with
the compatibility layer, or with ``from producer import ...`` instead.
"""

import os

import matplotlib

matplotlib.use("Agg")
import azureml.core  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from azureml.core import Experiment, Run, Workspace  # noqa: E402
from tqdm import tqdm  # noqa: E402

print("SDK version", azureml.core.VERSION)
ws = Workspace.from_config()
print(
    "Workspace name: " + ws.name,
    "Azure region: " + ws.location,
    "Subscription id: " + ws.subscription_id,
    "Resource group: " + ws.resource_group,
    sep="\n",
)
experiment = Experiment(workspace=ws, name="logging-api-test")

run = experiment.start_logging()
run_id = run.id
scale_factor = 2
category = "Red"
print(run._repr_html_())
print(experiment._repr_html_())

run.log(name="Category", value=category)
run.log(name="scale factor", value=scale_factor)
run.log(name="Magic Number", value=42 * scale_factor)

fibonacci_values = [0, 1, 1, 2, 3, 5, 8, 13, 21, 34, 55, 89]
scaled_values = (i * scale_factor for i in fibonacci_values)
run.log_list(name="Fibonacci", value=scaled_values)
for i in tqdm(range(-10, 10)):
    run.log(name="Sigmoid", value=1 / (1 + np.exp(-i)))

sines = {"angle": [], "sine": []}
for i in tqdm(range(-10, 10)):
    angle = i / 2.0 * scale_factor
    run.log_row(name="Cosine Wave", angle=angle, cos=np.cos(angle))
    sines["angle"].append(angle)
    sines["sine"].append(np.sin(angle))
run.log_table(name="Sine Wave", value=sines)

angle = np.linspace(-3, 3, 50) * scale_factor
plt.plot(angle, np.tanh(angle), label="tanh")
plt.legend(fontsize=12)
plt.title("Hyperbolic Tangent", fontsize=16)
plt.grid(True)
run.log_image(name="Hyperbolic Tangent", plot=plt)

os.makedirs("outputs", exist_ok=True)
file_name = "outputs/myfile.txt"
with open(file_name, "w") as f:
    f.write("This is an output file that will be uploaded.\n")
run.upload_file(name=file_name, path_or_stream=file_name)
run.complete()

fetched_run = Run(experiment, run_id)
print(fetched_run._repr_html_())
print(fetched_run.get_metrics())
print(fetched_run.get_metrics(name="scale factor"))
print(fetched_run.get_file_names())
os.makedirs("files", exist_ok=True)
for f in run.get_file_names():
    dest = os.path.join("files", f.split("/")[-1])
    print(f"Downloading file {f} to {dest}...")
    fetched_run.download_file(f, dest)

fetched_run.tag("My Favorite Run")
fetched_run.tag("Competition Rank", 1)
print(fetched_run.get_tags())
print("RUN_ID", run_id)
