from tracker.client.view import CapacityView


def _payload(generation, used, host="cmp1"):
    return {
        "host": host,
        "node": f"{host}.example.org",
        "generation": generation,
        "running_vms": used // 2,
        "resources": {"vcpus": {"total": 16, "used": used, "capacity": 64, "free": 64 - used}},
    }


def test_newer_generation_replaces_older():
    view = CapacityView()
    view.info({}, "tracker:w1", "capacity.update", _payload(1, 2), {})
    view.info({}, "tracker:w1", "capacity.update", _payload(2, 4), {})
    assert view.get("cmp1", "cmp1.example.org")["generation"] == 2
    assert view.free("vcpus") == {("cmp1", "cmp1.example.org"): 60}


def test_older_or_repeated_generation_is_dropped():
    view = CapacityView()
    assert view.offer(_payload(5, 10))
    assert not view.offer(_payload(4, 2))
    assert not view.offer(_payload(5, 2))
    assert view.get("cmp1", "cmp1.example.org")["resources"]["vcpus"]["used"] == 10
    assert view.dropped == 2


def test_nodes_are_independent_and_other_events_ignored():
    view = CapacityView()
    view.offer(_payload(9, 2, host="cmp1"))
    view.offer(_payload(1, 6, host="cmp2"))
    view.info({}, "nova-compute:cmp1", "instance.create.end", {"host": "cmp1"}, {})
    assert view.free("vcpus") == {("cmp1", "cmp1.example.org"): 62, ("cmp2", "cmp2.example.org"): 58}
