"""`accel config` and the config file: written, read back (also by Accelerate), every bad key or value named."""

from __future__ import annotations

import textwrap

import pytest
import yaml
from click.testing import CliRunner

from accel.cli import main
from accel.cli.config_file import read_config
from accel.cli.settings import merge


def run_cli(*args, input=None):
    return CliRunner().invoke(main, list(args), input=input, prog_name="accel")


def write(path, text):
    path.write_text(textwrap.dedent(text))
    return path


@pytest.fixture(autouse=True)
def isolated_default_path(tmp_path, monkeypatch):
    monkeypatch.setenv("ACCEL_CONFIG_FILE", str(tmp_path / "default.yaml"))
    return tmp_path / "default.yaml"


def test_flags_written_by_accel_config_read_back_by_accel_and_by_accelerate(tmp_path):
    from accelerate.commands.config.config_args import load_config_from_file

    path = tmp_path / "c.yaml"
    result = run_cli("config", "--config-file", str(path), "--num-processes", "4", "--mixed_precision", "bf16",
                     "--use-fsdp", "--fsdp-transformer-layer-cls", "Block,Mlp",
                     "--fsdp-state-dict-type", "sharded", "--no-fsdp-reshard-after-forward")
    assert result.exit_code == 0, result.output
    values, sources = read_config(path)
    assert values == {"num_processes": 4, "mixed_precision": "bf16",
                      "use_fsdp": True, "use_deepspeed": False, "use_cpu": False, "num_machines": 1,
                      "machine_rank": 0, "gpu_ids": None, "rdzv_backend": "static",
                      "fsdp_transformer_layer_cls": ("Block", "Mlp"), "fsdp_state_dict_type": "sharded",
                      "fsdp_reshard_after_forward": False}
    assert sources["fsdp_state_dict_type"] == f"fsdp_config.fsdp_state_dict_type in {path}"
    # Accelerate accepts the same file (gradient_accumulation_steps, written only when not 1, is accel's own key).
    theirs = load_config_from_file(str(path))
    assert (theirs.distributed_type.value, theirs.num_processes, theirs.mixed_precision) == ("FSDP", 4, "bf16")
    assert theirs.fsdp_config["fsdp_transformer_layer_cls_to_wrap"] == "Block,Mlp"
    assert theirs.fsdp_config["fsdp_state_dict_type"] == "SHARDED_STATE_DICT"


def test_a_file_as_accelerate_writes_it_is_read(tmp_path):
    path = write(tmp_path / "accelerate.yaml", """\
        compute_environment: LOCAL_MACHINE
        debug: false
        distributed_type: DEEPSPEED
        deepspeed_config:
          gradient_accumulation_steps: 8
          offload_optimizer_device: cpu
          offload_param_device: none
          zero3_init_flag: false
          zero_stage: 2
        downcast_bf16: 'no'
        enable_cpu_affinity: false
        gpu_ids: 0,1
        machine_rank: 0
        main_training_function: main
        mixed_precision: no
        num_machines: 1
        num_processes: 2
        rdzv_backend: static
        same_network: true
        tpu_env: []
        tpu_use_cluster: false
        tpu_use_sudo: false
        use_cpu: false
        """)
    values, _ = read_config(path)
    settings = merge(*read_config(path), {})
    assert values["mixed_precision"] == "no"  # unquoted YAML `no` (false) still means no mixed precision
    assert (settings.use_deepspeed, settings.use_fsdp, settings.zero_stage) == (True, False, 2)
    assert (settings.offload_optimizer, settings.offload_param) == ("cpu", "none")
    assert settings.gradient_accumulation_steps == 8
    assert settings.gpu_ids == (0, 1) and settings.num_processes == 2


@pytest.mark.parametrize(("text", "message"), [
    ("num_proceses: 2\n", "unknown key num_proceses; did you mean num_processes?"),
    ("distributed_type: FSDP\nfsdp_config:\n  fsdp_min_params: 10\n",
     "unknown key fsdp_config.fsdp_min_params; did you mean fsdp_config.fsdp_min_num_params?"),
    ("mixed_precision: fp8\n", "mixed_precision: 'fp8' is not allowed; expected one of no, fp16, bf16"),
    ("num_processes: -1\n", "num_processes: -1 is not allowed; expected an integer >= 1"),
    ("distributed_type: XLA\n",
     "distributed_type: 'XLA' is not allowed; expected one of NO, MULTI_CPU, MULTI_GPU, FSDP, DEEPSPEED"),
    ("distributed_type: FSDP\nfsdp_config:\n  fsdp_state_dict_type: LOCAL_STATE_DICT\n",
     "fsdp_config.fsdp_state_dict_type: 'LOCAL_STATE_DICT' is not allowed; expected one of full, sharded"),
    ("use_cpu: maybe\n", "use_cpu: 'maybe' is not allowed; expected true or false"),
    ("num_processes: [2\n", ":2: not valid YAML"),
    ("- 1\n", "expected a mapping of keys to values, found list"),
    ("gradient_accumulation_steps: 2\ndeepspeed_config:\n  gradient_accumulation_steps: 4\n",
     "deepspeed_config.gradient_accumulation_steps = 4 contradicts gradient_accumulation_steps"),
])
def test_bad_config_file_is_a_usage_error_naming_file_key_value_and_allowed(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    script = tmp_path / "train.py"
    script.write_text("")
    result = run_cli("launch", "--config-file", str(path), str(script))
    assert result.exit_code == 2, result.output
    assert f"{path}" in result.output
    assert message in " ".join(result.output.split())


def test_settings_conflicting_across_file_and_flags_name_both_sources(tmp_path):
    path = write(tmp_path / "c.yaml", "num_processes: 3\n")
    script = tmp_path / "train.py"
    script.write_text("")
    result = run_cli("launch", "--config-file", str(path), "--num-machines", "2", "--main-process-ip", "h",
                     str(script))
    assert result.exit_code == 2
    assert (f"num_processes = 3 (from num_processes in {path}) is the total over all machines and must be a "
            "multiple of num_machines = 2 (from --num-machines)") in " ".join(result.output.split())


def test_default_file_is_read_and_a_flag_backend_replaces_the_files(isolated_default_path, tmp_path):
    write(isolated_default_path, "distributed_type: DEEPSPEED\nmixed_precision: fp16\nuse_cpu: true\n")
    script = tmp_path / "train.py"
    script.write_text("")
    result = run_cli("launch", "--dry-run", "--use-fsdp", "--no-cpu", str(script))
    assert result.exit_code == 0, result.output
    assert "ACCEL_MIXED_PRECISION=fp16" in result.output
    assert "ACCEL_USE_FSDP=true" in result.output and "ACCEL_USE_DEEPSPEED=false" in result.output
    assert "ACCEL_USE_CPU=false" in result.output


def test_interactive_questions_write_the_answers(isolated_default_path):
    answers = "\n".join([
        "2",          # machines
        "1",          # this machine's rank
        "10.1.2.3",   # main process ip
        "",           # port: default 29500
        "",           # rendezvous backend: static
        "n",          # CPU only?
        "fp32",       # GPU ids: not allowed, asked again
        "0,1",        # GPU ids
        "4",          # processes in total
        "bf16",       # mixed precision
        "",           # accumulation steps: 1
        "deepspeed",  # backend
        "n",          # DeepSpeed config file?
        "3",          # ZeRO stage
        "cpu",        # offload optimizer
        "none",       # offload params
        "y",          # clip?
        "0.5",        # max norm
    ]) + "\n"
    result = run_cli("config", input=answers)
    assert result.exit_code == 0, result.output
    assert "expected `all` or a comma-separated list of distinct GPU indices" in result.output
    assert yaml.safe_load(isolated_default_path.read_text()) == {
        "compute_environment": "LOCAL_MACHINE", "distributed_type": "DEEPSPEED", "mixed_precision": "bf16",
        "use_cpu": False, "num_processes": 4, "num_machines": 2, "machine_rank": 1, "gpu_ids": "0,1",
        "rdzv_backend": "static", "main_process_ip": "10.1.2.3", "main_process_port": 29500,
        "deepspeed_config": {"gradient_accumulation_steps": 1, "zero_stage": 3, "offload_optimizer_device": "cpu",
                             "offload_param_device": "none", "gradient_clipping": 0.5},
    }


def test_default_config_and_show(isolated_default_path):
    assert run_cli("config", "--default", "--cpu").exit_code == 0
    result = run_cli("config", "show")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0] == f"# {isolated_default_path}"
    shown = yaml.safe_load(result.output)
    assert shown["use_cpu"] is True and shown["num_processes"] == 1 and shown["distributed_type"] == "NO"


def test_show_without_a_file_prints_the_defaults(isolated_default_path):
    result = run_cli("config", "show")
    assert result.exit_code == 0
    assert result.output.startswith(f"# no config file at {isolated_default_path}: defaults")
    assert yaml.safe_load(result.output)["mixed_precision"] == "no"
