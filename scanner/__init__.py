"""model-scanner: stops backdoored neural networks from being promoted to production.

Importing this package imports no heavy runtime (torch, onnxruntime, mlflow): they load lazily where used.
"""

__version__ = "0.1.0"
