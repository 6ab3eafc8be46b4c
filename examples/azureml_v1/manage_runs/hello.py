from azureml.core import Run

run = Run.get_context()
print("Hello from a submitted run", run.id)
run.log("message", "Hello from run!")
