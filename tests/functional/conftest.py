"""Fixtures for tests on real services."""

import uuid

import pytest


@pytest.fixture
def names():
    suffix = uuid.uuid4().hex[:8]
    return {
        "nova": f"nova-{suffix}",
        "tracker": f"tracker-{suffix}",
        "queue": f"tracker-notifications-{suffix}",
        "dlq": f"tracker-dlq-{suffix}",
        "scheduler": f"scheduler-{suffix}",
    }
