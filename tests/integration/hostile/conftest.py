"""Fixtures for the hostile-input suite (issue 6).

The parent directory's conftest.py provides workdir, procs, start_backend,
start_daemon and connect; this one only puts this directory and its parent
on sys.path, so that the test modules import harness.py and the helpers
here by names no other directory's conftest.py shares.  The database case
imports dblib.py from ../db (its `pg` cluster starts only when asked for).
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
PARENT = os.path.dirname(HERE)
for path in (os.path.join(PARENT, "tiers"), os.path.join(PARENT, "db"), PARENT, HERE):
    if path not in sys.path:
        sys.path.insert(0, path)
