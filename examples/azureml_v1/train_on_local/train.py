"""A ridge-regression sweep on scikit-learn's diabetes data, logged to the submitted run (v1's train-on-local)."""

import os

import joblib
import mylib
from azureml.core.run import Run
from sklearn.datasets import load_diabetes
from sklearn.linear_model import Ridge
from sklearn.metrics import mean_squared_error
from sklearn.model_selection import train_test_split

os.makedirs("./outputs", exist_ok=True)
X, y = load_diabetes(return_X_y=True)
run = Run.get_context()
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, random_state=0)
data = {"train": {"X": X_train, "y": y_train}, "test": {"X": X_test, "y": y_test}}

for alpha in mylib.get_alphas():
    reg = Ridge(alpha=alpha)
    reg.fit(data["train"]["X"], data["train"]["y"])
    preds = reg.predict(data["test"]["X"])
    mse = mean_squared_error(preds, data["test"]["y"])
    run.log("alpha", alpha)
    run.log("mse", mse)
    model_file_name = f"ridge_{alpha:.2f}.pkl"
    # in outputs/: uploaded with the run when it ends
    joblib.dump(value=reg, filename=os.path.join("./outputs/", model_file_name))
    print(f"alpha is {alpha:.2f}, and mse is {mse:0.2f}")
print("EXAMPLE_ENV_VAR is", os.environ.get("EXAMPLE_ENV_VAR"))
