"""accel: run a PyTorch training script on any device and any number of processes.

The API follows Hugging Face Accelerate's: ``from accel import Accelerator``.
"""

from .accelerator import Accelerator
from .state import DistributedType
from .utils import set_seed

__all__ = ["Accelerator", "DistributedType", "set_seed"]
