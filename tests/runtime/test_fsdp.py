"""FSDP2 backend on CPU (gloo, 2 processes): trains exactly like DDP, with every plugin option; checkpoints."""

import pytest

from tests.runtime.sharded_runs import assert_same_training, checkpoint_dir, train

pytestmark = pytest.mark.timeout(600)

FSDP_BLOCKS = ("--use-fsdp", "--fsdp-auto-wrap-policy", "transformer", "--fsdp-transformer-layer-cls", "Block")


def test_fsdp_per_block_trains_like_ddp():
    fsdp = train(*FSDP_BLOCKS)
    assert fsdp["distributed_type"] == "FSDP"
    assert fsdp["param_types"] == ["DTensor"]  # really sharded; the optimizer built before prepare was re-bound
    assert_same_training(fsdp, train(), atol=1e-6)


def test_fsdp_starts_every_shard_from_the_main_process_model_as_ddp_does():
    # each process initialises its own model (a seed offset by rank): DDP broadcasts the main process's weights,
    # and FSDP must shard that same model, not a mix of every process's own
    fsdp = train(*FSDP_BLOCKS, script_args=("--seed-by-rank",))
    assert_same_training(fsdp, train(script_args=("--seed-by-rank",)), atol=1e-6)


def test_fsdp_size_policy_checkpointing_offload_no_reshard_trains_like_ddp():
    fsdp = train("--use-fsdp", "--fsdp-auto-wrap-policy", "size", "--fsdp-min-num-params", "200",
                 "--fsdp-activation-checkpointing", "--fsdp-cpu-offload", "--no-fsdp-reshard-after-forward")
    assert_same_training(fsdp, train(), atol=1e-6)  # also: gathered weight names carry no wrapper prefix


@pytest.mark.parametrize("state_dict_type", ["full", "sharded"])
def test_fsdp_save_load_continue_equals_uninterrupted(state_dict_type):
    flags = (*FSDP_BLOCKS, "--fsdp-state-dict-type", state_dict_type)
    directory = checkpoint_dir(f"fsdp-{state_dict_type}")
    first = train(*flags, script_args=("--steps", "4", "--save", directory))
    resumed = train(*flags, script_args=("--resume", directory, "--skip", "4"))
    whole = train(*FSDP_BLOCKS)
    assert first["losses"] == whole["losses"][:4]
    assert resumed["losses"] == pytest.approx(whole["losses"][4:], abs=1e-6)
    assert resumed["lr"] == pytest.approx(whole["lr"])
    for name, values in whole["weights"].items():
        assert resumed["weights"][name] == pytest.approx(values, abs=1e-6), name


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_fsdp_mixed_precision_trains_like_ddp(precision):
    fsdp = train(*FSDP_BLOCKS, "--mixed-precision", precision)
    ddp = train("--mixed-precision", precision)
    assert fsdp["losses"] == pytest.approx(ddp["losses"], abs=2e-3)  # bf16/fp16 compute, fp32 reduction
    # fp16: the sharded loss scaler skips the same overflowing steps as DDP's (their norms are inf)
    assert [n == float("inf") for n in fsdp["norms"]] == [n == float("inf") for n in ddp["norms"]]
    assert fsdp["lr"] == pytest.approx(ddp["lr"])
