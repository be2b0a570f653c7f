"""Fixtures for the HTTP tests: the database ones (pg, dbw) come from db/dblib.py."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "db"))

from dblib import dbw, pg  # noqa: E402,F401 (fixtures are registered from this namespace)
