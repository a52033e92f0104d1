"""zoo — a PyTorch Lightning model zoo for the models deep-learning theory studies.

>>> import zoo
>>> "gnn_nc" in zoo.list_models()
True
"""

__version__ = "0.1.0"

from zoo.core.checkpoint import load, save_checkpoint
from zoo.core.registry import create, create_datamodule, get_spec, list_models

# Importing the families registers their models.
from zoo import graphs  # noqa: F401  isort: skip
from zoo import hierarchical  # noqa: F401  isort: skip
from zoo import ansatz  # noqa: F401  isort: skip
from zoo import attention  # noqa: F401  isort: skip

__all__ = [
    "__version__",
    "create",
    "create_datamodule",
    "get_spec",
    "list_models",
    "load",
    "save_checkpoint",
]
