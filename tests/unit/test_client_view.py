"""The scheduler's view: newest generation per node, fit queries, pending claims."""

import pytest

from tests import factories
from tests.payload_schema import problems
from tracker.client.view import BatchEndpoint, CapacityView, Request
from tracker.db.hosts import HostFacts

SMALL = Request(vcpus=2, memory_mb=4096, disk_gb=20)
BIG = Request(vcpus=8, memory_mb=16384, disk_gb=80)


def _payload(
    generation=1, host="cmp1", vcpus_used=0, memory_used=0, memory_mb=32768, facts=None, total=16, vms=None
):
    payload = factories.capacity_payload(
        host,
        f"{host}.example.org",
        generation,
        facts,
        vcpus=total,
        memory_mb=memory_mb,
        vcpus_used=vcpus_used,
        memory_mb_used=memory_used,
        running_vms=vcpus_used // 2 if vms is None else vms,
    )
    assert problems("capacity.update", payload) == []
    return payload


def _node(host):
    return (host, f"{host}.example.org")


def test_newer_generation_replaces_older():
    view = CapacityView()
    view.info({}, "tracker:w1", "capacity.update", _payload(1, vcpus_used=2), {})
    view.info({}, "tracker:w1", "capacity.update", _payload(2, vcpus_used=4), {})
    assert view.get(*_node("cmp1"))["generation"] == 2
    assert view.free("vcpus") == {_node("cmp1"): 60}


def test_older_or_repeated_generation_is_dropped():
    view = CapacityView()
    assert view.offer(_payload(5, vcpus_used=10))
    assert not view.offer(_payload(4, vcpus_used=2))
    assert not view.offer(_payload(5, vcpus_used=2))
    assert view.get(*_node("cmp1"))["resources"]["vcpus"]["used"] == 10
    assert view.dropped == 2


def test_a_snapshot_and_the_stream_keep_the_newest_whichever_comes_first():
    view = CapacityView()
    view.offer(_payload(7, host="cmp1", vcpus_used=6))
    assert view.load([_payload(3, host="cmp1"), _payload(2, host="cmp2")]) == 1
    assert view.get(*_node("cmp1"))["generation"] == 7
    assert view.get(*_node("cmp2"))["generation"] == 2
    assert len(view) == 2


def test_payloads_before_1_0_are_read_by_their_node_key():
    view = CapacityView()
    old = _payload(1)
    del old["nodename"], old["version"]
    view.offer(old)
    assert view.fits(SMALL) == [_node("cmp1")]


def test_fits_skips_disabled_forced_down_unregistered_and_full_nodes():
    view = CapacityView()
    view.load(
        [
            _payload(host="ok"),
            _payload(host="off", facts=HostFacts(disabled=True, disabled_reason="maintenance")),
            _payload(host="down", facts=HostFacts(forced_down=True)),
            _payload(host="unknown", total=None),
            _payload(host="full", memory_used=32768 - 512 - 1000),
        ]
    )
    assert view.fits(SMALL) == [_node("ok")]
    assert view.fits(Request(vcpus=65, memory_mb=1, disk_gb=0)) == []
    assert view.pick(Request(vcpus=1, memory_mb=32768, disk_gb=0)) is None


def test_fits_filters_on_zone_or_aggregate_by_uuid_or_name():
    in_az1 = HostFacts(availability_zone="az1", aggregates=(("agg-uuid-1", "fast-disks"),))
    view = CapacityView()
    view.load(
        [_payload(host="a", facts=in_az1), _payload(host="b", facts=HostFacts(availability_zone="az2"))]
    )
    assert view.fits(SMALL, availability_zone="az1") == [_node("a")]
    assert view.fits(SMALL, aggregate="fast-disks") == [_node("a")]
    assert view.fits(SMALL, aggregate="agg-uuid-1") == [_node("a")]
    assert view.fits(SMALL, availability_zone="az3") == []


def test_back_to_back_picks_spread_out_and_never_overfill():
    view = CapacityView()
    # 31.5 GiB and 41.5 GiB of free memory: three 16 GiB boots must not all go to one
    view.load([_payload(host="a", memory_mb=32768), _payload(host="b", memory_mb=43008)])
    picks = [view.pick(BIG) for _ in range(4)]
    assert sorted(picks[:3]) == [_node("a"), _node("b"), _node("b")]
    assert picks[3] is None
    assert view.room(*_node("b"))[1] == 43008 - 512 - 2 * 16384


def test_a_claim_ends_when_the_node_reports_usage_that_covers_it():
    view = CapacityView()
    view.offer(_payload(1, memory_mb=32768))
    assert view.pick(BIG) == _node("cmp1")
    assert view.pick(BIG) is None  # 32256 - 16384 left
    view.offer(_payload(1))  # a repeat of the same generation changes nothing
    assert view.pending_claims() == 1
    view.offer(_payload(2, vcpus_used=8, memory_used=16384))  # the tracker counted our boot
    assert view.pending_claims() == 0
    assert view.room(*_node("cmp1"))[1] == 32768 - 512 - 16384


def test_a_newer_generation_that_does_not_count_the_claim_keeps_it():
    view = CapacityView()
    view.offer(_payload(5, memory_mb=49152))  # 48 640 MB free: room for two BIG
    assert view.pick(BIG) == view.pick(BIG) == _node("cmp1")
    # an aggregate or service change: a newer generation, the same usage
    view.offer(_payload(6, memory_mb=49152, facts=HostFacts(availability_zone="az1")))
    assert view.pending_claims() == 2
    assert view.pick(BIG) is None
    # the first boot is counted: one claim ends, the second still holds its room
    view.offer(_payload(7, memory_mb=49152, vcpus_used=8, memory_used=16384, vms=1))
    assert view.pending_claims() == 1
    assert view.pick(BIG) is None
    view.offer(_payload(8, memory_mb=49152, vcpus_used=16, memory_used=32768, vms=2))
    assert view.pending_claims() == 0


def test_a_claim_ends_when_the_node_runs_more_instances_even_if_usage_shrank_elsewhere():
    view = CapacityView()
    view.offer(_payload(1, vcpus_used=8, memory_used=16384))  # 4 instances
    view.claim(*_node("cmp1"), SMALL)
    # our boot landed while a bigger instance left: usage fell, instances grew
    view.offer(_payload(2, vcpus_used=2, memory_used=4096, vms=5))
    assert view.pending_claims() == 0


def test_claims_last_five_minutes_by_default_longer_than_a_boot():
    now = [0.0]
    view = CapacityView(clock=lambda: now[0])
    view.offer(_payload(1))
    view.claim(*_node("cmp1"), BIG)
    now[0] = 299.0
    assert view.pending_claims() == 1
    now[0] = 300.0
    assert view.pending_claims() == 0


def test_a_claim_without_room_is_refused_so_two_threads_never_share_the_last_room():
    view = CapacityView()
    view.offer(_payload(1, memory_mb=32768))  # 32 256 MB free: room for one BIG
    assert view.claim(*_node("cmp1"), BIG) is True
    assert view.claim(*_node("cmp1"), BIG) is False
    assert view.pending_claims() == 1
    assert view.claim("nowhere", "nowhere", SMALL) is False  # unknown: nothing to count against


def test_claims_expire_after_their_timeout():
    now = [100.0]
    view = CapacityView(claim_timeout=30.0, clock=lambda: now[0])
    view.offer(_payload(1))
    view.claim(*_node("cmp1"), BIG)
    assert view.room(*_node("cmp1"))[0] == 64 - 8
    now[0] += 29.9
    assert view.pending_claims() == 1
    now[0] += 0.2
    assert view.pending_claims() == 0
    assert view.room(*_node("cmp1"))[0] == 64


def test_alerts_arrive_on_the_error_endpoint_and_other_events_are_ignored():
    view = CapacityView()
    view.error({}, "tracker:w1", "capacity.overcommit", {"host": "cmp1"}, {})
    view.info({}, "nova-compute:cmp1", "instance.create.end", {"host": "cmp1"}, {})
    assert view.alerts == [("capacity.overcommit", {"host": "cmp1"})]
    assert len(view) == 0


def _broken(change):
    payload = _payload()
    change(payload)
    return payload


@pytest.mark.parametrize(
    "payload",
    [
        _broken(lambda p: p.pop("host")),
        _broken(lambda p: p.pop("resources")),
        _broken(lambda p: p["resources"].pop("memory_mb")),
        _broken(lambda p: p["resources"]["vcpus"].update(free="lots")),
        _broken(lambda p: p.update(generation="7")),
        _broken(lambda p: p.update(running_vms=None)),
        _broken(lambda p: p.update(version=1.0)),
        ["not", "a", "mapping"],
    ],
)
def test_a_malformed_payload_is_refused_by_the_listener_callback_without_raising(payload, caplog):
    view = CapacityView()
    view.info({}, "tracker:w1", "capacity.update", payload, {})
    view.info({}, "tracker:w1", "capacity.update", payload, {})
    assert (len(view), view.rejected) == (0, 2)
    assert len([r for r in caplog.records if "malformed capacity.update" in r.getMessage()]) == 1


def test_an_unknown_major_version_is_refused_and_said_once_a_new_minor_is_read(caplog):
    view = CapacityView()
    for generation in (1, 2):
        view.offer(_broken(lambda p, g=generation: p.update(version="2.0", generation=g)))
    assert (len(view), view.rejected) == (0, 2)
    (line,) = [r.getMessage() for r in caplog.records if "2.0" in r.getMessage()]
    assert "version 2.0" in line and "1.x" in line
    assert view.offer(_broken(lambda p: p.update(version="1.7", new_field=True)))


def test_the_batch_endpoint_feeds_the_view_as_the_batch_listener_hands_over():
    view = CapacityView()
    endpoint = BatchEndpoint(view)

    def message(event_type, payload):
        return {
            "ctxt": {},
            "publisher_id": "tracker:w1",
            "event_type": event_type,
            "payload": payload,
            "metadata": {},
        }

    endpoint.info([message("capacity.update", _payload(2)), message("capacity.update", _payload(1))])
    endpoint.error([message("quota.exceeded", {"project_id": "p1"})])
    assert view.get(*_node("cmp1"))["generation"] == 2 and view.dropped == 1
    assert view.alerts == [("quota.exceeded", {"project_id": "p1"})]
    assert view.nodes() == [_node("cmp1")]
