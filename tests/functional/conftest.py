"""Fixtures for tests on real services."""

import json
import uuid

import pytest

from tests import payload_schema
from tracker.bus import publisher


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


@pytest.fixture(autouse=True)
def published_payloads_follow_the_schema(monkeypatch):
    """Every capacity notification an in-process relay publishes in a functional test
    validates against the schema in doc/; the test fails at teardown otherwise."""
    original = publisher.capacity_message
    seen = []
    broken = []

    def checked(payload, *args, **kwargs):
        message = original(payload, *args, **kwargs)
        event_type = json.loads(message["oslo.message"])["event_type"]
        seen.append(event_type)
        broken.extend(payload_schema.problems(event_type, payload))
        return message

    monkeypatch.setattr(publisher, "capacity_message", checked)
    yield seen
    assert broken == [], broken[:5]
