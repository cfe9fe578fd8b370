"""Model specs: the data model, YAML I/O, validation and the Python DSL."""
from .model import CostSpec, ModelSpec, RunningCost, StageSpec
from .yaml_io import load_spec, loads_spec

__all__ = ["CostSpec", "ModelSpec", "RunningCost", "StageSpec", "load_spec", "loads_spec"]
