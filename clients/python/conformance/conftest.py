"""What the standard suite expects that deepagents 0.7.32 itself does not do, marked as expected
failures with the reason (strict: a test that starts passing says so, and the mark goes)."""

from __future__ import annotations

import pytest

_GLOB = (
    "the suite expects glob matches relative to the search root; deepagents 0.7.32 (its "
    "BaseSandbox and FilesystemBackend) returns absolute paths, and so does Hearth"
)

EXPECTED_FAILURES = {
    "test_glob": _GLOB,
    "test_glob_basic_pattern": _GLOB,
    "test_glob_with_directories": _GLOB,
    "test_glob_hidden_files_explicitly": _GLOB,
    "test_glob_with_character_class": _GLOB,
    "test_glob_with_question_mark": _GLOB,
    "test_write_existing_file_fails": (
        "the suite expects write to refuse an existing file; deepagents 0.7 overwrites "
        "(its tools and backends), and so does Hearth"
    ),
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        reason = EXPECTED_FAILURES.get(item.name)
        if reason and item.cls is not None and item.cls.__name__ == "TestHearthStandardSandbox":
            item.add_marker(pytest.mark.xfail(reason=reason, strict=True))
