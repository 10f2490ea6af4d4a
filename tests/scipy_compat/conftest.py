"""Lets scipy's own `solve_ivp` tests import and run here: the markers and the fixture that scipy's
test configuration (and its pytest-run-parallel plugin) provide."""

import pytest


def pytest_configure(config):
    for marker in ("thread_unsafe: scipy's mark for tests that share LSODA's state",
                   "fail_slow: scipy's mark for a time limit (pytest-fail-slow)"):
        config.addinivalue_line("markers", marker)


@pytest.fixture
def num_parallel_threads():
    """pytest-run-parallel's fixture: we run each test in one thread."""
    return 1
