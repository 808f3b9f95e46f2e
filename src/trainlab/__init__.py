"""trainlab: a config-driven experiment runner for PyTorch, tracked with MLflow."""

__version__ = "0.1.0"
