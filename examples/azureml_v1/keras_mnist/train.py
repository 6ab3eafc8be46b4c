"""A digit classifier logged epoch by epoch through a Keras-style callback (v1's Keras MNIST sample).

The v1 sample trains a Keras MLP on MNIST and logs ``Loss`` and ``Accuracy``
from ``Callback.on_epoch_end``. This one keeps that callback and the calls it
makes to the run, and trains scikit-learn's MLP on its bundled 8x8 digits
(no download), driving the callback the way Keras does (numpy scalars in
``logs``); with TensorFlow installed, the callback is Keras's own class.
"""

import argparse
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from azureml.core import Run  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402
from sklearn.neural_network import MLPClassifier  # noqa: E402

try:
    from tensorflow.keras.callbacks import Callback
except ImportError:

    class Callback:  # what the sample's callback uses of Keras's
        def __init__(self):
            self.model = None


parser = argparse.ArgumentParser()
parser.add_argument("--epochs", type=int, default=8)
parser.add_argument("--hidden", type=int, default=32)
args = parser.parse_args()

run = Run.get_context()
X, y = load_digits(return_X_y=True)
x_train, x_test, y_train, y_test = train_test_split(X / 16.0, y, test_size=0.25, random_state=0)


class LogRunMetrics(Callback):
    # called at the end of every epoch
    def on_epoch_end(self, epoch, log):
        # logging the same name again makes a series
        run.log("Loss", log["val_loss"])
        run.log("Accuracy", log["val_accuracy"])


model = MLPClassifier(hidden_layer_sizes=(args.hidden,), learning_rate_init=0.01, random_state=0)
callback = LogRunMetrics()
history = {"val_loss": [], "val_accuracy": []}
for epoch in range(args.epochs):
    model.partial_fit(x_train, y_train, classes=np.arange(10))
    probabilities = np.clip(model.predict_proba(x_test), 1e-12, 1.0)
    logs = {
        "val_loss": np.float32(-np.mean(np.log(probabilities[np.arange(len(y_test)), y_test]))),
        "val_accuracy": np.float32(model.score(x_test, y_test)),
    }
    for key, value in logs.items():
        history[key].append(float(value))
    callback.on_epoch_end(epoch, logs)

score = (history["val_loss"][-1], history["val_accuracy"][-1])
run.log("Final test loss", score[0])
print("Test loss:", score[0])
run.log("Final test accuracy", score[1])
print("Test accuracy:", score[1])

plt.figure(figsize=(6, 3))
plt.title(f"Digits with an MLP ({args.epochs} epochs)", fontsize=14)
plt.plot(history["val_accuracy"], "b-", label="Accuracy", lw=4, alpha=0.5)
plt.plot(history["val_loss"], "r--", label="Loss", lw=4, alpha=0.5)
plt.legend(fontsize=12)
plt.grid(True)
run.log_image("Accuracy vs Loss", plot=plt)

os.makedirs("./outputs/model", exist_ok=True)
with open("./outputs/model/weights.npy", "wb") as weights:
    np.save(weights, model.coefs_[0])
print("model saved in ./outputs/model")
