"""Where values come from, on one ``Program``: through assignments, unpacking, parameters (every call of a function of
the file), return values and ``self`` attributes.

``origins(scope, expr)`` answers with a set of tuples, the first item naming the kind:

- ``("prepared", call, index)``: element ``index`` of an ``accelerator.prepare(...)`` result;
- ``("call", qualified_name, call, scope)``: what a call to something outside the file returns (``DataLoader(...)``);
- ``("batch", iterable, scope)``: a target of a loop over ``iterable``;
- ``("unwrapped", argument, scope)``: an ``accelerator.unwrap_model(argument)`` result;
- ``("instance", ClassDef)``, ``("function", FunctionDef)``, ``("class", ClassDef)``, ``("module", name)``,
  ``("const", value)``, ``("param", scope, name)`` (a parameter no call of the file passes), ``("unknown",)``.

Every answer is memoised; a cycle answers with what is known so far.
"""

from __future__ import annotations

import ast

from accel_convert.check.scopes import STAR, Program, Scope, dotted, key_of

UNKNOWN = ("unknown",)
MAX_DEPTH = 120
_UNKNOWN_SET = frozenset([UNKNOWN])
UNWRAP = ("unwrap_model", "extract_model_from_parallel")
# reading these gives facts about a tensor, not its data: `nn.Linear(sample.shape[1], 2)` is no batch
METADATA = frozenset(("shape", "dtype", "device", "ndim", "size", "dim", "numel", "is_cuda", "requires_grad"))
RETURNED = "<return>"  # trail key: the value a function returns
PREPARES = ("prepare", "prepare_model", "prepare_data_loader", "prepare_optimizer", "prepare_scheduler")
LOADER_BASES = ("DataLoader",)


def is_loader_name(name: str | None) -> bool:
    return bool(name) and name.rsplit(".", 1)[-1].endswith(LOADER_BASES)


def is_distributed_sampler_name(name: str | None) -> bool:
    return bool(name) and name.rsplit(".", 1)[-1].endswith("DistributedSampler")


class Flow:
    def __init__(self, program: Program):
        self.p = program
        self._origins: dict = {}
        self._sites: dict = {}
        self._batches: dict = {}
        self._def_batches: dict = {}
        self._loader: dict = {}
        self._callees: dict = {}
        self._class_base: dict = {}
        self._depth = 0

    # names ------------------------------------------------------------------------------------------------------------
    def lookup(self, scope: Scope, key: str, node=None) -> frozenset:
        """The definitions a read of ``key`` in ``scope`` may see (``node``: the read, for flow-sensitive answers)."""
        if node is not None:
            defs = self.p.reach.get(id(node))
            if defs is not None:
                return defs
        if key.startswith("self."):
            return self.attribute(scope.cls, key) if scope.cls is not None else frozenset()
        current = scope
        while current is not None:
            if current.class_body and current is not scope:
                current = current.parent
                continue
            defs = current.defs.get(key)
            if defs and key not in current.declared:
                if current is scope:
                    return frozenset(defs)  # read before any definition reached it (loop-carried): all of them
                end = current.end.get(key)
                return end if end is not None else frozenset(defs)
            current = current.parent
        return frozenset()

    def attribute(self, info, key: str) -> frozenset:
        """``self.x`` read in a method that does not set it first: what the methods setting it leave at their end."""
        found = frozenset()
        for method in info.methods.values():
            if key in method.defs:
                found |= method.end.get(key) or frozenset(method.defs[key])
        return found

    def is_accelerator(self, scope: Scope, node) -> bool:
        name = dotted(node)
        if name is not None and "accel" in name.lower():
            return True
        return any(o[0] == "call" and (o[1] or "").endswith("Accelerator") for o in self.origins(scope, node))

    # origins ----------------------------------------------------------------------------------------------------------
    def origins(self, scope: Scope, expr, path=()) -> frozenset:
        memo = (id(expr), path)
        found = self._origins.get(memo)
        if found is not None:
            return found
        if self._depth > MAX_DEPTH:  # a chain of hundreds of definitions: not worth following
            return _UNKNOWN_SET
        self._origins[memo] = frozenset()
        self._depth += 1
        try:
            found = frozenset(self._compute(scope, expr, path))
        finally:
            self._depth -= 1
        self._origins[memo] = found
        return found

    def conditionally_prepared(self, scope: Scope, expr, depth=0) -> bool:
        """Every unprepared loader ``expr`` may hold is also what a prepare it may hold at the same point was given
        (``if use_accelerator: loader = accelerator.prepare(loader)``): prepared together with the model or not.
        A parameter is asked at each call: one call with the loader before its prepare is not conditional."""
        origins = self.origins(scope, expr)
        raw = {o[2] for o in origins if o[0] == "call" and is_loader_name(o[1])}
        if not raw:
            return False
        key = key_of(expr, scope)
        if key is not None and depth < 8:
            defs = self.lookup(scope, key, expr)
            if defs and all(d.kind == "param" for d in defs):
                sites = [
                    (site, caller)
                    for d in defs
                    for site, caller in self.param_sites(d.scope, d.key)
                    if site is not None and caller is not None and not isinstance(site, ast.ClassDef)
                ]
                relevant = [
                    (site, caller)
                    for site, caller in sites
                    if any(o[0] == "call" and is_loader_name(o[1]) for o in self.origins(caller, site))
                ]
                return bool(relevant) and all(self.conditionally_prepared(c, e, depth + 1) for e, c in relevant)
        given = set()
        for origin in origins:
            if origin[0] == "prepared" and origin[2] is not None and origin[2] < len(origin[1].args):
                caller = self._prepare_scope(origin[1])
                if caller is not None:
                    given |= {o[2] for o in self.origins(caller, origin[1].args[origin[2]]) if o[0] == "call"}
        return bool(raw) and raw <= given

    def _prepare_scope(self, call):
        for site in self.p.calls_by_name.get(call.func.attr, ()):
            if site.node is call:
                return site.scope
        return None

    def _compute(self, scope, expr, path):  # noqa: C901
        key = key_of(expr, scope)
        if key is not None:
            defs = self.lookup(scope, key, expr)
            if not defs:
                if isinstance(expr, ast.Name) and expr.id in self.p.imports:
                    return {("module", self.p.imports[expr.id])}
                return {("builtin", expr.id)} if isinstance(expr, ast.Name) else {UNKNOWN}
            found = set()
            for definition in defs:
                found |= self.def_origins(definition, path)
            if key.startswith("self.") and id(expr) not in self.p.reach:
                prepared = {o for o in found if o[0] == "prepared"}
                if prepared:  # set up in one method, prepared in another: the methods that use it run after
                    return prepared
            return found
        if isinstance(expr, ast.Call):
            return self._call_origins(scope, expr, path)
        if isinstance(expr, ast.IfExp):
            return self.origins(scope, expr.body, path) | self.origins(scope, expr.orelse, path)
        if isinstance(expr, ast.BoolOp):
            found = set()
            for value in expr.values:
                found |= self.origins(scope, value, path)
            return found
        if isinstance(expr, (ast.Tuple, ast.List)):
            if path and path[0] != STAR and not any(isinstance(e, ast.Starred) for e in expr.elts):
                if path[0] < len(expr.elts):
                    return self.origins(scope, expr.elts[path[0]], path[1:])
                return {UNKNOWN}
            return {("tuple", expr)}
        if isinstance(expr, ast.Constant):
            return {("const", expr.value)}
        if isinstance(expr, (ast.NamedExpr, ast.Await)):
            return self.origins(scope, expr.value, path)
        if isinstance(expr, ast.Attribute):
            name = self.p.qualify(expr)
            root = dotted(expr)
            if name is not None and root is not None and root.split(".")[0] in self.p.imports:
                return {("module", name)}
        return {UNKNOWN}

    def def_origins(self, definition, path=()) -> frozenset:
        kind = definition.kind
        if kind == "assign":
            if STAR in definition.path:
                return _UNKNOWN_SET
            return self.origins(definition.scope, definition.value, (*definition.path, *path))
        if kind == "for":
            return frozenset([("batch", definition.value, definition.scope)])
        if kind == "param":
            found = set()
            for expr, scope in self.param_sites(definition.scope, definition.key):
                if expr is None:
                    found.add(("param", definition.scope, definition.key) if scope is None else UNKNOWN)
                elif isinstance(expr, ast.ClassDef):
                    found.add(("instance", expr))
                else:
                    found |= self.origins(scope, expr, path)
            return frozenset(found)
        if kind == "import":
            return frozenset([("module", definition.value)])
        if kind == "def":
            node = definition.node
            return frozenset([("class" if isinstance(node, ast.ClassDef) else "function", node)])
        return _UNKNOWN_SET

    def _call_origins(self, scope, call, path):
        func = call.func
        if isinstance(func, ast.Attribute):
            if func.attr in PREPARES and self.is_accelerator(scope, func.value):
                return {("prepared", call, path[0] if path else None)}
            if func.attr in UNWRAP:
                return {("unwrapped", call.args[0] if call.args else None, scope)}
            if func.attr == "skip_first_batches" and call.args:
                return self.origins(scope, call.args[0], path)
        elif isinstance(func, ast.Name) and func.id in UNWRAP:
            return {("unwrapped", call.args[0] if call.args else None, scope)}
        callees = self.callees(scope, call)
        if not callees:
            return {("call", self.p.qualify(func), call, scope)}
        found = set()
        for callee in callees:
            if isinstance(callee, ast.ClassDef):
                base = self.class_base(callee)
                found.add(("call", base, call, scope) if base else ("instance", callee))
            elif callee.generator:
                found.add(("generator", callee))
            elif not callee.returns:
                found.add(("const", None))
            else:
                for value in callee.returns:
                    found |= self.origins(callee, value, path)
        return found

    def class_base(self, node: ast.ClassDef) -> str | None:
        """The loader or sampler class an in-file class derives from (its qualified name), else None."""
        if id(node) in self._class_base:
            return self._class_base[id(node)]
        self._class_base[id(node)] = None
        found = None
        for base in node.bases:
            name = self.p.qualify(base)
            if is_loader_name(name) or (name or "").endswith("Sampler"):
                found = name
            elif isinstance(base, ast.Name) and base.id in self.p.classes:
                found = self.class_base(self.p.classes[base.id].node)
            if found:
                break
        self._class_base[id(node)] = found
        return found

    # calls ------------------------------------------------------------------------------------------------------------
    def callees(self, scope: Scope, call: ast.Call) -> list:
        """The functions (their Scopes) or classes (ClassDef) of this file that ``call`` may call."""
        found = self._callees.get(id(call))
        if found is not None:
            return found
        self._callees[id(call)] = []
        found = []
        func = call.func
        if isinstance(func, ast.Name):
            for origin in self.origins(scope, func):
                if origin[0] == "function":
                    callee = self.p.scope_of_node.get(id(origin[1]))
                    if callee is not None:
                        found.append(callee)
                elif origin[0] == "class":
                    found.append(origin[1])
        elif isinstance(func, ast.Attribute):
            receiver = func.value
            classes = []
            if isinstance(receiver, ast.Name) and receiver.id == scope.self_name and scope.cls is not None:
                classes.append(scope.cls.node)
            elif isinstance(receiver, (ast.Name, ast.Attribute)) and key_of(receiver, scope) is not None:
                classes = [o[1] for o in self.origins(scope, receiver) if o[0] == "instance"]
            for node in classes:
                method = self.method(node, func.attr)
                if method is not None:
                    found.append(method)
        self._callees[id(call)] = found
        return found

    def method(self, node: ast.ClassDef, name: str, depth=0):
        info = self.p.classes.get(node.name)
        if info is None or depth > 5:
            return None
        if name in info.methods:
            return info.methods[name]
        for base in node.bases:
            if isinstance(base, ast.Name) and base.id in self.p.classes:
                found = self.method(self.p.classes[base.id].node, name, depth + 1)
                if found is not None:
                    return found
        return None

    def param_sites(self, fscope: Scope, name: str) -> list:
        """(argument expression, caller scope) for each call of the file that passes parameter ``name``: (None,
        scope) where it cannot be told, (ClassDef, None) for ``self``; [(None, None)] when no call is found."""
        memo = (id(fscope), name)
        if memo in self._sites:
            return self._sites[memo]
        self._sites[memo] = []
        node = fscope.node
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            return []
        args = node.args
        positional = [a.arg for a in (*args.posonlyargs, *args.args)]
        bound = fscope.self_name is not None
        if bound and positional and name == positional[0]:
            self._sites[memo] = [(fscope.cls.node, None)]
            return self._sites[memo]
        index = positional.index(name) if name in positional else None
        defaults = dict(zip(positional[len(positional) - len(args.defaults):], args.defaults))
        defaults.update({a.arg: d for a, d in zip(args.kwonlyargs, args.kw_defaults) if d is not None})
        is_init = bound and node.name == "__init__"
        candidates = self.p.calls_by_name.get(fscope.cls.node.name if is_init else node.name, [])
        sites = []
        for site in candidates:
            callees = self.callees(site.scope, site.node)
            if not (fscope in callees or (is_init and fscope.cls.node in callees)):
                continue
            call = site.node
            position = None if index is None else index - (1 if bound else 0)
            expr = None
            starred = any(isinstance(a, ast.Starred) for a in call.args)
            if position is not None and position < len(call.args) and not starred:
                expr = call.args[position]
            else:
                expr = next((k.value for k in call.keywords if k.arg == name), None)
                if expr is None and not starred and not any(k.arg is None for k in call.keywords):
                    if name in defaults:
                        sites.append((defaults[name], fscope.parent))
                        continue
            sites.append((expr, site.scope))
        if not sites:
            sites = [(None, None)]
        self._sites[memo] = sites
        return sites

    # batches and loaders ----------------------------------------------------------------------------------------------
    def batch_sources(self, scope: Scope, expr) -> frozenset:
        """(iterable, scope) of every loop whose batches ``expr`` is computed from."""
        found = self._batches.get(id(expr))
        if found is not None:
            return found
        self._batches[id(expr)] = frozenset()
        out = set()
        stack = [expr]
        while stack:
            node = stack.pop()
            if isinstance(node, (ast.Name, ast.Attribute)):
                key = key_of(node, scope) if isinstance(node.ctx, ast.Load) else None
                if key is not None:
                    if key != scope.self_name:
                        for definition in self.lookup(scope, key, node):
                            out |= self._def_sources(definition)
                elif isinstance(node, ast.Attribute) and node.attr not in METADATA:
                    stack.append(node.value)
                continue
            if isinstance(node, ast.Call):
                func = node.func
                if isinstance(func, ast.Name):
                    if func.id == "next" and node.args:
                        out |= self._peeked(scope, node.args[0])
                        continue
                    if func.id == "len":
                        continue
                elif isinstance(func, ast.Attribute):
                    if func.attr in METADATA:
                        continue
                    if key_of(func, scope) is None:  # x.float(): x is data; model(x), self.model(x): the model is not
                        stack.append(func.value)
                else:
                    stack.append(func)
                stack.extend(node.args)
                stack.extend(keyword.value for keyword in node.keywords)
                continue
            if isinstance(node, ast.Lambda):
                continue
            stack.extend(child for child in ast.iter_child_nodes(node) if isinstance(child, ast.AST))
        found = frozenset(out)
        self._batches[id(expr)] = found
        return found

    def _peeked(self, scope, arg):
        """``next(iter(loader))`` / ``next(it)`` with ``it = iter(loader)``: a batch of ``loader``."""
        if isinstance(arg, ast.Call) and isinstance(arg.func, ast.Name) and arg.func.id == "iter" and arg.args:
            return {(arg.args[0], scope)}
        key = key_of(arg, scope)
        out = set()
        if key is not None:
            for definition in self.lookup(scope, key, arg):
                value = definition.value
                if definition.kind == "assign" and isinstance(value, ast.Call) and dotted(value.func) == "iter":
                    if value.args:
                        out.add((value.args[0], definition.scope))
        return out or {(arg, scope)}

    def _def_sources(self, definition):
        found = self._def_batches.get(id(definition))
        if found is not None:
            return found
        self._def_batches[id(definition)] = frozenset()
        kind = definition.kind
        out = set()
        if kind == "for":  # and what the iterable is computed from: `for v in batch.items()` inside a batch loop
            out.add((definition.value, definition.scope))
            out |= self.batch_sources(definition.scope, definition.value)
        elif kind == "assign":
            value = definition.value
            for index in definition.path:
                if isinstance(value, (ast.Tuple, ast.List)) and index != STAR and index < len(value.elts):
                    value = value.elts[index]
                else:
                    break
            func = value.func if isinstance(value, ast.Call) else None
            if not (isinstance(func, ast.Attribute) and func.attr in PREPARES):  # a prepared object is no batch
                out |= self.batch_sources(definition.scope, value)
        elif kind == "aug":
            out |= self.batch_sources(definition.scope, definition.value)
            for previous in definition.prev:
                out |= self._def_sources(previous)
        elif kind == "param" and definition.key != definition.scope.self_name:
            for expr, scope in self.param_sites(definition.scope, definition.key):
                if expr is not None and scope is not None and not isinstance(expr, ast.ClassDef):
                    out |= self.batch_sources(scope, expr)
        found = frozenset(out)
        self._def_batches[id(definition)] = found
        return found

    def loader_status(self, scope: Scope, expr) -> tuple | None:
        """("unprepared", the DataLoader(...) origin, the loader expression), ("prepared", origin, expression) or
        None (not known to be a loader) for what a loop over ``expr`` iterates; wrappers (``enumerate``, ``tqdm``,
        ``zip``'s first) are looked through."""
        memo = id(expr)
        if memo in self._loader:
            return self._loader[memo]
        self._loader[memo] = None
        found = None
        origins = self.origins(scope, expr)
        raw = [o for o in origins if o[0] == "call" and is_loader_name(o[1])]
        prepared = [o for o in origins if o[0] == "prepared"]
        if raw:
            found = ("unprepared", raw[0], expr)
        elif prepared:
            found = ("prepared", prepared[0], expr)
        elif isinstance(expr, ast.Call) and expr.args and not isinstance(expr.args[0], ast.Starred):
            callees = self.callees(scope, expr)
            if not callees or all(_relays(callee) for callee in callees):
                found = self.loader_status(scope, expr.args[0])
        self._loader[memo] = found
        return found

    def loader_name(self, scope: Scope, expr, origin, depth=0) -> tuple[str | None, str]:
        """(name, scope qualname) for the unprepared loader ``origin`` that ``expr`` holds: where its DataLoader(...)
        is bound, else the nearest name for it that is not a parameter (the caller's argument), else ``expr``."""
        named = self.p.assigned_value.get(id(origin[2]))
        if named is not None:
            return named[1], named[0].qualname
        key = key_of(expr, scope)
        if key is not None and depth < 8:
            defs = self.lookup(scope, key, expr)
            if defs and all(d.kind == "param" for d in defs):
                for d in defs:
                    for site, caller in self.param_sites(d.scope, d.key):
                        if site is None or caller is None or isinstance(site, ast.ClassDef):
                            continue
                        if origin in self.origins(caller, site):
                            return self.loader_name(caller, site, origin, depth + 1)
            return key, scope.qualname
        return dotted(expr), scope.qualname

    def binding_of(self, origin, fallback: str | None = None) -> str | None:
        """The name a ``("call", ...)`` origin is assigned to where it is made (``loader = DataLoader(...)``)."""
        if origin[0] == "call":
            named = self.p.assigned_value.get(id(origin[2]))
            if named is not None:
                return named[1]
        return fallback

    # the objects passed to prepare ------------------------------------------------------------------------------------
    def trail(self, scope: Scope, expr, path=(), out=None, seen=None) -> set:
        """(scope qualname, key) of every name ``expr``'s value passed through to get where it is (``RETURNED`` as
        the key of a function whose return value it is)."""
        out = set() if out is None else out
        seen = set() if seen is None else seen
        memo = (id(expr), path)
        if memo in seen:
            return out
        seen.add(memo)
        key = key_of(expr, scope)
        if key is not None:
            out.add((scope.qualname, key))
            for definition in self.lookup(scope, key, expr):
                out.add((definition.scope.qualname, key))
                if definition.kind == "assign" and STAR not in definition.path:
                    self.trail(definition.scope, definition.value, (*definition.path, *path), out, seen)
                elif definition.kind == "param":
                    for site, caller in self.param_sites(definition.scope, key):
                        if site is not None and caller is not None and not isinstance(site, ast.ClassDef):
                            self.trail(caller, site, path, out, seen)
        elif isinstance(expr, ast.Call):
            for callee in self.callees(scope, expr):
                if isinstance(callee, Scope):
                    out.add((callee.qualname, RETURNED))
                    for value in callee.returns:
                        self.trail(callee, value, path, out, seen)
        elif isinstance(expr, ast.IfExp):
            self.trail(scope, expr.body, path, out, seen)
            self.trail(scope, expr.orelse, path, out, seen)
        elif isinstance(expr, (ast.Tuple, ast.List)) and path and path[0] != STAR and path[0] < len(expr.elts):
            self.trail(scope, expr.elts[path[0]], path[1:], out, seen)
        return out

    def prepare_calls(self):
        """The ``accelerator.prepare(...)`` calls, as CallSites."""
        return [
            site
            for name in PREPARES
            for site in self.p.calls_by_name.get(name, ())
            if isinstance(site.node.func, ast.Attribute) and self.is_accelerator(site.scope, site.node.func.value)
        ]


def _relays(callee) -> bool:
    """A generator of the file that yields what it iterates (``def log_every(iterable): for i, obj in
    enumerate(iterable): yield obj``): a loop over its result is a loop over its first argument."""
    node = getattr(callee, "node", None)
    if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        return False
    for loop in ast.walk(node):
        if isinstance(loop, ast.For):
            names = {target.id for target in ast.walk(loop.target) if isinstance(target, ast.Name)}
            if any(isinstance(y, ast.Yield) and isinstance(y.value, ast.Name) and y.value.id in names for y in ast.walk(loop)):
                return True
    return False
