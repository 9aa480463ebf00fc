"""Tables of the PyTorch names the analysis recognises, by qualified name (data, not logic)."""

from __future__ import annotations

import re

DATALOADERS = frozenset({"torch.utils.data.DataLoader", "torch.utils.data.dataloader.DataLoader"})
DISTRIBUTED_SAMPLERS = frozenset(
    {"torch.utils.data.DistributedSampler", "torch.utils.data.distributed.DistributedSampler"}
)
MODEL_WRAPPERS = frozenset(
    {
        "torch.nn.DataParallel",
        "torch.nn.parallel.DataParallel",
        "torch.nn.parallel.data_parallel.DataParallel",
        "torch.nn.parallel.DistributedDataParallel",
        "torch.nn.parallel.distributed.DistributedDataParallel",
        "apex.parallel.DistributedDataParallel",
    }
)
TORCH_DDP = frozenset({"torch.nn.parallel.DistributedDataParallel", "torch.nn.parallel.distributed.DistributedDataParallel"})
DDP_WRAPPERS = TORCH_DDP | {"apex.parallel.DistributedDataParallel"}
GRAD_SCALERS = frozenset(
    {
        "torch.cuda.amp.GradScaler",
        "torch.amp.GradScaler",
        "torch.amp.grad_scaler.GradScaler",
        "torch.cpu.amp.GradScaler",
        "torch.GradScaler",
    }
)
# the runtime's handler for DistributedDataParallel's options
DDP_KWARGS = "DistributedDataParallelKwargs"
# nn.parallel.data_parallel(module, inputs, device_ids, output_device, dim, module_kwargs): DataParallel as a call
FUNCTIONAL_DATA_PARALLEL = frozenset({"torch.nn.parallel.data_parallel", "torch.nn.parallel.data_parallel.data_parallel"})
# the number of devices of a kind visible to this process
DEVICE_COUNTS = frozenset(
    {"torch.cuda.device_count", "torch.xpu.device_count", "torch.mps.device_count", "torch.accelerator.device_count"}
)
MODULE_BASES = frozenset({"torch.nn.Module", "torch.nn.modules.module.Module"})
DEVICE_CONSTRUCTORS = frozenset({"torch.device", "torch.accelerator.current_accelerator"})
AVAILABILITY_CHECKS = frozenset(
    {
        "torch.cuda.is_available",
        "torch.backends.mps.is_available",
        "torch.accelerator.is_available",
        "torch.xpu.is_available",
    }
)
ACCELERATOR_CLASSES = frozenset({"accel.Accelerator", "accelerate.Accelerator", "accelerate.accelerator.Accelerator"})

_OPTIMIZER = re.compile(r"^torch\.optim\.(?:[a-z_]+\.)?([A-Z]\w*)$")
_SCHEDULER = re.compile(r"^torch\.optim\.lr_scheduler\.([A-Z]\w*)$")
_SCHEDULER_BASES = frozenset({"LRScheduler", "_LRScheduler"})
_OPTIMIZER_BASES = frozenset({"Optimizer"})

# Names a star import of these modules brings in, for the classes above.
STAR_EXPORTS = {
    "torch.optim": frozenset(
        "ASGD Adadelta Adafactor Adagrad Adam AdamW Adamax LBFGS NAdam RAdam RMSprop Rprop SGD SparseAdam".split()
    ),
    "torch.optim.lr_scheduler": frozenset(
        "ChainedScheduler ConstantLR CosineAnnealingLR CosineAnnealingWarmRestarts CyclicLR ExponentialLR LambdaLR"
        " LinearLR MultiStepLR MultiplicativeLR OneCycleLR PolynomialLR ReduceLROnPlateau SequentialLR StepLR".split()
    ),
    "torch.utils.data": frozenset({"DataLoader"}),
    "torch.nn": frozenset({"Module"}),
    "torch": frozenset({"device"}),
}


# Splits and permutations of a data set that draw from a global random generator unless given one of their own:
# qualified name -> (the global generator: "torch", "numpy" or "random"; the keyword that gives them their own,
# and its position when it may be passed positionally, or None)
RANDOM_SPLITS: dict[str, tuple[str, tuple[str, int | None] | None]] = {
    "torch.utils.data.random_split": ("torch", ("generator", 2)),
    "torch.utils.data.dataset.random_split": ("torch", ("generator", 2)),
    "torch.randperm": ("torch", ("generator", None)),
    "numpy.random.permutation": ("numpy", None),
    "numpy.random.shuffle": ("numpy", None),
    "numpy.random.choice": ("numpy", None),
    "sklearn.model_selection.train_test_split": ("numpy", ("random_state", None)),
    "random.shuffle": ("random", None),
    "random.sample": ("random", None),
}
# Generators made without a seed draw a fresh one from the operating system: different in every process.
UNSEEDED_GENERATORS = frozenset({"numpy.random.default_rng", "numpy.random.RandomState", "random.Random"})
# Calls that seed global random generators -> the generators they seed.
_ALL_GENERATORS = frozenset({"torch", "numpy", "random"})
SEEDS: dict[str, frozenset[str]] = {
    "torch.manual_seed": frozenset({"torch"}),
    "torch.random.manual_seed": frozenset({"torch"}),
    "numpy.random.seed": frozenset({"numpy"}),
    "random.seed": frozenset({"random"}),
    "accelerate.utils.set_seed": _ALL_GENERATORS,
    "transformers.set_seed": _ALL_GENERATORS,
    "transformers.trainer_utils.set_seed": _ALL_GENERATORS,
    "lightning.seed_everything": _ALL_GENERATORS,
    "lightning.pytorch.seed_everything": _ALL_GENERATORS,
    "lightning.fabric.seed_everything": _ALL_GENERATORS,
    "pytorch_lightning.seed_everything": _ALL_GENERATORS,
}


def is_optimizer(qualified: str) -> bool:
    if qualified.startswith(("torch.optim.lr_scheduler.", "torch.optim.swa_utils.")):
        return False
    match = _OPTIMIZER.match(qualified)
    return match is not None and match.group(1) not in _OPTIMIZER_BASES


def is_scheduler(qualified: str) -> bool:
    match = _SCHEDULER.match(qualified)
    return match is not None and match.group(1) not in _SCHEDULER_BASES


def is_model_constructor(qualified: str) -> bool:
    """Library constructors whose result is a model when it is called in a training loop."""
    return qualified.startswith("torchvision.models.")

# calls that copy a module as it is (its device included): an EMA or a frozen copy made before the prepare
MODEL_COPIES = frozenset(
    {
        "copy.deepcopy",
        "torch.optim.swa_utils.AveragedModel",
        "timm.utils.ModelEma",
        "timm.utils.ModelEmaV2",
        "timm.utils.ModelEmaV3",
    }
)

# torch.distributed calls that combine values across processes
COLLECTIVES = frozenset(
    f"torch.distributed.{name}"
    for name in "all_reduce reduce all_gather all_gather_object gather gather_object all_gather_into_tensor reduce_scatter".split()
)
