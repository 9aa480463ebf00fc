"""The imports a conversion adds (``from accel import Accelerator``) go where the joined source puts them: among the
entry's imports. Split back, each file that reads an added name gets it imported itself, and the entry keeps only
what it reads."""

from __future__ import annotations

import ast


def added_imports(original: str, converted: str) -> list[ast.ImportFrom]:
    """The module-level ``from M import ...`` statements of ``converted`` that ``original`` does not have."""
    before = {ast.unparse(node) for node in ast.parse(original).body if isinstance(node, (ast.Import, ast.ImportFrom))}
    return [
        node
        for node in ast.parse(converted).body
        if isinstance(node, ast.ImportFrom) and node.level == 0 and ast.unparse(node) not in before
    ]


def import_needed(text: str, names: set[str], added: list[ast.ImportFrom]) -> tuple[str, int] | None:
    """``text`` with an import of ``names`` (from the modules ``added`` imports them from) after its last leading
    import, and the line (of ``text``) it follows; None when ``added`` does not bind them all."""
    lines, statements = [], []
    for node in added:
        wanted = [alias.name for alias in node.names if (alias.asname or alias.name) in names and alias.asname is None]
        if wanted:
            statements.append(f"from {node.module} import {', '.join(wanted)}")
            names = names - set(wanted)
    if names or not statements:
        return None
    tree = ast.parse(text)
    anchor = 0
    for index, node in enumerate(tree.body):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            anchor = node.end_lineno
        elif index == 0 and isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            anchor = node.end_lineno
        else:
            break
    lines = text.splitlines(keepends=True)
    newline = "\r\n" if lines and lines[0].endswith("\r\n") else "\n"
    if anchor and not lines[anchor - 1].endswith(("\n", "\r")):
        lines[anchor - 1] += newline
    inserted = "".join(statement + newline for statement in statements)
    return "".join(lines[:anchor]) + inserted + "".join(lines[anchor:]), max(anchor, 1)


def without_names(text: str, names: set[str], added: list[ast.ImportFrom]) -> str:
    """``text`` (the entry) without the aliases of ``added`` imports that bind ``names`` (a statement left with none
    goes)."""
    import libcst as cst

    from accel_convert.edits.unused_imports import drop_imports

    if not names:
        return text
    return drop_imports(cst.parse_module(text), names, keep_blank_lines=True).code
