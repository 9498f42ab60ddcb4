"""The test tree keeps names pytest can import side by side."""

from __future__ import annotations

from collections import Counter

from harness import REPO


def test_test_module_names_are_unique() -> None:
    # The test folders are not packages, so pytest imports each module by
    # its file name; two files with one name make collection fail.
    names = Counter(path.name for path in (REPO / "tests").rglob("test_*.py"))

    duplicates = sorted(name for name, count in names.items() if count > 1)

    assert duplicates == []
