"""AC013 clip-grad."""

from __future__ import annotations

from accel_convert.edits.plan import ReplaceWith
from accel_convert.rules.base import Rule

_CLIPPERS = {
    "torch.nn.utils.clip_grad_norm_": "clip_grad_norm_",
    "torch.nn.utils.clip_grad.clip_grad_norm_": "clip_grad_norm_",
    "torch.nn.utils.clip_grad_norm": "clip_grad_norm_",
    "torch.nn.utils.clip_grad_value_": "clip_grad_value_",
    "torch.nn.utils.clip_grad.clip_grad_value_": "clip_grad_value_",
}
_SUPPORTED_KEYWORDS = {"clip_grad_norm_": {"parameters", "max_norm", "norm_type"}, "clip_grad_value_": {"parameters", "clip_value"}}


class ClipGrad(Rule):
    """Clip gradients with `accelerator.clip_grad_norm_` / `accelerator.clip_grad_value_`.

    ## Why
    With mixed precision the gradients are still scaled when the script clips them, so a plain
    `torch.nn.utils.clip_grad_norm_` compares scaled gradients with `max_norm`; sharded backends (FSDP,
    DeepSpeed) hold only part of each gradient, so the norm of the local part is the wrong number. The
    accelerator's methods unscale first and compute the norm over the whole model.

    ## What it does
    `torch.nn.utils.clip_grad_norm_(params, max_norm, norm_type)` and `clip_grad_value_(params, clip_value)`,
    however they are imported (`nn.utils.clip_grad_norm_`, `from torch.nn.utils import clip_grad_norm_ as clip`,
    the deprecated `clip_grad_norm`), become the accelerator's methods with the same arguments; the returned total
    norm is kept. A call with arguments the accelerator's methods do not take (`error_if_nonfinite=`, `foreach=`)
    is left as it is, with a diagnostic. A helper function that clips and cannot see the accelerator gets it as a
    parameter (see AC001).

    ## Example
    ```python
    loss.backward()
    nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)
    optimizer.step()
    ```
    becomes
    ```python
    accelerator.backward(loss)
    accelerator.clip_grad_norm_(model.parameters(), max_norm=1.0)
    optimizer.step()
    ```
    """

    code = "AC013"
    name = "clip-grad"
    summary = "Clip gradients with `accelerator.clip_grad_norm_` / `accelerator.clip_grad_value_`."

    def needs(self, decisions):
        return [(site.scope, site.location) for site, _ in _clip_calls(decisions.analysis)]

    def plan(self, context, plan):
        for site, method in _clip_calls(context.analysis):
            unknown = [a.keyword.value for a in site.node.args if a.keyword is not None and a.keyword.value not in _SUPPORTED_KEYWORDS[method]]
            accelerator = context.access.expression(site.scope)
            if unknown or accelerator is None:
                why = f"`{unknown[0]}=` is not an argument of `accelerator.{method}`" if unknown else f"`{site.scope.name}` cannot reach the accelerator"
                plan.diagnostics.append(context.diagnostic(self.code, site.node, f"gradient clipping left as is: {why}"))
                continue
            plan.expression(site.node.func, ReplaceWith(f"{accelerator}.{method}"), site.statement)
            context.use(site.scope, site.location)
            plan.changes.append(context.change(self.code, site.node, f"`{context.code(site.node.func)}` -> `{accelerator}.{method}`"))


def _clip_calls(analysis):
    for site in analysis.facts.calls:
        method = _CLIPPERS.get(analysis.qualify(site.node.func) or "")
        if method is not None:
            yield site, method
