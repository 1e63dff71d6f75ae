import pytest

from tests import factories
from tracker.accounting import codec
from tracker.errors import DecodeError, InvalidPayload
from tracker.events import catalogue, envelope, parse
from tracker.events.model import Flavor

MAX = 1 << 20


def _parse(inner):
    return parse.parse(envelope.decode(inner, MAX))


def test_versioned_create_end_becomes_a_typed_event():
    payload = factories.instance_payload(
        "u1", flavor=factories.flavor_payload(vcpus=4, memory_mb=4096, root_gb=40, ephemeral_gb=10, swap=1536)
    )
    event = _parse(factories.message("instance.create.end", payload))
    assert event.action == "create.end"
    assert event.instance_uuid == "u1"
    assert (event.host, event.node, event.vm_state) == ("cmp1", "cmp1.example.org", "active")
    assert event.flavor == Flavor(4, 4096, 40, 10, 1536, name="m1.small", flavorid="m1.small")
    assert event.boot_from_volume is False


def test_empty_image_means_boot_from_volume():
    event = _parse(factories.message("instance.create.end", factories.instance_payload("u1", image_uuid="")))
    assert event.boot_from_volume is True


def test_root_bdm_decides_boot_from_volume_when_present():
    payload = factories.instance_payload("u1", image_uuid="")
    payload["nova_object.data"]["block_devices"] = [
        {"nova_object.data": {}, "boot_index": 0, "volume_id": None, "device_name": "/dev/vda"}
    ]
    assert _parse(factories.message("instance.create.end", payload)).boot_from_volume is False


def test_resize_prep_carries_the_new_flavor():
    payload = factories.instance_payload(
        "u1",
        new_flavor=factories.flavor_payload(vcpus=8, name="m1.large"),
        name="InstanceActionResizePrepPayload",
    )
    event = _parse(factories.message("instance.resize_prep.end", payload, publisher="nova-compute:cmp2"))
    assert event.new_flavor is not None and event.new_flavor.vcpus == 8
    assert event.publisher_host == "cmp2"


@pytest.mark.parametrize(
    "event_type", ["service.update", "compute.exception", "metrics.update", "flavor.create"]
)
def test_non_instance_notifications_are_not_events(event_type):
    assert _parse(factories.message(event_type, {"nova_object.data": {}})) is None


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda d: d.pop("uuid"), "lacks uuid"),
        (lambda d: d["flavor"]["nova_object.data"].update(vcpus=-1), "out of range"),
        (lambda d: d["flavor"]["nova_object.data"].update(memory_mb="2048"), "not an integer"),
        (lambda d: d["flavor"]["nova_object.data"].update(vcpus=True), "not an integer"),
        (lambda d: d.update(flavor={"vcpus": 1}), "not a Nova versioned object"),
        (lambda d: d.update(host=42), "not a string"),
        # names that would forge log lines or terminal output downstream (issue 12)
        (lambda d: d.update(host="evil\x1b[2J\x1b[31mPWNED\x1b[0m"), "control or unprintable"),
        (lambda d: d.update(node="cmp1\ncmp01  0  0/0"), "control or unprintable"),
        (lambda d: d.update(tenant_id="p\u202eevil"), "control or unprintable"),
        (lambda d: d.update(host="h" * 256), "more than 255"),
        (lambda d: d.update(uuid="u" * 37), "more than 36"),
    ],
)
def test_invalid_payloads_raise_invalid_payload(mutate, reason):
    payload = factories.instance_payload("u1")
    mutate(payload["nova_object.data"])
    with pytest.raises(InvalidPayload, match=reason) as raised:
        _parse(factories.message("instance.create.end", payload))
    assert str(raised.value).isprintable()  # the reason itself is safe to log


@pytest.mark.parametrize("key", ["event_type", "publisher_id", "message_id"])
def test_envelope_names_with_control_characters_are_poison(key):
    message = factories.message("instance.create.end", factories.instance_payload("u1"))
    message[key] = message[key] + "\n2026-01-01 ERROR FORGED"
    with pytest.raises(DecodeError, match="control or unprintable"):
        envelope.decode(message, 1 << 20)


def test_a_dedupe_key_of_long_names_still_fits_its_column():
    event = factories.event("create.end", 1, publisher="p" * 255)
    assert len(event.dedupe_key) <= 255
    assert event.dedupe_key != factories.event("create.end", 1, publisher="p" * 254 + "q").dedupe_key


@pytest.mark.parametrize(
    ("legacy", "versioned"),
    [
        ("compute.instance.create.end", "create.end"),
        ("compute.instance.resize.prep.end", "resize_prep.end"),
        ("compute.instance.finish_resize.end", "resize_finish.end"),
        ("compute.instance.resize.confirm.end", "resize_confirm.end"),
        ("compute.instance.resize.revert.start", "resize_revert.start"),
        ("compute.instance.resize.end", "resize.end"),
        ("compute.instance.live_migration.pre.start", "live_migration_pre.start"),
        ("compute.instance.live_migration._post.end", "live_migration_post.end"),
        ("compute.instance.live_migration.post.dest.end", "live_migration_post_dest.end"),
        ("compute.instance.live_migration._rollback.end", "live_migration_rollback.end"),
        ("compute.instance.live_migration.rollback.dest.end", "live_migration_rollback_dest.end"),
        ("compute.instance.live.migration.abort.start", "live_migration_abort.start"),
        ("compute.instance.live.migration.force.complete.end", "live_migration_force_complete.end"),
        ("compute.instance.rebuild.scheduled", "rebuild_scheduled"),
        ("compute.instance.shelve_offload.end", "shelve_offload.end"),
        ("compute.instance.exists", "exists"),
    ],
)
def test_legacy_names_map_to_the_versioned_vocabulary(legacy, versioned):
    assert catalogue.legacy_action(legacy) == versioned


def test_legacy_payload_is_read_from_the_flat_dict():
    payload = {
        "instance_id": "u1",
        "tenant_id": "p1",
        "host": "cmp1",
        "node": "cmp1.example.org",
        "state": "active",
        "state_description": "",
        "memory_mb": 2048,
        "vcpus": 2,
        "root_gb": 20,
        "ephemeral_gb": 1,
        "disk_gb": 21,
        "instance_type": "m1.small",
        "instance_flavor_id": "2",
        "image_ref_url": "http://glance:9292/images/",
    }
    event = _parse(factories.message("compute.instance.create.end", payload, publisher="compute.cmp1"))
    assert (event.action, event.instance_uuid, event.publisher_host) == ("create.end", "u1", "cmp1")
    assert event.flavor == Flavor(2, 2048, 20, 1, 0, name="m1.small", flavorid="2")
    assert event.task_state is None
    assert event.boot_from_volume is True


def test_stored_events_from_another_version_still_load():
    event = factories.event("create.end", 1)
    stored = codec.dump(event) | {"field_of_a_later_version": True}
    assert codec.load_event(stored) == event


def test_novas_request_id_is_kept_and_absent_is_none():
    with_id = factories.instance_payload("u1", request_id="req-5b6c791d-5709-4f36-8fbe-c3e02869e35d")
    assert _parse(factories.message("instance.create.end", with_id)).request_id == (
        "req-5b6c791d-5709-4f36-8fbe-c3e02869e35d"
    )
    without = factories.instance_payload("u1")
    assert _parse(factories.message("instance.create.end", without)).request_id is None


@pytest.mark.parametrize("request_id", ["req-1\n2026 ERROR forged", 42, "r" * 300])
def test_a_malformed_request_id_is_dropped_and_the_event_still_counts(request_id):
    payload = factories.instance_payload("u1", request_id=request_id)
    event = _parse(factories.message("instance.create.end", payload))
    assert event.request_id is None and event.instance_uuid == "u1"
