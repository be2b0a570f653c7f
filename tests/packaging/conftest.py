"""Fixtures for the packaging tests: the built binaries (MXTIER_BUILD), the
repository's packaging files, and the harness's PostgreSQL clusters."""
import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration", "db"))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))


@pytest.fixture(scope="session")
def build():
    path = os.environ.get("MXTIER_BUILD")
    if not path:
        pytest.fail("MXTIER_BUILD is not set (make check-packaging sets it)")
    return path


@pytest.fixture(scope="session")
def mxtierd(build):
    return os.path.join(build, "mxtierd")


@pytest.fixture(scope="session")
def mxtierctl(build):
    return os.path.join(build, "mxtierctl")


@pytest.fixture(scope="session")
def root():
    return ROOT
