"""Where the tests find the checkout and their support files, wherever under tests/ they live."""

from pathlib import Path

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent  # the checkout
SUPPORT = TESTS / "support"  # sitecustomize.py of an interpreter that cannot see the project
