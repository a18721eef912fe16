"""README's module map names every module of the package's folders, and nothing that is gone."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = ["lib/inference", "lib/models", "lib/clustering", "lib/training", "lib/validation", "lib", "udfs", "jobs",
           "jobs/pipeline", "jobs/storage", "jobs/transforms", "group_appeal_spark/testing",
           "group_appeal_spark/ml"]


def _map_rows() -> dict:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text[text.index("Module map"):]
    section = section[: section.index("\n\n", section.index("| folder |"))]
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 2 and cells[0].startswith("`"):
            folder = cells[0].strip("`").split("` (")[0].rstrip("/")
            rows[folder.replace(" (top)", "").strip("`")] = set(re.findall(r"`([a-z_]+)`", cells[1]))
    return rows


def test_every_module_is_in_the_module_map():
    rows = _map_rows()
    missing = {}
    for folder in FOLDERS:
        modules = {p.stem for p in (ROOT / folder).glob("*.py") if p.stem not in ("__init__", "_bootstrap")}
        named = rows.get(folder, set())
        if modules - named:
            missing[folder] = sorted(modules - named)
    assert not missing, f"modules missing from README's module map: {missing}"


def test_the_module_map_names_no_missing_folder():
    for folder in _map_rows():
        assert (ROOT / folder).is_dir(), f"README's module map names {folder}/, which does not exist"
