"""Imports the conversion left unused: a name the original script read that no line of the converted script reads
any more (``import torch.distributed as dist`` once every ``dist.*`` call became an accelerator call, ``os`` once
``os.environ["LOCAL_RANK"]`` became ``accelerator.local_process_index``) is dropped from its import statement.

Only names the conversion made unused go; an import the original already left unused stays, and so does any import
inside ``try`` (optional-dependency guards), one that is the only statement of its block, and every import of a
module that lists ``__all__`` or declares names ``global``/``nonlocal``.
"""

from __future__ import annotations

import ast

import libcst as cst


def made_unused(original: str, converted: ast.Module) -> set[str]:
    """Names bound by an import of ``converted`` that the ``original`` source reads and ``converted`` no longer does."""
    imports = [node for node in ast.walk(converted) if isinstance(node, (ast.Import, ast.ImportFrom))]
    unread = {name for node in imports for name in _bound(node)} - _read_names(converted)
    if not unread or _declares_exports(converted):
        return set()
    return unread & _read_names(ast.parse(original))


def drop_imports(module: cst.Module, names: set[str], keep_blank_lines: bool = False) -> cst.Module:
    """``module`` without the import aliases that bind ``names`` (a statement left with none goes, its comment lines
    staying above the next statement; with ``keep_blank_lines`` its blank lines too: an import the converter added
    and takes back leaves the file as it was)."""
    return module.visit(_ImportDropper(names, keep_blank_lines))


def _bound(node: ast.Import | ast.ImportFrom) -> list[str]:
    return [(alias.asname or alias.name.split(".")[0]) for alias in node.names if alias.name != "*"]


def _read_names(tree: ast.Module) -> set[str]:
    return {node.id for node in ast.walk(tree) if isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Store)}


def _declares_exports(tree: ast.Module) -> bool:
    for node in ast.walk(tree):
        if isinstance(node, (ast.Global, ast.Nonlocal)):
            return True
        if isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(target, ast.Name) and target.id == "__all__" for target in targets):
                return True
    return False


def _alias_name(alias: cst.ImportAlias) -> str:
    if alias.asname is not None and isinstance(alias.asname.name, cst.Name):
        return alias.asname.name.value
    node = alias.name
    while isinstance(node, cst.Attribute):
        node = node.value
    return node.value if isinstance(node, cst.Name) else ""


class _ImportDropper(cst.CSTTransformer):
    def __init__(self, names: set[str], keep_blank_lines: bool = False) -> None:
        super().__init__()
        self.names = names
        self.keep_blank_lines = keep_blank_lines

    def visit_Try(self, node: cst.Try) -> bool:
        return False

    def visit_TryStar(self, node: cst.TryStar) -> bool:
        return False

    def leave_IndentedBlock(self, original: cst.IndentedBlock, updated: cst.IndentedBlock) -> cst.IndentedBlock:
        return updated.with_changes(body=self._filtered(updated.body))

    def leave_Module(self, original: cst.Module, updated: cst.Module) -> cst.Module:
        return updated.with_changes(body=self._filtered(updated.body))

    def _filtered(self, body):
        kept, comments = [], []
        for statement in body:
            replacement = self._without_names(statement)
            if replacement is None:  # its own comment lines stay, above the next statement
                comments += [line for line in statement.leading_lines if self.keep_blank_lines or line.comment is not None]
                continue
            if comments:
                replacement = replacement.with_changes(leading_lines=[*comments, *replacement.leading_lines])
                comments = []
            kept.append(replacement)
        return kept if kept and not comments else list(body)  # never empty a block or lose a trailing comment

    def _without_names(self, statement):
        if not isinstance(statement, cst.SimpleStatementLine) or len(statement.body) != 1:
            return statement
        small = statement.body[0]
        if not isinstance(small, (cst.Import, cst.ImportFrom)) or isinstance(small.names, cst.ImportStar):
            return statement
        aliases = [alias for alias in small.names if _alias_name(alias) not in self.names]
        if len(aliases) == len(small.names):
            return statement
        if not aliases:
            return None
        aliases[-1] = aliases[-1].with_changes(comma=cst.MaybeSentinel.DEFAULT)
        return statement.with_changes(body=[small.with_changes(names=aliases)])
