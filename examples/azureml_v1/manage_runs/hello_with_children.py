from azureml.core import Run

run = Run.get_context()
print("Hello from the parent run")
child_runs = run.create_children(count=5)
for c, child in enumerate(child_runs):
    child.log(name="Hello from child run", value=c)
    child.complete()
