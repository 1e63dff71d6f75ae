"""tools/nova_tracker_scheduler.py against Nova's filter and weigher interfaces
(stand-ins for nova.scheduler.filters/weights: Nova is not installed here)."""

import sys
import types

import pytest

from tests.unit.test_client_view import _payload
from tracker.client.view import CapacityView
from tracker.db.hosts import HostFacts

GIB = 1024


class BaseHostFilter:
    """nova.scheduler.filters.BaseHostFilter: the handler calls host_passes per host."""

    def filter_all(self, host_states, spec_obj):
        return [host for host in host_states if self.host_passes(host, spec_obj)]


class BaseHostWeigher:
    """nova.weights.BaseWeigher's default weigh_objects: _weigh_object per host."""

    minval = None
    maxval = None

    def weight_multiplier(self, host_state):
        return 1.0

    def weigh_objects(self, weighed_obj_list, weight_properties):
        return [self._weigh_object(obj.obj, weight_properties) for obj in weighed_obj_list]


@pytest.fixture
def example(monkeypatch):
    scheduler = types.ModuleType("nova.scheduler")
    scheduler.filters = types.SimpleNamespace(BaseHostFilter=BaseHostFilter)
    scheduler.weights = types.SimpleNamespace(BaseHostWeigher=BaseHostWeigher)
    monkeypatch.setitem(sys.modules, "nova", types.ModuleType("nova"))
    monkeypatch.setitem(sys.modules, "nova.scheduler", scheduler)
    monkeypatch.delitem(sys.modules, "nova_tracker_scheduler", raising=False)
    import nova_tracker_scheduler  # noqa: PLC0415 - only with the stand-ins in place

    yield nova_tracker_scheduler
    nova_tracker_scheduler.set_view(None)


def _host(name):
    return types.SimpleNamespace(host=name, nodename=f"{name}.example.org")


def _spec(memory_mb, vcpus=4, root_gb=40, is_bfv=False, swap=0):
    flavor = types.SimpleNamespace(
        vcpus=vcpus, memory_mb=memory_mb, root_gb=root_gb, ephemeral_gb=0, swap=swap
    )
    return types.SimpleNamespace(flavor=flavor, is_bfv=is_bfv, availability_zone=None)


def _schedule(example, hosts, spec):
    """Nova's FilterScheduler, reduced: filter, weigh, take the heaviest (host_subset_size 1)."""
    passing = example.TrackerCapacityFilter().filter_all(hosts, spec)
    if not passing:
        return None
    weighed = [types.SimpleNamespace(obj=host, weight=0.0) for host in passing]
    if len(weighed) > 1:
        weights = example.TrackerRAMWeigher().weigh_objects(weighed, spec)
        for obj, weight in zip(weighed, weights, strict=True):
            obj.weight = weight
    return max(weighed, key=lambda obj: obj.weight).obj.host


def test_back_to_back_boots_spread_over_the_nodes_with_room(example):
    view = CapacityView()
    view.load([_payload(host="a", memory_mb=32 * GIB), _payload(host="b", memory_mb=42 * GIB)])
    example.set_view(view)
    hosts = [_host("a"), _host("b")]
    # 31.5 and 41.5 GiB free: the third 16 GiB boot must not land on b again after two
    assert [_schedule(example, hosts, _spec(16 * GIB)) for _ in range(4)] == ["b", "a", "b", None]


def test_the_filter_refuses_disabled_unknown_and_too_small_hosts(example):
    view = CapacityView()
    view.load([_payload(host="a"), _payload(host="off", facts=HostFacts(disabled=True))])
    example.set_view(view)
    passing = example.TrackerCapacityFilter().filter_all(
        [_host("a"), _host("off"), _host("new")], _spec(1024)
    )
    assert [host.host for host in passing] == ["a"]
    assert example.TrackerCapacityFilter().filter_all([_host("a")], _spec(64 * GIB)) == []


def test_requests_count_disk_as_nova_does(example):
    assert example.request_of(_spec(1024, root_gb=40)).disk_gb == 40
    assert example.request_of(_spec(1024, root_gb=40, is_bfv=True)).disk_gb == 0
    # swap in MiB, rounded up to whole GiB as Placement allocates it
    assert example.request_of(_spec(1024, root_gb=40, swap=512)).disk_gb == 41
    assert example.request_of(_spec(1024, root_gb=40, swap=2048)).disk_gb == 42


def test_a_restarted_scheduler_process_takes_its_pool_again_instead_of_a_new_queue(example, tmp_path):
    first, first_lock = example.pool_slot(tmp_path, "sched1")
    second, second_lock = example.pool_slot(tmp_path, "sched1")
    assert (first, second) == ("scheduler-sched1-0", "scheduler-sched1-1")  # both see every update
    first_lock.close()  # the first process ends, however it ends
    again, again_lock = example.pool_slot(tmp_path, "sched1")
    assert again == first
    second_lock.close()
    again_lock.close()
