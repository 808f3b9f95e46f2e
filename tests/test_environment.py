"""``trainlab.environment.temporary_environ``: set for the block, restored after, even on error."""

from __future__ import annotations

import os

import pytest

from trainlab.environment import temporary_environ


def test_values_are_set_inside_and_restored_or_unset_after(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TRAINLAB_TEST_SET", "before")
    monkeypatch.delenv("TRAINLAB_TEST_UNSET", raising=False)
    with (
        pytest.raises(RuntimeError),
        temporary_environ({"TRAINLAB_TEST_SET": "inside", "TRAINLAB_TEST_UNSET": "inside"}),
    ):
        assert os.environ["TRAINLAB_TEST_SET"] == "inside"
        assert os.environ["TRAINLAB_TEST_UNSET"] == "inside"
        raise RuntimeError("the block fails")
    assert os.environ["TRAINLAB_TEST_SET"] == "before"
    assert "TRAINLAB_TEST_UNSET" not in os.environ
