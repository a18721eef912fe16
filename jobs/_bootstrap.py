"""Makes a source checkout importable as ``group_appeal_spark`` when a job runs as a file.

``spark-submit jobs/run.py`` puts ``jobs/`` first on ``sys.path``; the jobs import this module
only in that case, and it adds the checkout root, whose ``group_appeal_spark/__init__.py`` maps
``lib``, ``udfs`` and ``jobs`` to the package's subpackages.
"""

import sys
from pathlib import Path

_root = str(Path(__file__).resolve().parents[1])
if _root not in sys.path:
    sys.path.insert(0, _root)
