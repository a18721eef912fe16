"""Makes this interpreter one "without the project": group_appeal_spark imports only from a zip.

Put on PYTHONPATH by the deploy-mode tests. On a cluster in deploy mode the package reaches
the driver and the executors only as the wheel given to spark-submit's --py-files; whatever
this test machine has installed (the venv's own copy of the project) must stay invisible.
GAS_TEST_HIDE_MODULES (comma-separated top-level names, e.g. ``torch``) hides those too: an
executor without a dependency.
"""

import importlib.abc
import importlib.machinery
import os
import sys

_HIDDEN = frozenset(filter(None, os.environ.get("GAS_TEST_HIDE_MODULES", "").split(",")))


class _OnlyFromArchives(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        if fullname in _HIDDEN:
            raise ModuleNotFoundError(f"No module named {fullname!r} (hidden by GAS_TEST_HIDE_MODULES)", name=fullname)
        if fullname != "group_appeal_spark":
            return None  # subpackages follow the top-level package's own __path__
        archives = [p for p in sys.path if p.endswith((".whl", ".zip", ".egg"))]
        spec = importlib.machinery.PathFinder.find_spec(fullname, archives)
        if spec is None:
            raise ModuleNotFoundError(f"No module named {fullname!r} (only --py-files archives are visible; "
                                      f"sys.path: {sys.path})", name=fullname)
        return spec


sys.meta_path.insert(0, _OnlyFromArchives())
