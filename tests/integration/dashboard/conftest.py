"""Fixtures for the dashboard tests; the code lives in dashlib.py so that test
modules import it by a name no other directory's conftest.py shares."""
from dashlib import *  # noqa: F401,F403 (fixtures are registered from this namespace)
