"""Every synthesizer test trains its small models on one thread."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread: None) -> None:
    """See :func:`tests.conftest.one_torch_thread`."""
