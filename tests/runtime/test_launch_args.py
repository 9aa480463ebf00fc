"""`accel launch` before anything starts: settings -> torchrun arguments and worker environment, usage errors."""

from __future__ import annotations

import shlex

import pytest
from click.testing import CliRunner

from accel.cli import main
from accel.cli.settings import merge
from accel.cli.torchrun_args import torchrun_argv
from accel.cli.worker_env import worker_environment


@pytest.fixture
def script(tmp_path, monkeypatch):
    monkeypatch.setenv("ACCEL_CONFIG_FILE", str(tmp_path / "absent.yaml"))
    path = tmp_path / "train.py"
    path.write_text("")
    return str(path)


def run_cli(*args):
    return CliRunner().invoke(main, list(args), prog_name="accel")


def test_multi_node_flags_map_onto_torchrun_rendezvous():
    settings = merge({}, {}, {"num_processes": 8, "num_machines": 2, "machine_rank": 1,
                              "main_process_ip": "10.0.0.5", "main_process_port": 29600})
    argv = torchrun_argv(settings, "train.py", ["--lr", "0.1"], module=False)
    assert argv == ["--nproc-per-node", "4", "--max-restarts", "0", "--nnodes", "2", "--node-rank", "1",
                    "--rdzv-backend", "static", "--rdzv-endpoint", "10.0.0.5:29600", "train.py", "--lr", "0.1"]


def test_multi_node_default_port_ipv6_and_c10d():
    settings = merge({}, {}, {"num_processes": 2, "num_machines": 2, "main_process_ip": "fe80::1",
                              "rdzv_backend": "c10d"})
    argv = torchrun_argv(settings, "pkg.train", [], module=True)
    assert argv[argv.index("--rdzv-endpoint") + 1] == "[fe80::1]:29500"
    assert argv[argv.index("--rdzv-backend") + 1] == "c10d"
    assert argv[-2:] == ["--module", "pkg.train"]


def test_one_machine_uses_a_standalone_rendezvous_unless_a_port_is_given():
    assert "--standalone" in torchrun_argv(merge({}, {}, {"num_processes": 2}), "t.py", [], module=False)
    pinned = torchrun_argv(merge({}, {}, {"main_process_port": 1234}), "t.py", [], module=False)
    assert "--standalone" not in pinned
    assert pinned[pinned.index("--rdzv-endpoint") + 1] == "127.0.0.1:1234"


def test_dry_run_parses_underscore_flags_and_prints_command_and_environment(script):
    result = run_cli("launch", "--dry-run", "--num_machines", "2", "--num_processes", "4", "--machine_rank", "1",
                     "--main_process_ip", "node0", "--main_process_port", "29555", "--use_fsdp",
                     "--fsdp_transformer_layer_cls", "Block,Layer", "--no-fsdp-reshard-after-forward",
                     script, "--num_processes", "9")
    assert result.exit_code == 0, result.output
    command, *variables = result.output.splitlines()
    assert shlex.split(command)[3:] == [
        "--nproc-per-node", "2", "--max-restarts", "0", "--nnodes", "2", "--node-rank", "1", "--rdzv-backend",
        "static", "--rdzv-endpoint", "node0:29555", script, "--num_processes", "9"]
    env = dict(line.split("=", 1) for line in variables)
    assert env["ACCEL_USE_FSDP"] == "true"
    assert env["ACCEL_FSDP_AUTO_WRAP_POLICY"] == "transformer"  # implied by the layer classes
    assert env["ACCEL_FSDP_TRANSFORMER_LAYER_CLS"] == "Block,Layer"
    assert env["ACCEL_FSDP_RESHARD_AFTER_FORWARD"] == "false"
    assert "ACCEL_FSDP_CPU_OFFLOAD" not in env  # not given: the runtime decides


def test_deepspeed_and_gpu_settings_become_contract_variables():
    settings = merge({}, {}, {"num_processes": 2, "gpu_ids": (2, 3), "use_deepspeed": True, "zero_stage": 3,
                              "offload_optimizer": "cpu", "offload_param": "cpu", "gradient_clipping": 1.5,
                              "mixed_precision": "fp16"})
    env = worker_environment(settings, {"PATH": "/bin"}, cpu_count=16)
    assert env == {"PATH": "/bin", "ACCEL_MIXED_PRECISION": "fp16", "ACCEL_USE_CPU": "false",
                   "ACCEL_GRADIENT_ACCUMULATION_STEPS": "1", "ACCEL_USE_FSDP": "false", "ACCEL_USE_DEEPSPEED": "true",
                   "ACCEL_ZERO_STAGE": "3", "ACCEL_OFFLOAD_OPTIMIZER_DEVICE": "cpu",
                   "ACCEL_OFFLOAD_PARAM_DEVICE": "cpu", "ACCEL_GRADIENT_CLIPPING": "1.5",
                   "CUDA_VISIBLE_DEVICES": "2,3", "OMP_NUM_THREADS": "8"}


@pytest.mark.parametrize(("args", "message"), [
    (["--num-processes", "0"], "'--num-processes': '0' is not allowed; expected an integer >= 1"),
    (["--mixed-precision", "fp8"], "'--mixed-precision': 'fp8' is not allowed; expected one of no, fp16, bf16"),
    (["--main-process-port", "70000"], "'--main-process-port': '70000' is not allowed; expected a port number"),
    (["--gpu-ids", "0,x"], "'--gpu-ids': '0,x' is not allowed; expected `all` or a comma-separated list"),
    (["--num-machines", "2", "--num-processes", "2", "--machine-rank", "2", "--main-process-ip", "h"],
     "machine_rank = 2 (from --machine-rank) must be below num_machines = 2 (from --num-machines)"),
    (["--num-machines", "2", "--num-processes", "3", "--main-process-ip", "h"],
     "num_processes = 3 (from --num-processes) is the total over all machines and must be a multiple of"),
    (["--num-machines", "2", "--num-processes", "2"],
     "--main-process-ip (main_process_ip) is required with num_machines = 2"),
    (["--zero-stage", "2"], "--zero-stage needs --use-deepspeed"),
    (["--use-deepspeed", "--zero-stage", "2", "--offload-param", "cpu"],
     "offload_param = cpu (from --offload-param) needs ZeRO stage 3, not zero_stage = 2 (from --zero-stage)"),
    (["--use-fsdp", "--use-deepspeed"], "choose one of use_fsdp = true (from --use-fsdp) and use_deepspeed"),
    (["--use-fsdp", "--fsdp-auto-wrap-policy", "transformer"], "needs the layer classes to wrap"),
    (["--gpu-ids", "0", "--num-processes", "2"], "gpu_ids = 0 (from --gpu-ids) lists 1 GPU(s) but each machine runs 2"),
    (["--config-file", "/nonexistent/c.yaml"], "config file /nonexistent/c.yaml does not exist"),
])
def test_usage_errors_exit_2_naming_flag_value_and_allowed(script, args, message):
    result = run_cli("launch", *args, script)
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split())


def test_missing_script_is_a_usage_error(script):
    result = run_cli("launch", "--cpu", script + ".missing")
    assert result.exit_code == 2
    assert f"Invalid value for SCRIPT: '{script}.missing': no such file" in result.output
