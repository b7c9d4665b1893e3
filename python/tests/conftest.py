import sys
from pathlib import Path

import pytest

import flashdist._threads

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(autouse=True)
def default_threads():
    """Each test starts with the default thread count, whatever the one before it set."""
    flashdist._threads._threads = None
    yield
    flashdist._threads._threads = None
