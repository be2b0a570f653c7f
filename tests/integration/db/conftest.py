"""Fixtures for the PostgreSQL tests; the code lives in dblib.py so that test
modules import it by a name no other directory's conftest.py shares."""
from dblib import *  # noqa: F401,F403 (fixtures are registered from this namespace)
