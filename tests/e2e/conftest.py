"""One shared pool of subprocess runs for the end-to-end tests, started with everything the selected tests need."""

from __future__ import annotations

import pytest

from tests.e2e.runs import RunPool

POOL_WORKERS = 2


@pytest.fixture(scope="session")
def run_pool(request, tmp_path_factory):
    """A RunPool already working through the runs of every selected e2e test (see ``needed_runs`` in the tests)."""
    pool = RunPool(workers=POOL_WORKERS, cwd=tmp_path_factory.mktemp("e2e-cwd"))
    for item in request.session.items:
        needed = getattr(item.module, "needed_runs", None)
        if needed is None or not hasattr(item, "callspec"):
            continue
        for run in needed(item.originalname, item.callspec.params):
            pool.submit(run)
    yield pool
    pool.close()
