"""The rewrite rules, one module each; ``RULES`` lists them by code."""

from accel_convert.rules.backward import Backward
from accel_convert.rules.base import Rule
from accel_convert.rules.clip_grad import ClipGrad
from accel_convert.rules.device_moves import DeviceMoves
from accel_convert.rules.gather_for_metrics import GatherForMetrics
from accel_convert.rules.gradient_accumulation import GradientAccumulation
from accel_convert.rules.hand_written_ddp import HandWrittenDDP
from accel_convert.rules.hogwild import Hogwild
from accel_convert.rules.main_process_writers import MainProcessWriters
from accel_convert.rules.mixed_precision import MixedPrecision
from accel_convert.rules.prepare import Prepare
from accel_convert.rules.print import Print
from accel_convert.rules.progress_bars import ProgressBars
from accel_convert.rules.save import Save
from accel_convert.rules.setup import Setup
from accel_convert.rules.torch_distributed import TorchDistributed
from accel_convert.rules.unconverted_patterns import UnconvertedPatterns

RULES: tuple[Rule, ...] = (Setup(), Prepare(), DeviceMoves(), Backward(), GatherForMetrics(), Print(), Save(), ClipGrad(), MixedPrecision(), GradientAccumulation(), TorchDistributed(), HandWrittenDDP(), ProgressBars(), Hogwild(), MainProcessWriters(), UnconvertedPatterns())
# Planning order: the setup rule places the accelerator before every use the others planned; Hogwild may veto all.
PLANNING_ORDER: tuple[Rule, ...] = (GatherForMetrics(), Print(), ProgressBars(), Save(), ClipGrad(), MixedPrecision(), GradientAccumulation(), TorchDistributed(), HandWrittenDDP(), Backward(), DeviceMoves(), Prepare(), MainProcessWriters(), UnconvertedPatterns(), Setup(), Hogwild())

__all__ = ["PLANNING_ORDER", "RULES", "Rule"]
