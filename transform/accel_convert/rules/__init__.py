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

# in code order; the order is not a dependency (every rule reads the decisions, none reads another's edits)
RULES: tuple[Rule, ...] = tuple(
    sorted(
        (Setup(), Prepare(), DeviceMoves(), Backward(), GatherForMetrics(), Print(), Save(), ClipGrad(), MixedPrecision(),
         GradientAccumulation(), TorchDistributed(), HandWrittenDDP(), ProgressBars(), Hogwild(), MainProcessWriters(),
         UnconvertedPatterns()),
        key=lambda rule: rule.code,
    )
)

__all__ = ["RULES", "Rule"]
