"""`accel env`: what a bug report needs, as text and as JSON."""

from __future__ import annotations

import json
import os

import torch
from click.testing import CliRunner

from accel.cli import main


def run_env(tmp_path, monkeypatch, *args):
    config = tmp_path / "default.yaml"
    config.write_text("num_processes: 2\nmixed_precision: bf16\n")
    monkeypatch.setenv("ACCEL_CONFIG_FILE", str(config))
    monkeypatch.setenv("ACCEL_MIXED_PRECISION", "fp16")
    result = CliRunner().invoke(main, ["env", *args], prog_name="accel")
    assert result.exit_code == 0, result.output
    return result.output, config


def test_text_report_has_versions_devices_config_and_variables(tmp_path, monkeypatch):
    output, config = run_env(tmp_path, monkeypatch)
    lines = output.splitlines()
    assert f"- torch: {torch.__version__}" in lines
    assert f"- cuda_available: {torch.cuda.is_available()}" in lines
    assert f"- cpu_count: {os.cpu_count()}" in lines
    assert f"- path: {config}" in lines
    assert '- content: {"num_processes": 2, "mixed_precision": "bf16"}' in lines
    assert "- ACCEL_MIXED_PRECISION: fp16" in lines


def test_json_report(tmp_path, monkeypatch):
    output, _ = run_env(tmp_path, monkeypatch, "--json")
    report = json.loads(output)
    assert report["versions"]["torch"] == torch.__version__
    assert report["versions"]["python"].count(".") == 2
    assert report["devices"]["cuda_device_count"] == (torch.cuda.device_count() if torch.cuda.is_available() else 0)
    assert report["config"]["content"] == {"num_processes": 2, "mixed_precision": "bf16"}
    assert report["environment"]["ACCEL_MIXED_PRECISION"] == "fp16"
