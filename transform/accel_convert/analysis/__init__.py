"""Read-only facts about one module: scopes, bindings, calls, imports, and the roles of its objects."""
