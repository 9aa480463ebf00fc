"""One read-only ``ast`` walk of a module for the output check: scopes, the definitions of every name, which of them
reach each read, every call and loop.

The check runs on both the original and the converted text, so it uses Python's ``ast`` (several times faster than a
libcst parse) and its own small model rather than the converter's analysis. Names are *keys*: ``x`` for a variable,
``self.x`` for an attribute of ``self`` in a method. A read is linked to the definitions that reach it along the
statements (flow-sensitive: ``loader`` read after ``loader = accelerator.prepare(loader)`` sees only that assignment);
a read from another scope (a global read in a function, a closure, ``self.x`` set in another method) sees what its
scope holds at its end.
"""

from __future__ import annotations

import ast

STAR = -1  # in a Def's path: a starred target, whose element cannot be told
_EXITS = ("exit", "quit", "sys.exit", "os._exit")
_SCOPE_NODES = (ast.FunctionDef, ast.AsyncFunctionDef)


class Def:
    """One definition of a key. ``kind``: "assign" (``value``; ``path``: where the key sits in an unpacked target),
    "for" (``value``: the iterable; also comprehension targets), "param", "aug" (``value``; ``prev``: the definitions
    it updates), "import" (``value``: the qualified name), "def" (``node``: a FunctionDef or ClassDef), "other"."""

    __slots__ = ("kind", "key", "value", "path", "scope", "node", "prev")

    def __init__(self, kind, key, scope, node, value=None, path=(), prev=frozenset()):
        self.kind, self.key, self.scope, self.node = kind, key, scope, node
        self.value, self.path, self.prev = value, path, prev

    def __repr__(self) -> str:  # for test failures
        return f"Def({self.kind}, {self.key}, line {getattr(self.node, 'lineno', '?')})"


class Scope:
    """A module or function. ``cls``: the class a method belongs to; ``self_name``: its first parameter."""

    def __init__(self, node, qualname, parent, cls=None):
        self.node, self.qualname, self.parent, self.cls = node, qualname, parent, cls
        self.self_name = None
        self.params: list[str] = []
        self.defs: dict[str, list[Def]] = {}  # every definition made in this scope, by key
        self.end: dict[str, frozenset] = {}  # the definitions that reach the end of the scope
        self.returns: list[ast.expr] = []
        self.generator = False
        self.declared: set[str] = set()  # global / nonlocal names
        self.loads: list[tuple[str, ast.expr]] = []  # every read of a key, in order
        self.class_body = False  # the body of a class statement (not a scope of its own for its methods)

    def __repr__(self) -> str:
        return f"Scope({self.qualname})"


class ClassInfo:
    def __init__(self, node, scope):
        self.node, self.scope = node, scope  # scope: where the class statement is
        self.methods: dict[str, Scope] = {}


class Loop:
    """A ``for`` statement or a comprehension generator; ``body``: the nodes it repeats."""

    __slots__ = ("node", "scope", "iter", "target", "body")

    def __init__(self, node, scope, iterable, target, body):
        self.node, self.scope, self.iter, self.target, self.body = node, scope, iterable, target, body


class CallSite:
    """A call, the scope it is in, the loops around it (innermost last) and the statement holding it."""

    __slots__ = ("node", "scope", "loops", "statement")

    def __init__(self, node, scope, loops, statement):
        self.node, self.scope, self.loops, self.statement = node, scope, loops, statement


class Program:
    """The walk's result for one module."""

    def __init__(self, tree: ast.Module):
        self.tree = tree
        self.scopes: list[Scope] = []
        self.by_qualname: dict[str, list[Scope]] = {}
        self.classes: dict[str, ClassInfo] = {}
        self.class_of_method: dict[int, ClassInfo] = {}  # id(FunctionDef) -> its class
        self.scope_of_node: dict[int, Scope] = {}  # id(FunctionDef) -> its scope
        self.imports: dict[str, str] = {}
        self.reach: dict[int, frozenset] = {}  # id(read node) -> the definitions that reach it
        self.calls: list[CallSite] = []
        self.calls_by_name: dict[str, list[CallSite]] = {}
        self.loops: list[Loop] = []
        self.argument_of: dict[int, tuple[ast.Call, object]] = {}  # id(argument node) -> (call, index or keyword)
        self.called: set[int] = set()  # id(node) of every call's func
        self.assigned_value: dict[int, tuple[Scope, str]] = {}  # id(value) -> (scope, key) of `key = value`
        self.module = _Builder(self).run(tree)

    def scope_named(self, qualname: str) -> list[Scope]:
        return self.by_qualname.get(qualname, [])

    def qualify(self, node: ast.expr) -> str | None:
        """``nn.Linear`` -> ``torch.nn.Linear`` through the imports; a dotted name as written otherwise."""
        name = dotted(node)
        if name is None:
            return None
        root, dot, rest = name.partition(".")
        if root in self.imports:
            return self.imports[root] + dot + rest
        return name


def dotted(node) -> str | None:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    parts.append(node.id)
    return ".".join(reversed(parts))


def key_of(node, scope: Scope) -> str | None:
    """``x`` -> "x"; ``self.x`` in a method -> "self.x"; anything else None."""
    if isinstance(node, ast.Name):
        return node.id
    if (
        isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and scope.self_name is not None
        and node.value.id == scope.self_name
    ):
        return "self." + node.attr
    return None


def target_paths(target, path=()):
    """(node, path) for each name-like node of an assignment target: ``a, (b, *c)`` -> a (0,), b (1, 0), c (1, STAR)."""
    if isinstance(target, (ast.Tuple, ast.List)):
        starred = False
        for index, element in enumerate(target.elts):
            if isinstance(element, ast.Starred):
                starred = True
                yield from target_paths(element.value, (*path, STAR))
            else:
                yield from target_paths(element, (*path, STAR if starred else index))
    elif isinstance(target, ast.Starred):
        yield from target_paths(target.value, (*path, STAR))
    else:
        yield target, path


def ends_block(statements) -> bool:
    """The block never falls through: it ends in return / raise / continue / break / sys.exit()."""
    if not statements:
        return False
    last = statements[-1]
    if isinstance(last, (ast.Return, ast.Raise, ast.Continue, ast.Break)):
        return True
    return isinstance(last, ast.Expr) and isinstance(last.value, ast.Call) and dotted(last.value.func) in _EXITS


def _merge(*envs):
    envs = [env for env in envs if env is not None]
    if not envs:
        return None
    if len(envs) == 1:
        return dict(envs[0])
    merged = dict(envs[0])
    for env in envs[1:]:
        for key, defs in env.items():
            old = merged.get(key)
            merged[key] = defs if old is None or old is defs else old | defs
    return merged


class _Builder:
    def __init__(self, program: Program):
        self.p = program
        self.loops: list[Loop] = []
        self.statement = None
        self.pending: list[tuple[Scope, list]] = []

    def run(self, tree: ast.Module) -> Scope:
        module = self._scope(tree, "", None)
        self.pending.append((module, tree.body))
        while self.pending:
            scope, body = self.pending.pop(0)
            self.scope = scope
            self.loops = []
            env = {}
            node = scope.node
            if isinstance(node, _SCOPE_NODES):
                args = node.args
                names = [a.arg for a in (*args.posonlyargs, *args.args, *args.kwonlyargs)]
                names += [a.arg for a in (args.vararg, args.kwarg) if a is not None]
                scope.params = names
                for name in names:
                    env[name] = frozenset([self._def("param", name, node)])
                if scope.cls is not None and (args.posonlyargs or args.args):
                    decorators = {dotted(d) for d in node.decorator_list}
                    if "staticmethod" not in decorators and "classmethod" not in decorators:
                        scope.self_name = (args.posonlyargs or args.args)[0].arg
            end = self._block(body, env)
            scope.end = end if end is not None else {}
        return module

    def _scope(self, node, qualname, parent, cls=None) -> Scope:
        scope = Scope(node, qualname, parent, cls)
        self.p.scopes.append(scope)
        self.p.by_qualname.setdefault(qualname, []).append(scope)
        self.p.scope_of_node[id(node)] = scope
        return scope

    # definitions ----------------------------------------------------------------------------------------------------
    def _def(self, kind, key, node, **fields) -> Def:
        definition = Def(kind, key, self.scope, node, **fields)
        self.scope.defs.setdefault(key, []).append(definition)
        return definition

    def _bind(self, target, env, kind, node, value=None, base_path=()):
        for element, path in target_paths(target):
            key = key_of(element, self.scope)
            if key is None:
                self._expr(element, env)  # d[k] = ..., a.b = ...: reads
                continue
            if key in self.scope.declared:
                continue
            definition = self._def(kind, key, node, value=value, path=(*base_path, *path))
            env[key] = frozenset([definition])
            if kind == "assign" and not base_path:
                element = value
                for index in path:  # a, b = DataLoader(...), DataLoader(...)
                    if not isinstance(element, (ast.Tuple, ast.List)) or index == STAR or index >= len(element.elts):
                        element = None
                        break
                    element = element.elts[index]
                if element is not None:
                    self.p.assigned_value[id(element)] = (self.scope, key)

    def _bind_loop(self, target, iterable, env, node):
        """Loop targets: ``for i, (x, y) in enumerate(loader)`` binds x and y as batches of ``loader``."""
        if isinstance(iterable, ast.Call) and isinstance(iterable.func, ast.Name) and isinstance(target, ast.Tuple):
            args = [a for a in iterable.args if not isinstance(a, ast.Starred)]
            if iterable.func.id == "enumerate" and len(target.elts) == 2 and args:
                self._bind(target.elts[0], env, "other", node)
                self._bind_loop(target.elts[1], args[0], env, node)
                return
            if iterable.func.id == "zip" and len(target.elts) == len(args) == len(iterable.args):
                for element, arg in zip(target.elts, args):
                    self._bind_loop(element, arg, env, node)
                return
        self._bind(target, env, "for", node, value=iterable)

    # statements -----------------------------------------------------------------------------------------------------
    def _carry(self, start, before, end):
        """Definitions a loop's body makes reach its reads on the next round: added to the reads since ``start``
        (one walk of the body instead of two, so nested loops stay linear)."""
        if end is None:
            return
        changed = {key: defs for key, defs in end.items() if defs is not before.get(key)}
        if not changed:
            return
        reach = self.p.reach
        for key, node in self.scope.loads[start:]:
            defs = changed.get(key)
            if defs is not None:
                previous = reach.get(id(node))
                reach[id(node)] = defs if previous is None else previous | defs

    def _block(self, statements, env):
        for statement in statements:
            if env is None:
                return None
            self.statement = statement
            env = self._stmt(statement, env)
        return env

    def _stmt(self, s, env):  # noqa: C901 - one branch per statement type
        if isinstance(s, ast.Assign):
            self._expr(s.value, env)
            for target in s.targets:
                self._bind(target, env, "assign", s, value=s.value)
        elif isinstance(s, ast.AnnAssign):
            if s.value is not None:
                self._expr(s.value, env)
                self._bind(s.target, env, "assign", s, value=s.value)
        elif isinstance(s, ast.AugAssign):
            self._expr(s.value, env)
            self._expr(s.target, env)
            key = key_of(s.target, self.scope)
            if key is not None and key not in self.scope.declared:
                env[key] = frozenset([self._def("aug", key, s, value=s.value, prev=env.get(key, frozenset()))])
        elif isinstance(s, (ast.For, ast.AsyncFor)):
            self._expr(s.iter, env)
            loop = Loop(s, self.scope, s.iter, s.target, s.body)
            self.p.loops.append(loop)
            self.loops.append(loop)
            entry = dict(env)
            self._bind_loop(s.target, s.iter, entry, s)
            start = len(self.scope.loads)
            end = self._block(s.body, entry)
            self._carry(start, env, end)
            self.loops.pop()
            env = self._block(s.orelse, _merge(env, end))
        elif isinstance(s, ast.While):
            self._expr(s.test, env)
            start = len(self.scope.loads)
            end = self._block(s.body, dict(env))
            self._carry(start, env, end)
            env = self._block(s.orelse, _merge(env, end))
        elif isinstance(s, ast.If):
            self._expr(s.test, env)
            body = self._block(s.body, dict(env))
            orelse = self._block(s.orelse, dict(env))
            env = _merge(body, orelse)
        elif isinstance(s, (ast.With, ast.AsyncWith)):
            for item in s.items:
                self._expr(item.context_expr, env)
                if item.optional_vars is not None:
                    self._bind(item.optional_vars, env, "other", s)
            env = self._block(s.body, env)
        elif isinstance(s, (ast.Try, getattr(ast, "TryStar", ast.Try))):
            body = self._block(s.body, dict(env))
            outs = [self._block(s.orelse, body) if body is not None else None]
            for handler in s.handlers:
                start = _merge(env, body) or dict(env)
                if handler.type is not None:
                    self._expr(handler.type, start)
                if handler.name:
                    start[handler.name] = frozenset([self._def("other", handler.name, handler)])
                outs.append(self._block(handler.body, start))
            merged = _merge(*outs)
            if s.finalbody:
                final = self._block(s.finalbody, merged if merged is not None else _merge(env, body))
                env = final if merged is not None else None
            else:
                env = merged
        elif isinstance(s, _SCOPE_NODES):
            for decorator in s.decorator_list:
                self._expr(decorator, env)
            for default in (*s.args.defaults, *[d for d in s.args.kw_defaults if d is not None]):
                self._expr(default, env)
            info = self.p.class_of_method.get(id(s))
            scope = self.scope
            qualname = (scope.qualname + "." if scope.qualname else "") + s.name
            parent = scope.parent if scope.class_body else scope  # methods do not see class-level names
            child = self._scope(s, qualname, parent, info if scope.class_body else None)
            if info is not None:
                info.methods[s.name] = child
            self.pending.append((child, s.body))
            if info is None:
                env[s.name] = frozenset([self._def("def", s.name, s)])
        elif isinstance(s, ast.ClassDef):
            for base in (*s.bases, *(k.value for k in s.keywords), *s.decorator_list):
                self._expr(base, env)
            info = ClassInfo(s, self.scope)
            self.p.classes.setdefault(s.name, info)
            for item in s.body:
                if isinstance(item, _SCOPE_NODES):
                    self.p.class_of_method[id(item)] = info
            outer = self.scope
            body = Scope(s, (outer.qualname + "." if outer.qualname else "") + s.name, outer)
            body.class_body = True
            self.scope = body
            self._block(s.body, {})  # methods become scopes; class-level names stay out of the enclosing scope
            self.scope = outer
            env[s.name] = frozenset([self._def("def", s.name, s)])
        elif isinstance(s, (ast.Import, ast.ImportFrom)):
            for alias in s.names:
                if alias.name == "*":
                    continue
                name = alias.asname or alias.name.split(".")[0]
                if isinstance(s, ast.Import):
                    qualified = alias.name if alias.asname else name
                elif s.module and not s.level:
                    qualified = f"{s.module}.{alias.name}"
                else:
                    qualified = alias.name  # a relative import: the user's own module
                self.p.imports.setdefault(alias.asname or name, qualified)
                env[name] = frozenset([self._def("import", name, s, value=qualified)])
        elif isinstance(s, ast.Return):
            if s.value is not None:
                self._expr(s.value, env)
                self.scope.returns.append(s.value)
            return None
        elif isinstance(s, (ast.Raise, ast.Continue, ast.Break)):
            for child in ast.iter_child_nodes(s):
                self._expr(child, env)
            return None
        elif isinstance(s, (ast.Global, ast.Nonlocal)):
            self.scope.declared.update(s.names)
        elif isinstance(s, ast.Delete):
            for target in s.targets:
                key = key_of(target, self.scope)
                if key is not None:
                    env.pop(key, None)
                else:
                    self._expr(target, env)
        elif isinstance(s, getattr(ast, "Match", ())):
            self._expr(s.subject, env)
            outs = [dict(env)]
            for case in s.cases:
                start = dict(env)
                for node in ast.walk(case.pattern):
                    name = getattr(node, "name", None)
                    if isinstance(name, str):
                        start[name] = frozenset([self._def("other", name, case)])
                outs.append(self._block(case.body, start))
            env = _merge(*outs)
        else:
            for child in ast.iter_child_nodes(s):
                if isinstance(child, ast.expr):
                    self._expr(child, env)
            if ends_block([s]):
                return None
        return env

    # expressions ----------------------------------------------------------------------------------------------------
    def _expr(self, node, env):  # noqa: C901
        if isinstance(node, ast.Constant):
            return
        if isinstance(node, ast.BinOp):
            self._expr(node.left, env)
            self._expr(node.right, env)
            return
        if isinstance(node, (ast.Tuple, ast.List)):
            for element in node.elts:
                self._expr(element, env)
            return
        if isinstance(node, ast.Subscript):
            self._expr(node.value, env)
            self._expr(node.slice, env)
            return
        if isinstance(node, ast.Compare):
            self._expr(node.left, env)
            for comparator in node.comparators:
                self._expr(comparator, env)
            return
        if isinstance(node, (ast.Yield, ast.YieldFrom)):
            self.scope.generator = True
        if isinstance(node, ast.Name):
            if isinstance(node.ctx, ast.Load):
                self._read(node.id, node, env)
            return
        if isinstance(node, ast.Attribute):
            key = key_of(node, self.scope)
            if key is not None and isinstance(node.ctx, ast.Load):
                self._read(key, node, env)
            self._expr(node.value, env)
            return
        if isinstance(node, ast.Call):
            site = CallSite(node, self.scope, tuple(self.loops), self.statement)
            self.p.calls.append(site)
            func = node.func
            name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None
            if name is not None:
                self.p.calls_by_name.setdefault(name, []).append(site)
            self.p.called.add(id(func))
            self._expr(func, env)
            for index, arg in enumerate(node.args):
                self.p.argument_of[id(arg)] = (node, index)
                self._expr(arg, env)
            for keyword in node.keywords:
                self.p.argument_of[id(keyword.value)] = (node, keyword.arg)
                self._expr(keyword.value, env)
            return
        if isinstance(node, ast.NamedExpr):
            self._expr(node.value, env)
            self._bind(node.target, env, "assign", node, value=node.value)
            return
        if isinstance(node, (ast.ListComp, ast.SetComp, ast.GeneratorExp, ast.DictComp)):
            inner = dict(env)
            loops = len(self.loops)
            for generator in node.generators:
                self._expr(generator.iter, inner)
                body = [*generator.ifs, *([node.key, node.value] if isinstance(node, ast.DictComp) else [node.elt])]
                loop = Loop(generator, self.scope, generator.iter, generator.target, body)
                self.p.loops.append(loop)
                self.loops.append(loop)
                self._bind_loop(generator.target, generator.iter, inner, generator)
                for condition in generator.ifs:
                    self._expr(condition, inner)
            if isinstance(node, ast.DictComp):
                self._expr(node.key, inner)
                self._expr(node.value, inner)
            else:
                self._expr(node.elt, inner)
            del self.loops[loops:]
            return
        if isinstance(node, ast.Lambda):
            inner = dict(env)
            for arg in (*node.args.posonlyargs, *node.args.args, *node.args.kwonlyargs):
                inner[arg.arg] = frozenset([self._def("other", arg.arg, node)])
            self._expr(node.body, inner)
            return
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.expr):
                self._expr(child, env)
            elif isinstance(child, ast.keyword):
                self._expr(child.value, env)
            elif isinstance(child, ast.comprehension):  # pragma: no cover - comprehensions handled above
                self._expr(child.iter, env)

    def _read(self, key, node, env):
        self.scope.loads.append((key, node))
        defs = env.get(key)
        if defs is not None:
            previous = self.p.reach.get(id(node))
            self.p.reach[id(node)] = defs if previous is None else previous | defs
