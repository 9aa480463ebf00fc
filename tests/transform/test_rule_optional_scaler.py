"""AC014 on a scaler made under a condition (`GradScaler() if c else None`): a conditional precision, never
unconditional fp16 and never the loss scaled twice; the precision is left as is where the scaler is passed on."""

from __future__ import annotations

import pytest

from accel_convert.convert import convert_source

TEMPLATE = '''\
import argparse

import torch


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--amp", action="store_true")
    args = parser.parse_args()
    model = torch.nn.Linear(2, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scaler = {scaler}
    for x in torch.randn(4, 3, 2):
        optimizer.zero_grad()
        loss = model(x).sum()
        if {test}:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()


main()
'''


@pytest.mark.parametrize(
    ("scaler", "test", "precision", "branch"),
    [
        ("torch.amp.GradScaler() if args.amp else None", "scaler is not None", '"fp16" if args.amp else "no"', '== "fp16"'),
        ("None if not args.amp else torch.cuda.amp.GradScaler()", "scaler", '"fp16" if args.amp else "no"', '== "fp16"'),
    ],
    ids=["if-else-none", "none-if-not"],
)
def test_an_optional_scaler_is_a_conditional_precision(scaler, test, precision, branch):
    text = convert_source(TEMPLATE.format(scaler=scaler, test=test)).text
    assert "GradScaler" not in text and "scaler" not in text.replace("accelerator.scaler", "")
    assert f"Accelerator(mixed_precision={precision})" in text
    assert f"if accelerator.mixed_precision {branch}:" in text
    assert text.count("accelerator.backward(loss)") == 2


def test_a_negative_test_becomes_not_equal():
    source = TEMPLATE.format(scaler="torch.amp.GradScaler() if args.amp else None", test="scaler is None")
    source = source.replace("scaler.scale(loss).backward()\n            scaler.step(optimizer)\n            scaler.update()\n        else:\n            loss.backward()\n            optimizer.step()",
                            "loss.backward()\n            optimizer.step()\n        else:\n            scaler.scale(loss).backward()\n            scaler.step(optimizer)\n            scaler.update()")
    text = convert_source(source).text
    assert 'if accelerator.mixed_precision != "fp16":' in text


def test_an_optional_scaler_passed_on_leaves_the_precision_as_is():
    source = TEMPLATE.format(scaler="torch.amp.GradScaler() if args.amp else None", test="scaler is not None").replace(
        "    for x in", "    print(scaler)\n    for x in"
    )
    result = convert_source(source)
    assert "mixed_precision" not in result.text
    assert "scaler = torch.amp.GradScaler() if args.amp else None" in result.text
    (diagnostic,) = [d for d in result.diagnostics if d.code == "AC014"]
    assert "(made only when `args.amp`) is passed to `print(...)`" in diagnostic.message
