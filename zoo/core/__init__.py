"""Family-agnostic machinery: registry, config validation, checkpoints, Hub, base data."""

from zoo.core.config import Interval, validate_kwargs
from zoo.core.data import SyntheticDataModule, TensorBatches, split_generator
from zoo.core.module import ZooModule
from zoo.core.registry import (
    create,
    create_datamodule,
    get_spec,
    list_datamodules,
    list_models,
    register_datamodule,
    register_model,
)

__all__ = [
    "Interval",
    "SyntheticDataModule",
    "TensorBatches",
    "ZooModule",
    "create",
    "create_datamodule",
    "get_spec",
    "list_datamodules",
    "list_models",
    "register_datamodule",
    "register_model",
    "split_generator",
    "validate_kwargs",
]
