import os

import numpy as np
import pytest
from hypothesis import settings

# CI (CI=true) runs the property tests on a fixed sequence of examples, so that a landing is
# reproducible; local runs draw fresh examples each time and keep exploring.
settings.register_profile("ci", derandomize=True, deadline=None)
settings.register_profile("dev", deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")


@pytest.fixture
def rng():
    return np.random.default_rng(12345)
