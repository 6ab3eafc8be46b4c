"""runstream's stand-in for Azure ML v1's ``azureml`` package (runstream-azureml-compat).

Other ``azureml.*`` distributions stay importable beside it (a pkgutil namespace, as Azure's).
"""

__path__ = __import__("pkgutil").extend_path(__path__, __name__)
