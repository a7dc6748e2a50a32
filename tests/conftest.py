"""Fixtures shared by the test modules."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from velocity import extend


@pytest.fixture
def clean_extend_registry() -> Iterator[None]:
    """The Python rules and attacks registered by a test are forgotten after it."""
    before = dict(extend._REGISTRY)
    yield
    extend._REGISTRY.clear()
    extend._REGISTRY.update(before)
