"""Which files of a project are converted together: an entry script and the project modules it imports code from.

A module-level ``from M import f, g`` (absolute, resolved against the importing file's folder and the project root,
or relative) links a file to the project module M when every imported name is defined at M's top level and M may
hold training code, build data loaders (a ``get_data(args)`` that returns ``DataLoader(...)``) or evaluate without
gradients (an ``evaluate(net, loader, device)`` under ``torch.no_grad``). An entry is a file that links to such modules (it need hold no training code itself: its loop
may all be in a trainer class) and that no other linked file imports; its group is the entry and every module reached through links. No two files of a group may define the same
top-level name: a group that does is reported and its files are converted one by one. Groups may share modules (a library used by several entry scripts); ``clusters`` puts such
groups together, and a shared module must convert to the same text for each of them.

Besides those imports, each member's ``from __future__`` imports and ``if __name__ == "__main__":`` blocks are
hidden from the analysis (they would not be valid, or not be code that runs, in the middle of one joined source).
"""

from __future__ import annotations

import ast
import os
from dataclasses import dataclass, field

from accel_convert.analysis.prefilter import may_need_conversion
from accel_convert.check.scopes import dotted
from accel_convert.project.aliases import Rename, attribute_renames, definition_renames


@dataclass(frozen=True, order=True)
class Hidden:
    """Lines ``first``..``last`` (1-based) of a file: a statement the joined source replaces and the split restores."""

    first: int
    last: int


@dataclass(frozen=True)
class Group:
    """An entry script and the modules converted with it (``files[0]`` is the entry), and the lines hidden in each."""

    files: tuple[str, ...]
    hidden: dict[str, tuple[Hidden, ...]] = field(default_factory=dict, hash=False, compare=False)
    renames: dict[str, tuple[Rename, ...]] = field(default_factory=dict, hash=False, compare=False)
    # per file of the group: the files outside the group that import or read its top-level definitions, and which
    outside: dict[str, dict[str, tuple[str, ...]]] = field(default_factory=dict, hash=False, compare=False)

    @property
    def entry(self) -> str:
        return self.files[0]


@dataclass(frozen=True)
class Refusal:
    """Files that would form a group but cannot be converted together, and why (``line`` in ``path``)."""

    path: str
    line: int
    reason: str


@dataclass
class _File:
    path: str
    tree: ast.Module
    training: bool  # may hold training code, or join a run (builds loaders, evaluates)
    lines: list[str] = field(default_factory=list)
    links: dict[str, list[ast.stmt]] = field(default_factory=dict)  # target path -> imports hidden for it
    renames: list[Rename] = field(default_factory=list)  # ``engine.fit`` reads of linked modules' definitions
    used: dict[str, set[str]] = field(default_factory=dict)  # target path -> its names read through a module alias
    trains: bool = False  # may hold training code itself (the prefilter's test)


def find_groups(texts: dict[str, str], root: str) -> tuple[list[Group], list[Refusal]]:
    """The groups among ``texts`` (path -> source) of the project under ``root``, and those refused."""
    files = {}
    for path, text in texts.items():
        try:
            tree = ast.parse(text)
        except (SyntaxError, ValueError):
            continue  # converted alone, where the error is reported
        trains = may_need_conversion(text)
        files[path] = _File(path, tree, trains or may_join_a_run(text), text.splitlines(keepends=True), trains=trains)
    modules = _module_paths(files, root)
    for file in files.values():
        _link(file, files, modules, root)
    imported = {target for file in files.values() for target in file.links}
    groups, refusals = [], []
    for file in files.values():
        if not file.links or file.path in imported:
            continue
        members = _reach(file, files)
        ordered = (file.path, *members)
        if not any(files[path].trains for path in ordered):
            continue  # loaders and evaluations with no training anywhere: nothing to convert together
        renames, refusal = _renames(ordered, files)
        clash = refusal or _clash(file.path, members, files, renames)
        if clash is not None:
            if file.trains or _calls_training(file, files):
                refusals.append(clash)  # a script that trains, or calls training code of a linked module
            continue
        hidden = {path: _hidden(files[path], path != file.path) for path in ordered}
        outside = _outside_uses(ordered, files, modules, root)
        groups.append(Group(ordered, hidden, {path: tuple(sorted(renames[path])) for path in ordered}, outside))
    return groups, refusals


def may_join_a_run(text: str) -> bool:
    """Cheap text check, as the prefilter's: the module may build the run's data loaders (``def get_data(args): ... return DataLoader(...)``) or evaluate
    its model (``@torch.inference_mode() def evaluate(net, loader, device)``): joined with the run, its factories are
    followed (what they return is prepared where the run receives it) and its evaluation loops are converted."""
    uses_torch = "import torch" in text or "from torch" in text
    return uses_torch and (("DataLoader(" in text and "return" in text) or "no_grad" in text or "inference_mode" in text)


def _outside_uses(ordered: tuple[str, ...], files: dict[str, _File], modules: dict[str, str], root: str) -> dict[str, dict[str, tuple[str, ...]]]:
    """Per file of a group: each other file of the project that imports its top-level definitions (``from M import
    f``, every one for ``import *``) or reads them through a module alias (``import M as m``, then ``m.f``), and
    which."""
    members = set(ordered)
    found: dict[str, dict[str, set[str]]] = {}
    for other in files.values():
        if other.path in members:
            continue
        for node in other.tree.body:
            if isinstance(node, ast.ImportFrom) and node.module != "__future__":
                target = next((modules[stem] for stem in _candidates(other, node, root) if stem in modules), None)
                if target in members:
                    defined = _top_level_definitions(files[target].tree)
                    names = defined if any(alias.name == "*" for alias in node.names) else {alias.name for alias in node.names}
                    found.setdefault(target, {}).setdefault(other.path, set()).update(names & defined)
            elif isinstance(node, ast.Import):
                here = os.path.dirname(os.path.abspath(other.path))
                for alias in node.names:
                    parts = alias.name.split(".")
                    stems = [os.path.join(here, *parts), os.path.join(os.path.abspath(root), *parts)]
                    target = next((modules[stem] for stem in stems if stem in modules), None)
                    if target not in members:
                        continue
                    bound = alias.asname or alias.name
                    reads = {
                        read.attr
                        for read in ast.walk(other.tree)
                        if isinstance(read, ast.Attribute) and dotted(read.value) == bound
                    }
                    found.setdefault(target, {}).setdefault(other.path, set()).update(reads & _top_level_definitions(files[target].tree))
    return {
        path: {user: tuple(sorted(names)) for user, names in users.items() if names} for path, users in found.items()
    }


def _renames(ordered: tuple[str, ...], files: dict[str, _File]) -> tuple[dict[str, list[Rename]], Refusal | None]:
    """Per file of a group: its reads through module aliases, and in each module its definitions read so."""
    renames = {path: list(files[path].renames) for path in ordered}
    used: dict[str, set[str]] = {}
    for path in ordered:
        for target, names in files[path].used.items():
            if target in renames:
                used.setdefault(target, set()).update(names)
    for target, names in used.items():
        found = definition_renames(files[target].tree, files[target].lines, names, target)
        if found is None:
            name = sorted(names)[0]
            return renames, Refusal(ordered[0], 1, f"{os.path.basename(target)} also binds one of {', '.join(sorted(names))} "
                                    f"locally (read as `{os.path.splitext(os.path.basename(target))[0]}.{name}`)")
        renames[target] += found
    return renames, None


def clusters(groups: list[Group]) -> list[list[Group]]:
    """The groups that share a module, together (each module converted once must come out the same for every entry
    that uses it), in the order of their first group."""
    merged: list[list[Group]] = []
    for group in groups:
        joined = [cluster for cluster in merged if any(set(group.files) & set(other.files) for other in cluster)]
        cluster = [other for part in joined for other in part] + [group]
        merged = [part for part in merged if part not in joined]
        merged.append(cluster)
    order = {group.entry: index for index, group in enumerate(groups)}
    return sorted(merged, key=lambda cluster: min(order[group.entry] for group in cluster))


def cluster_files(cluster: list[Group]) -> tuple[str, ...]:
    """Every file of a cluster, each once: the entries first, then the modules."""
    files = [group.entry for group in cluster]
    for group in cluster:
        files += [path for path in group.files[1:] if path not in files]
    return tuple(files)


def imported_modules(path: str, text: str, root: str) -> list[str]:
    """Paths of the existing files that the module-level ``from M import ...`` statements of ``path`` may name."""
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return []
    file = _File(path, tree, True)
    found = []
    here = os.path.dirname(os.path.abspath(path))
    for node in tree.body:
        stems = []
        if isinstance(node, ast.ImportFrom) and node.module != "__future__":
            stems = _candidates(file, node, root)
        elif isinstance(node, ast.Import):
            stems = [os.path.join(base, *alias.name.split(".")) for alias in node.names for base in (here, os.path.abspath(root))]
        for stem in stems:
            for candidate in (stem + ".py", os.path.join(stem, "__init__.py")):
                if os.path.isfile(candidate) and candidate not in found:
                    found.append(candidate)
    return found


def linked_names(group: Group, texts: dict[str, str], root: str) -> tuple[int, list[str]]:
    """The first line of the entry's imports of its group's modules and the names those imports bring in."""
    entry = _File(group.entry, ast.parse(texts[group.entry]), True)
    modules = _module_paths({path: None for path in group.files}, root)
    nodes = [
        node
        for node in entry.tree.body
        if isinstance(node, ast.ImportFrom)
        and any(modules.get(stem) in group.files[1:] for stem in _candidates(entry, node, root))
    ]
    names = [alias.asname or alias.name for node in nodes for alias in node.names]
    reads = sorted({rename.original for rename in group.renames.get(group.entry, ())})
    lines = [node.lineno for node in nodes] + [rename.line for rename in group.renames.get(group.entry, ())]
    return (min(lines) if lines else 1), names + reads


def _module_paths(files: dict[str, _File], root: str) -> dict[str, str]:
    """Absolute path (no extension, package folders for ``__init__``) -> file path, for import resolution."""
    paths = {}
    for path in files:
        stem = os.path.abspath(path)[: -len(".py")] if path.endswith(".py") else os.path.abspath(path)
        if os.path.basename(stem) == "__init__":
            stem = os.path.dirname(stem)
        paths[stem] = path
    return paths


def _candidates(file: _File, node: ast.ImportFrom, root: str) -> list[str]:
    """Absolute stems the module of ``node`` may be, most likely first."""
    parts = (node.module or "").split(".") if node.module else []
    here = os.path.dirname(os.path.abspath(file.path))
    if node.level:
        base = here
        for _ in range(node.level - 1):
            base = os.path.dirname(base)
        return [os.path.join(base, *parts)] if parts else []
    if not parts:
        return []
    return [os.path.join(here, *parts), os.path.join(os.path.abspath(root), *parts)]


def _link(file: _File, files: dict[str, _File], modules: dict[str, str], root: str) -> None:
    for node in file.tree.body:
        if isinstance(node, ast.Import):
            _link_module(file, node, files, modules, root)
        if not isinstance(node, ast.ImportFrom) or node.module == "__future__":
            continue
        target = next((modules[stem] for stem in _candidates(file, node, root) if stem in modules), None)
        if target is None or target == file.path or not files[target].training:
            continue
        defined = _top_level_definitions(files[target].tree)
        if all(alias.name != "*" and alias.name in defined for alias in node.names) and _whole_lines(node, file.tree):
            file.links.setdefault(target, []).append(node)


def _link_module(file: _File, node: ast.Import, files: dict[str, _File], modules: dict[str, str], root: str) -> None:
    """``import engine`` / ``import util.misc as utils``: a link when the file reads definitions of that training
    module through the name (the import is hidden when nothing else uses the name)."""
    if len(node.names) != 1 or not _whole_lines(node, file.tree):
        return
    alias = node.names[0]
    if alias.asname is None and "." in alias.name:
        return  # ``import a.b`` binds ``a``: reads are ``a.b.f``
    here = os.path.dirname(os.path.abspath(file.path))
    parts = alias.name.split(".")
    stems = [os.path.join(here, *parts), os.path.join(os.path.abspath(root), *parts)]
    target = next((modules[stem] for stem in stems if stem in modules), None)
    if target is None or target == file.path or not files[target].training:
        return
    defined = _top_level_definitions(files[target].tree)
    renames, other = attribute_renames(file.tree, file.lines, alias.asname or alias.name, defined, target)
    if not renames:
        return
    file.renames += renames
    file.used.setdefault(target, set()).update(rename.original.split(".", 1)[1] for rename in renames)
    file.links.setdefault(target, [])
    if not other:
        file.links[target].append(node)


def _top_level_definitions(tree: ast.Module) -> set[str]:
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
    return names


def _whole_lines(node: ast.stmt, tree: ast.Module) -> bool:
    """True when no other top-level statement shares a line with ``node`` (``import a; from m import f``)."""
    return not any(
        other is not node and other.lineno <= node.end_lineno and other.end_lineno >= node.lineno for other in tree.body
    )


def _reach(entry: _File, files: dict[str, _File]) -> list[str]:
    """The modules reached from ``entry`` through links, in the order they are first met."""
    order, stack = [], list(reversed(entry.links))
    while stack:
        path = stack.pop()
        if path in order or path == entry.path:
            continue
        order.append(path)
        stack.extend(reversed(files[path].links))
    return order


def _bindings(tree: ast.Module, hidden: list[ast.stmt]) -> dict[str, tuple]:
    """Top-level names a module binds (hidden statements left out), each with what it is bound to."""
    bound: dict[str, tuple] = {}
    for node in tree.body:
        if node in hidden:
            continue
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound[node.name] = ("definition", node.lineno)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                bound[alias.asname or alias.name.split(".")[0]] = ("import", alias.name if alias.asname else alias.name.split(".")[0])
        elif isinstance(node, ast.ImportFrom):
            for alias in node.names:
                # ``from torch import nn`` binds what ``import torch.nn as nn`` binds
                what = ("import", f"{node.module}.{alias.name}") if not node.level and node.module else ("import", node.level, node.module, alias.name)
                bound[alias.asname or alias.name] = what
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                for name in ast.walk(target):
                    if isinstance(name, ast.Name):
                        bound[name.id] = ("assignment", node.lineno)
    return bound


def _calls_training(file: _File, files: dict[str, _File]) -> bool:
    """``file`` imports (or reads through a module alias) a definition of a linked module whose body trains: calls
    ``backward``, ``step`` or ``init_process_group`` (``from trainer import Trainer``; not ``select_device`` from a
    helper module that happens to hold a backward elsewhere)."""
    for target, nodes in file.links.items():
        if not files[target].trains:
            continue
        names = {alias.name for node in nodes if isinstance(node, ast.ImportFrom) for alias in node.names}
        names |= file.used.get(target, set())
        for node in files[target].tree.body:
            if getattr(node, "name", None) in names and any(
                isinstance(call, ast.Call) and _called_name(call) in ("backward", "step", "init_process_group")
                for call in ast.walk(node)
            ):
                return True
    return False


def _called_name(call: ast.Call) -> str | None:
    func = call.func
    return func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None


def _same_import(first: tuple, second: tuple) -> bool:
    """Two imports that bind one object: the same module path, or a top-level module and a project module's
    re-export of it (``import cv2`` and ``from utils.general import cv2``, bound as ``utils.general.cv2``)."""
    if first[0] != "import" or second[0] != "import":
        return False
    if first == second:
        return True
    if len(first) != 2 or len(second) != 2:
        return False
    short, long = sorted((first[1], second[1]), key=len)
    return "." not in short and long.rsplit(".", 1)[-1] == short


def _clash(entry: str, members: list[str], files: dict[str, _File], renames: dict[str, list[Rename]]) -> Refusal | None:
    """Two files of the group binding one top-level name to different things: joined, one would hide the other
    (a definition renamed for a module alias binds its own name)."""
    seen: dict[str, tuple[str, tuple]] = {}
    for path in (entry, *members):
        file = files[path]
        hidden = [node for nodes in file.links.values() for node in nodes] + _hidden_statements(file, path != entry)
        renamed = {rename.original for rename in renames.get(path, ())}
        for name, what in _bindings(file.tree, hidden).items():
            if name in renamed and what[0] == "definition":
                continue
            if name in seen and not _same_import(seen[name][1], what):
                first = seen[name][0]
                return Refusal(entry, 1, f"{os.path.basename(first)} and {os.path.basename(path)} both define `{name}` at module level")
            seen.setdefault(name, (path, what))
    return None


def _hidden_statements(file: _File, member: bool) -> list[ast.stmt]:
    if not member:
        return []
    return [node for node in file.tree.body if _is_future(node) or _is_main_guard(node)]


def _hidden(file: _File, member: bool) -> tuple[Hidden, ...]:
    nodes = [node for nodes in file.links.values() for node in nodes] + _hidden_statements(file, member)
    return tuple(sorted(Hidden(_first_line(node), _last_line(node, file.lines)) for node in nodes if _whole_lines(node, file.tree)))


def _last_line(node: ast.stmt, lines: list[str]) -> int:
    """The last line of ``node`` with the comment lines indented under it that follow (``if __name__ == ...:``
    followed by commented-out code): they belong to its block, and alone at the end of a module libcst drops them."""
    last = node.end_lineno
    if not isinstance(node, ast.If):
        return last
    probe = last
    while probe < len(lines):
        text = lines[probe]
        stripped = text.strip()
        if stripped and not (stripped.startswith("#") and text[: len(text) - len(text.lstrip())]):
            break
        probe += 1
        if stripped:
            last = probe
    return last


def _first_line(node: ast.stmt) -> int:
    decorators = getattr(node, "decorator_list", [])
    return min([node.lineno, *(decorator.lineno for decorator in decorators)])


def _is_future(node: ast.stmt) -> bool:
    return isinstance(node, ast.ImportFrom) and node.module == "__future__"


def _is_main_guard(node: ast.stmt) -> bool:
    test = node.test if isinstance(node, ast.If) else None
    return (
        isinstance(test, ast.Compare)
        and isinstance(test.left, ast.Name)
        and test.left.id == "__name__"
        and len(test.comparators) == 1
        and isinstance(test.comparators[0], ast.Constant)
        and test.comparators[0].value == "__main__"
    )
