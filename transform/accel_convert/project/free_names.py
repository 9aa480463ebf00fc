"""Names a module reads but binds nowhere: a file of a project converted as one run must not come to need a name
that only another file of the run defines (the accelerator of the entry's module level, an import the converter
added there)."""

from __future__ import annotations

import ast
import builtins

_BUILTINS = frozenset(dir(builtins)) | {"__file__", "__name__", "__doc__", "__spec__", "__builtins__", "__path__"}


def unbound_names(text: str) -> set[str]:
    """The names ``text`` reads that no statement of it binds anywhere (a deliberately coarse, scope-blind count:
    a name bound in any function counts as bound)."""
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return set()
    read, bound = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            (read if isinstance(node.ctx, ast.Load) else bound).add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(node.name)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                bound.add(alias.asname or alias.name.split(".")[0])
        elif isinstance(node, ast.ExceptHandler) and node.name:
            bound.add(node.name)
        elif isinstance(node, (ast.Global, ast.Nonlocal)):
            bound.update(node.names)
        elif isinstance(node, ast.MatchAs) and node.name:
            bound.add(node.name)
    return read - bound - _BUILTINS
