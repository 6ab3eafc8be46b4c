"""A support vector machine on the iris data, logged to the submitted run (v1's scikit-learn iris sample)."""

import argparse
import os

import joblib
import numpy as np
from azureml.core.run import Run
from sklearn import datasets
from sklearn.metrics import confusion_matrix
from sklearn.model_selection import train_test_split
from sklearn.svm import SVC

run = Run.get_context()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--kernel", type=str, default="linear", help="kernel type of the SVM")
    parser.add_argument("--penalty", type=float, default=1.0, help="penalty parameter of the error term")
    args = parser.parse_args()
    run.log("Kernel type", str(args.kernel))
    run.log("Penalty", float(args.penalty))

    iris = datasets.load_iris()
    X, y = iris.data, iris.target
    X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0)
    svm_model = SVC(kernel=args.kernel, C=args.penalty).fit(X_train, y_train)
    predictions = svm_model.predict(X_test)
    accuracy = svm_model.score(X_test, y_test)
    print(f"Accuracy of SVM classifier on test set: {accuracy:.2f}")
    run.log("Accuracy", float(accuracy))
    cm = confusion_matrix(y_test, predictions)
    print(cm)
    run.log_table("Confusion matrix", {str(i): [int(v) for v in column] for i, column in enumerate(np.transpose(cm))})
    os.makedirs("outputs", exist_ok=True)
    joblib.dump(svm_model, "outputs/model.joblib")


if __name__ == "__main__":
    main()
