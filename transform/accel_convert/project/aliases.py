"""Module imports between the files of a group: ``import engine`` (or ``import util.misc as utils``) with calls
``engine.train_one_epoch(...)``. In the joined source the attribute and the module's definition carry one name of
their own (``__accel_convert_engine__train_one_epoch``), so the analysis sees a call of a function of the file; the
split gives each file its own spelling back."""

from __future__ import annotations

import ast
import os
import re
from dataclasses import dataclass


@dataclass(frozen=True, order=True)
class Rename:
    """Characters ``start``..``end`` of line ``line`` (1-based) of a file: ``original`` there, ``joined`` in the joined
    source."""

    line: int
    start: int
    end: int
    joined: str
    original: str


def mangled(module: str, name: str) -> str:
    """The joined source's name for ``name`` defined in the module file ``module``."""
    stem = os.path.splitext(os.path.basename(module))[0]
    if stem == "__init__":
        stem = os.path.basename(os.path.dirname(module))
    safe = re.sub(r"\W", "_", stem)
    return f"__accel_convert_{safe}__{name}"


def attribute_renames(tree: ast.Module, lines: list[str], alias: str, defined: set[str], module: str):
    """The ``alias.name`` reads of ``tree`` (``name`` among ``defined``) as renames, and whether ``alias`` is also used
    otherwise (then its import must stay)."""
    renames, other = [], False
    taken = set()
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id == alias
            and node.attr in defined
            and isinstance(node.ctx, ast.Load)
            and node.lineno == node.end_lineno
        ):
            start, end = _columns(lines, node.lineno, node.col_offset, node.end_col_offset)
            renames.append(Rename(node.lineno, start, end, mangled(module, node.attr), f"{alias}.{node.attr}"))
            taken.add(id(node.value))
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id == alias and id(node) not in taken:
            other = True
    return sorted(renames), other


def definition_renames(tree: ast.Module, lines: list[str], names: set[str], module: str) -> list[Rename] | None:
    """The module's definitions of ``names`` and every read of them, as renames; None when a name is also bound
    locally somewhere (a parameter, an assignment, a nested definition), where a rename could change its meaning."""
    defined = {node.name: node for node in tree.body if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}
    renames = []
    for name in names:
        node = defined[name]
        match = re.compile(rf"(?:def|class)\s+({re.escape(name)})\b").search(lines[node.lineno - 1])
        if match is None:
            return None
        renames.append(Rename(node.lineno, match.start(1), match.end(1), mangled(module, name), name))
    top = {id(node) for node in defined.values()}
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id in names:
            if not isinstance(node.ctx, ast.Load) or node.lineno != node.end_lineno:
                return None
            start, end = _columns(lines, node.lineno, node.col_offset, node.end_col_offset)
            renames.append(Rename(node.lineno, start, end, mangled(module, node.id), node.id))
        elif isinstance(node, ast.arg) and node.arg in names:
            return None
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.name in names and id(node) not in top:
            return None
        elif isinstance(node, (ast.Global, ast.Nonlocal)) and set(node.names) & names:
            return None
        elif isinstance(node, ast.alias) and (node.asname or node.name.split(".")[0]) in names:
            return None
    return sorted(renames)


def apply(lines: list[str], renames) -> list[str]:
    """``lines`` (with their line ends) with each rename's ``joined`` text in place of its original."""
    out = list(lines)
    for rename in sorted(renames, reverse=True):
        line = out[rename.line - 1]
        out[rename.line - 1] = line[: rename.start] + rename.joined + line[rename.end :]
    return out


def _columns(lines: list[str], line: int, start: int, end: int) -> tuple[int, int]:
    """Character columns of ``ast``'s UTF-8 byte offsets on ``line``."""
    encoded = lines[line - 1].encode("utf-8")
    return len(encoded[:start].decode("utf-8", "replace")), len(encoded[:end].decode("utf-8", "replace"))
