"""Where the accelerator lives and how each scope reaches it.

The training run is owned by the scope that creates the (first) optimizer. The accelerator is created there, or at
module level when the script defines its device at module level (so every function sees it), or as
``self.accelerator`` when the owner is a method. A helper function that needs it (for ``accelerator.backward``) and
cannot see it gets an ``accelerator`` parameter, passed at every call site in the file; when some caller cannot pass
it, the helper is left alone and the rules report it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import libcst as cst

from accel_convert.analysis import Analysis, _callee
from accel_convert.facts import CallSite, Scope

NAME = "accelerator"


@dataclass(eq=False)
class Access:
    home: Scope  # where ``accelerator = Accelerator(...)`` goes
    owner: Scope  # where the objects of the run are prepared
    attribute: bool  # home is a method: the accelerator is ``self.accelerator``
    passed: dict[Scope, bool] = field(default_factory=dict)  # helper -> its new parameter is keyword-only
    call_sites: list[tuple[CallSite, bool]] = field(default_factory=list)  # (call, pass by keyword)

    def _direct(self, scope: Scope) -> str | None:
        if self.home.parent is None:
            return NAME
        if self.attribute:
            if scope.class_name == self.home.class_name and scope.self_name:
                return f"{scope.self_name}.{NAME}"
            return None
        return NAME if scope.sees(self.home) else None

    def expression(self, scope: Scope) -> str | None:
        """The code that names the accelerator in ``scope``, or None when it cannot reach it."""
        direct = self._direct(scope)
        if direct is not None:
            return direct
        return NAME if any(scope.sees(helper) for helper in self.passed) else None


def _home(analysis: Analysis, owner: Scope) -> tuple[Scope, bool]:
    module = analysis.facts.module_scope
    if owner is not module:
        module_level = [d for d in analysis.device_definitions if d.scope is module]
        module_level += [f for f in analysis.flags if f.assignment.scope is module]
        if module_level:
            return module, False
    return owner, owner.class_name is not None and owner.self_name is not None


def locate(analysis: Analysis, needs) -> Access:
    """Decide where the accelerator lives and which helpers get it passed in, for the scopes in ``needs``."""
    owner = analysis.anchor.scope
    home, attribute = _home(analysis, owner)
    access = Access(home, owner, attribute)
    callers: dict[Scope, list[CallSite]] = {}
    for site in analysis.facts.calls:
        callee = _callee(analysis, site)
        if callee is not None and callee[1] == 0:
            callers.setdefault(callee[0], []).append(site)
    candidates: set[Scope] = set()
    rejected: set[Scope] = set()
    work = [scope for scope in needs if access.expression(scope) is None]
    while work:
        scope = work.pop()
        if scope in candidates or scope in rejected:
            continue
        if scope.parent is None or scope.class_name is not None or not callers.get(scope):
            rejected.add(scope)
            continue
        candidates.add(scope)
        work.extend(site.scope for site in callers[scope] if access._direct(site.scope) is None)
    changed = True
    while changed:
        changed = False
        for scope in candidates - rejected:
            for site in callers[scope]:
                if access._direct(site.scope) is None and (site.scope in rejected or site.scope not in candidates):
                    rejected.add(scope)
                    changed = True
                    break
    for scope in candidates - rejected:
        params = scope.node.params
        keyword_only = bool(
            params.kwonly_params
            or isinstance(params.star_arg, (cst.Param, cst.ParamStar))
            or params.star_kwarg is not None
            or any(param.default is not None for param in params.params)
        )
        access.passed[scope] = keyword_only
        for site in callers[scope]:
            by_keyword = keyword_only or any(arg.keyword is not None or arg.star for arg in site.node.args)
            access.call_sites.append((site, by_keyword))
    return access
