"""The Plan: plain data saying what the rewrite pass does to which original node.

Rules fill a Plan from the analysis; ``rewrite.Rewriter`` applies it in one pass over the tree. Nodes are keyed by
the identity of the *original* node, which stays valid however many rules touch the same statement.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import libcst as cst

from accel_convert.model import WORK, Change, Diagnostic


def expression(code: str) -> cst.BaseExpression:
    """Parse an expression; dotted names (the common case here) are built directly, without the parser."""
    parts = code.split(".")
    if all(part.isidentifier() for part in parts):
        node: cst.BaseExpression = cst.Name(parts[0])
        for part in parts[1:]:
            node = cst.Attribute(node, cst.Name(part))
        return node
    return cst.parse_expression(code)


@dataclass
class StatementEdit:
    """Statements to put before / after an original statement, whether it is removed or replaced, and the condition
    it runs under (``guard``: it goes inside ``if <guard>:``, after every other edit to it; neighbours under the
    same guard share one ``if``)."""

    before: list[cst.BaseStatement] = field(default_factory=list)
    after: list[cst.BaseStatement] = field(default_factory=list)
    replacement: cst.BaseStatement | None = None
    remove: bool = False
    guard: str | None = None


@dataclass(frozen=True)
class DropMove:
    """``x.to(device, non_blocking=True)`` / ``x.cuda()`` -> ``x``; ``x.to(device, dtype)`` -> ``x.to(dtype)``."""

    def apply(self, call: cst.Call) -> cst.BaseExpression:
        kept = []
        if call.func.attr.value == "to":
            by_keyword = any(arg.keyword is not None and arg.keyword.value == "device" for arg in call.args)
            kept = [a for a in call.args if a.keyword is None or a.keyword.value not in ("device", "non_blocking", "copy")]
            positional = [a for a in kept if a.keyword is None]
            if positional and not by_keyword:
                kept.remove(positional[0])
        if not kept:
            receiver = call.func.value
            if call.lpar:
                return receiver.with_changes(lpar=[*call.lpar, *receiver.lpar], rpar=[*receiver.rpar, *call.rpar])
            return receiver
        kept[-1] = kept[-1].with_changes(comma=cst.MaybeSentinel.DEFAULT)
        return call.with_changes(args=kept)


@dataclass(frozen=True)
class Retarget:
    """``x.cuda()`` / ``x.to("cuda")`` -> ``x.to(<device>)``, keeping other arguments."""

    device: str

    def apply(self, call: cst.Call) -> cst.BaseExpression:
        device = expression(self.device)
        rest = [
            arg
            for index, arg in enumerate(call.args)
            if not (arg.keyword is None and index == 0) and not (arg.keyword and arg.keyword.value == "device")
        ]
        args = [cst.Arg(device, comma=cst.Comma(whitespace_after=cst.SimpleWhitespace(" ")) if rest else cst.MaybeSentinel.DEFAULT), *rest]
        return call.with_changes(func=call.func.with_changes(attr=cst.Name("to")), args=args)


@dataclass(frozen=True)
class ReplaceWith:
    """Replace the node by an expression given as code."""

    code: str

    def apply(self, node: cst.CSTNode) -> cst.CSTNode:
        new = expression(self.code)
        if isinstance(node, cst.BaseExpression) and (node.lpar or node.rpar):
            new = new.with_changes(lpar=node.lpar, rpar=node.rpar)
        return new


@dataclass(frozen=True)
class BackwardThrough:
    """``loss.backward(**kw)`` -> ``<accelerator>.backward(loss, **kw)``."""

    accelerator: str

    def apply(self, call: cst.Call) -> cst.Call:
        receiver = call.func.value
        if receiver.lpar:
            receiver = receiver.with_changes(lpar=[], rpar=[])
        comma = cst.Comma(whitespace_after=cst.SimpleWhitespace(" ")) if call.args else cst.MaybeSentinel.DEFAULT
        func = expression(f"{self.accelerator}.backward")
        return call.with_changes(func=func, args=[cst.Arg(receiver, comma=comma), *call.args])


@dataclass(frozen=True)
class AppendArgument:
    """Pass one more argument to a call: ``value`` (default: the name itself) positionally, or as ``name=value``."""

    name: str
    keyword: bool
    value: str | None = None

    def apply(self, call: cst.Call) -> cst.Call:
        """The new argument goes where the call's last one ends: before the line break ahead of a closing
        parenthesis on its own line, and before a trailing comma, which it then carries."""
        args = list(call.args)
        keyword = cst.Name(self.name) if self.keyword else None
        equal = cst.AssignEqual(cst.SimpleWhitespace(""), cst.SimpleWhitespace("")) if self.keyword else cst.MaybeSentinel.DEFAULT
        new = cst.Arg(expression(self.value or self.name), keyword=keyword, equal=equal)
        if args:
            last = args[-1]
            commas = [arg.comma for arg in args[:-1] if isinstance(arg.comma, cst.Comma)]
            one_per_line = commas and all(isinstance(c.whitespace_after, cst.ParenthesizedWhitespace) for c in commas)
            between = commas[-1].whitespace_after if one_per_line else cst.SimpleWhitespace(" ")
            if isinstance(last.comma, cst.Comma):  # f(a, b,\n): the trailing comma moves to the new argument
                new = new.with_changes(comma=last.comma)
                args[-1] = last.with_changes(comma=cst.Comma(whitespace_after=between))
            else:  # f(\n    a, b\n): the break before ")" moves after the new argument
                new = new.with_changes(whitespace_after_arg=last.whitespace_after_arg)
                args[-1] = last.with_changes(
                    whitespace_after_arg=cst.SimpleWhitespace(""), comma=cst.Comma(whitespace_after=between)
                )
        args.append(new)
        return call.with_changes(args=args)


@dataclass(frozen=True)
class SwapKeyword:
    """Replace the keyword argument ``old=...`` of a call by ``new=<code>`` in the same place."""

    old: str
    new: str
    code: str

    def apply(self, call: cst.Call) -> cst.Call:
        args = [
            arg.with_changes(keyword=cst.Name(self.new), value=expression(self.code))
            if arg.keyword is not None and arg.keyword.value == self.old
            else arg
            for arg in call.args
        ]
        return call.with_changes(args=args)


@dataclass(frozen=True)
class AppendParameter:
    """Add a parameter to a function: positional at the end, or keyword-only when the signature has defaults. In a
    signature written one parameter a line, the new one gets its own line."""

    name: str
    keyword_only: bool

    def apply(self, node: cst.FunctionDef) -> cst.FunctionDef:
        params = node.params
        layout = _line_layout(params)
        if layout is not None:
            return node.with_changes(params=self._on_own_line(params, *layout))
        new = cst.Param(cst.Name(self.name))
        if self.keyword_only:
            star = params.star_arg if isinstance(params.star_arg, (cst.Param, cst.ParamStar)) else cst.ParamStar()
            params = params.with_changes(star_arg=star, kwonly_params=[*params.kwonly_params, new])
        else:
            existing = list(params.params)
            if existing and existing[-1].comma is cst.MaybeSentinel.DEFAULT:
                existing[-1] = existing[-1].with_changes(comma=cst.Comma(whitespace_after=cst.SimpleWhitespace(" ")))
            params = params.with_changes(params=[*existing, new])
        return node.with_changes(params=params)

    def _on_own_line(self, params: cst.Parameters, separator: cst.Comma, closing) -> cst.Parameters:
        star_arg = params.star_arg if isinstance(params.star_arg, (cst.Param, cst.ParamStar)) else None
        if self.keyword_only and params.star_kwarg is not None:  # the new one goes before ``**kwargs``
            new = cst.Param(cst.Name(self.name), comma=separator)
            return params.with_changes(star_arg=star_arg or cst.ParamStar(comma=separator), kwonly_params=[*params.kwonly_params, new])
        fields = ("posonly_params", "params", "star_arg", "kwonly_params")
        last_field = next(name for name in reversed(fields) if _items(params, name))
        items = _items(params, last_field)
        last = items[-1]
        new = cst.Param(cst.Name(self.name), comma=closing, whitespace_after_param=last.whitespace_after_param)
        changes = {last_field: [*items[:-1], last.with_changes(comma=separator, whitespace_after_param=cst.SimpleWhitespace(""))]}
        if last_field == "star_arg":
            changes["star_arg"] = changes["star_arg"][0]
        if not self.keyword_only:
            changes["params"] = [*changes.get("params", params.params), new]
        else:
            if star_arg is None:
                changes["star_arg"] = cst.ParamStar(comma=separator)
            changes["kwonly_params"] = [*changes.get("kwonly_params", params.kwonly_params), new]
        return params.with_changes(**changes)


def _items(params: cst.Parameters, name: str) -> list:
    value = getattr(params, name)
    if name == "star_arg":
        return [value] if isinstance(value, (cst.Param, cst.ParamStar)) else []
    return list(value)


def _line_layout(params: cst.Parameters) -> tuple[cst.Comma, cst.Comma | cst.MaybeSentinel] | None:
    """(the comma between two parameters, the last parameter's own comma or none) of a signature written one
    parameter a line; None otherwise."""
    ordered = [*params.posonly_params, *params.params, *_items(params, "star_arg"), *params.kwonly_params]
    if params.star_kwarg is not None:
        ordered.append(params.star_kwarg)
    if len(ordered) < 2:
        return None
    separator = ordered[-2].comma
    if not isinstance(separator, cst.Comma) or not isinstance(separator.whitespace_after, cst.ParenthesizedWhitespace):
        return None
    return separator, ordered[-1].comma


@dataclass(frozen=True)
class Pending:
    """A change or diagnostic whose line is looked up once all of them are known (one pass for all)."""

    kind: type
    code: str
    node: cst.CSTNode
    message: str
    statement: cst.CSTNode | None  # the statement holding ``node`` (found from the facts when None)
    severity: str = WORK  # of a diagnostic: WORK leaves something to do, NOTE only explains a line kept on purpose


@dataclass
class Plan:
    statements: dict[int, StatementEdit] = field(default_factory=dict)
    expressions: dict[int, list] = field(default_factory=dict)  # id(original node) -> [(rule code, edit)]
    changes: list[Change] = field(default_factory=list)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    edited_statements: set[int] = field(default_factory=set)  # statements holding an expression edit
    hot: set[int] = field(default_factory=set)  # statements the rewriter enters (filled once planning is done)
    rule: str = ""  # the code of the rule planning now (set by the converter)

    def statement(self, node: cst.CSTNode) -> StatementEdit:
        return self.statements.setdefault(id(node), StatementEdit())

    def expression(self, node: cst.CSTNode, edit, statement: cst.CSTNode) -> None:
        """Apply ``edit`` to ``node``, which lies in ``statement``. Edits of one node apply in rule-code order (in the
        order given within one rule), whatever order the rules planned in."""
        self.expressions.setdefault(id(node), []).append((self.rule, edit))
        self.edited_statements.add(id(statement))

    def removes(self, node: cst.CSTNode) -> bool:
        edit = self.statements.get(id(node))
        return edit is not None and edit.remove

    @property
    def empty(self) -> bool:
        return not (self.statements or self.expressions)
