"""zoo — a PyTorch Lightning model zoo for the models deep-learning theory studies.

>>> import zoo
>>> "gnn_nc" in zoo.list_models()
True
"""

from zoo.core.checkpoint import load, save, save_checkpoint
from zoo.core.registry import create, create_datamodule, get_spec, import_submodules, list_models
from zoo.core.version import __version__

# Importing the shared sets and every family registers their models, data, targets, figures:
# a fifth family is a new subpackage, found here without an edit.
import_submodules(__name__)

__all__ = [
    "__version__",
    "create",
    "create_datamodule",
    "get_spec",
    "list_models",
    "load",
    "save",
    "save_checkpoint",
]
