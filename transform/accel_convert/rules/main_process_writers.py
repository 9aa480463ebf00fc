"""AC020 main-process-writers."""

from __future__ import annotations

import libcst as cst

from accel_convert.analysis.traverse import Walker
from accel_convert.rules.base import Rule

_WRITERS = frozenset(
    {"torch.utils.tensorboard.SummaryWriter", "torch.utils.tensorboard.writer.SummaryWriter", "tensorboardX.SummaryWriter", "logging.FileHandler"}
)
_CONFIGURE = "logging.basicConfig"
# functions that write one file per call: every process would write the same path
_FILE_SAVES = frozenset({"torchvision.utils.save_image", "matplotlib.pyplot.savefig"})
_HANDLER_METHODS = ("addHandler", "removeHandler")  # `logger.addHandler(handler)` attaches a handler where it runs


class MainProcessWriters(Rule):
    """Write TensorBoard events, log files and saved images from the main process only.

    ## Why
    Every process runs the whole script: N `SummaryWriter`s write N event files into the same run directory, and
    N processes configuring the same log file interleave their lines in it.

    ## What it does
    A `SummaryWriter(...)` (from `torch.utils.tensorboard` or `tensorboardX`, however imported) or a
    `logging.FileHandler(...)` assigned to a name, together with every statement that uses that name, moves under
    `if accelerator.is_main_process:`. This is done only when each use is a statement of its own that calls a
    method of the object (`writer.add_scalar(...)`, `handler.setFormatter(...)`) or attaches the handler to a
    logger (`logger.addHandler(handler)`, `logger.removeHandler(handler)`): the other processes then never open
    the file, and their logger has no handler for it. A `FileHandler(...)` created inside
    `logger.addHandler(...)` moves with that statement. A writer that is passed on in any other way, returned
    or stored elsewhere gets a diagnostic instead, since guarding its creation alone would leave the other
    processes with a name that is not defined. A `logging.basicConfig(...)` statement moves under the same
    guard, with any `FileHandler` among its `handlers=`. So does a statement that writes one file per call,
    `torchvision.utils.save_image(...)` (`vutils.save_image`) or `matplotlib.pyplot.savefig(...)`: every process
    would write the same path at once; the main process writes it from its own share of the batches. The
    accelerator must exist where the line runs (as for AC011); otherwise a diagnostic names the line.

    ## Example
    ```python
    writer = SummaryWriter(log_dir)
    for epoch in range(epochs):
        ...
        writer.add_scalar("loss", loss.item(), epoch)
    writer.close()
    ```
    becomes
    ```python
    if accelerator.is_main_process:
        writer = SummaryWriter(log_dir)
    for epoch in range(epochs):
        ...
        if accelerator.is_main_process:
            writer.add_scalar("loss", loss.item(), epoch)
    if accelerator.is_main_process:
        writer.close()
    ```
    and
    ```python
    handler = logging.FileHandler(os.path.join(out_dir, "train.log"))
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger.addHandler(handler)
    ```
    becomes
    ```python
    if accelerator.is_main_process:
        handler = logging.FileHandler(os.path.join(out_dir, "train.log"))
        handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
        logger.addHandler(handler)
    ```
    """

    code = "AC020"
    name = "main-process-writers"
    summary = "Write TensorBoard events, log files and saved images from the main process only."

    def plan(self, context, plan):
        analysis = context.analysis
        guards: list[tuple[cst.SimpleStatementLine, str]] = []
        for site in analysis.facts.calls:
            qualified = analysis.qualify(site.node.func)
            if qualified == _CONFIGURE:
                self._configure(context, plan, site, guards)
            elif qualified in _FILE_SAVES:
                self._file_save(context, plan, site, guards)
            elif qualified in _WRITERS:
                self._writer(context, plan, site, guards)
        _guard(plan, guards)

    def _configure(self, context, plan, site, guards):
        accelerator = context.access.reachable(site.scope, site.location)
        if accelerator is None or not _guardable(site.statement, site.node):
            plan.diagnostics.append(
                context.diagnostic(self.code, site.node, "`logging.basicConfig(...)` runs on every process; configure logging under `if accelerator.is_main_process:`")
            )
            return
        guards.append((site.statement, accelerator))
        context.use(site.scope, site.location)
        plan.changes.append(context.change(self.code, site.node, "`logging.basicConfig` on the main process only"))

    def _file_save(self, context, plan, site, guards):
        label = context.code(site.node.func)
        accelerator = context.access.reachable(site.scope, site.location)
        statement = site.statement
        if accelerator is None or not (_guardable(statement, site.node) and isinstance(statement.body[0], cst.Expr)):
            plan.diagnostics.append(
                context.diagnostic(
                    self.code, site.node,
                    f"`{label}(...)` writes its file on every process (the same path, N times at once); call it under "
                    "`if accelerator.is_main_process:`",
                )
            )
            return
        guards.append((statement, accelerator))
        context.use(site.scope, site.location)
        plan.changes.append(context.change(self.code, site.node, f"`{label}` on the main process only"))

    def _writer(self, context, plan, site, guards):
        facts = context.analysis.facts
        label = context.code(site.node.func)
        if any(statement is site.statement for statement, _ in guards):
            return  # created inside a statement already moved to the main process (`logging.basicConfig(handlers=[...])`)
        accelerator = context.access.reachable(site.scope, site.location)
        statements = _uses(context, site) if accelerator is not None else None
        if statements is None:
            plan.diagnostics.append(
                context.diagnostic(
                    self.code,
                    site.node,
                    f"`{label}(...)` is created on every process and could not be moved to the main process; "
                    "create and use it under `if accelerator.is_main_process:`",
                )
            )
            return
        for statement in statements:
            guards.append((statement, accelerator))
            context.use(site.scope, facts.statement_locations[id(statement)])
        plan.changes.append(context.change(self.code, site.node, f"`{label}` created and used on the main process only"))


def _uses(context, site) -> list[cst.CSTNode] | None:
    """The creating statement and each statement using the created name, when all can be guarded; else None."""
    facts = context.analysis.facts
    statement = site.statement
    if not (isinstance(statement, cst.SimpleStatementLine) and len(statement.body) == 1):
        return None
    attaching = _single_call(statement)
    if attaching is not None and _attaches(attaching, lambda value: value is site.node):
        return [statement] if _guardable(statement, attaching) else None
    assign = statement.body[0]
    if not (isinstance(assign, cst.Assign) and assign.value is site.node and len(assign.targets) == 1):
        return None
    target = assign.targets[0].target
    if not isinstance(target, cst.Name) or not _guardable(statement, site.node):
        return None
    name = target.value
    own = facts.statement_locations[id(statement)]
    bindings = [a for a in facts.assignments if a.scope is site.scope and any(isinstance(t, cst.Name) and t.value == name for t in a.targets)]
    if len(bindings) != 1:
        return None
    result = [statement]
    for load in facts.loads:
        if load.name != name or load.location == own:
            continue
        if load.scope is not site.scope:
            return None
        used = facts.statement_at(*load.location[-1])
        call = _single_call(used)
        if call is None or not (_method_call_on(call, name) or _attaches(call, lambda value: _is_name(value, name))):
            return None
        if not _guardable(used, call):
            return None
        if used not in result:
            result.append(used)
    return result


def _is_name(node: cst.CSTNode, name: str) -> bool:
    return isinstance(node, cst.Name) and node.value == name


def _method_call_on(call: cst.Call, name: str) -> bool:
    """``name.method(...)`` with ``name`` nowhere in the arguments."""
    func = call.func
    if not (isinstance(func, cst.Attribute) and _is_name(func.value, name)):
        return False
    return not any(n.value == name for n in _argument_names(call))


def _attaches(call: cst.Call, is_handler) -> bool:
    """``<logger>.addHandler(h)`` / ``.removeHandler(h)`` whose one argument passes ``is_handler``."""
    func = call.func
    if not (isinstance(func, cst.Attribute) and func.attr.value in _HANDLER_METHODS and len(call.args) == 1):
        return False
    argument = call.args[0]
    return argument.keyword is None and not argument.star and is_handler(argument.value)


def _argument_names(call: cst.Call) -> list[cst.Name]:
    names: list[cst.Name] = []

    class _Collect(Walker):
        def visit_Name(self, node: cst.Name) -> None:
            names.append(node)

    for arg in call.args:
        _Collect().walk(arg)
    return names


def _single_call(statement: cst.CSTNode) -> cst.Call | None:
    if isinstance(statement, cst.SimpleStatementLine) and len(statement.body) == 1:
        expr = statement.body[0]
        if isinstance(expr, cst.Expr) and isinstance(expr.value, cst.Call):
            return expr.value
    return None


def _guardable(statement: cst.CSTNode, call: cst.Call) -> bool:
    """A line holding one statement, the call itself when it is an expression statement."""
    if not (isinstance(statement, cst.SimpleStatementLine) and len(statement.body) == 1):
        return False
    return not (isinstance(statement.body[0], cst.Expr) and statement.body[0].value is not call)


def _guard(plan, guards: list[tuple[cst.SimpleStatementLine, str]]) -> None:
    """Put each statement under ``if <accelerator>.is_main_process:`` (adjacent ones share one ``if``)."""
    for statement, accelerator in guards:
        plan.statement(statement).guard = f"{accelerator}.is_main_process"
