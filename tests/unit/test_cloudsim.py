"""Self-tests of the cloudsim oracle and notification sequences.

Scenarios are small and hand-checked; the oracle is what Nova's resource
tracker would report (no reserved baseline, no allocation ratios).
"""

from __future__ import annotations

import itertools
import random
from typing import Any

import pytest
from cloudsim import Cloud, inner, shuffle_within_window, with_duplicates
from cloudsim import lifecycles as lc
from cloudsim.flavors import CATALOGUE, Flavor, disk_gb
from cloudsim.nova import Instance

FLAVORS = {f.name: f for f in CATALOGUE}


def _cloud(fmt: str = "versioned", hosts: int = 2, **kwargs: Any) -> Cloud:
    return Cloud(seed=7, hosts=hosts, fmt=fmt, **kwargs)


def _booted(cloud: Cloud, flavor: str = "m1.small", bfv: bool = False) -> Instance:
    inst = cloud.new_instance(FLAVORS[flavor], volume_backed=bfv)
    cloud.play(lc.build(cloud, inst, random.Random(1)))
    assert inst.vm_state == "active"
    return inst


def _events(cloud: Cloud, inst: Instance, updates: bool = False) -> list[str]:
    """Event types concerning ``inst``, in emission order."""
    out = []
    for message in cloud.messages:
        note = inner(message)
        payload = note["payload"]
        data = payload.get("nova_object.data", {})
        uuid = data.get("uuid", data.get("instance_uuid", payload.get("instance_id")))
        if uuid == inst.uuid and (updates or not note["event_type"].endswith(".update")):
            out.append(note["event_type"])
    return out


def _notes(cloud: Cloud, event_type: str) -> list[dict[str, Any]]:
    return [n for n in map(inner, cloud.messages) if n["event_type"] == event_type]


def _data(note: dict[str, Any]) -> dict[str, Any]:
    data: dict[str, Any] = note["payload"]["nova_object.data"]
    return data


def _usage(cloud: Cloud, host: str) -> tuple[int, int, int]:
    row = next(r for r in cloud.oracle()["nodes"].values() if r["host"] == host)
    return row["vcpus"], row["memory_mb"], row["local_gb"]


def _size(flavor: Flavor, bfv: bool = False) -> tuple[int, int, int]:
    return flavor.vcpus, flavor.memory_mb, disk_gb(flavor, bfv)


def _mark(cloud: Cloud) -> int:
    return len(cloud.messages)


def _since(cloud: Cloud, inst: Instance, mark: int) -> list[str]:
    saved, cloud.messages = cloud.messages, cloud.messages[mark:]
    try:
        return _events(cloud, inst)
    finally:
        cloud.messages = saved


# -- disk formula ------------------------------------------------------------------
def test_swap_truncation_and_bfv() -> None:
    assert disk_gb(FLAVORS["c1.swap1536"], False) == 22
    assert disk_gb(FLAVORS["c1.swap512"], False) == 21
    assert disk_gb(FLAVORS["e1.ephemeral"], True) == 60 + 2
    assert disk_gb(FLAVORS["z1.rootless"], False) == 0


def test_swap_1536_adds_two_gb_on_node() -> None:
    cloud = _cloud()
    inst = _booted(cloud, "c1.swap1536")
    assert _usage(cloud, inst.host or "") == (2, 4096, 22)


def test_boot_from_volume_counts_no_root_disk() -> None:
    cloud = _cloud()
    inst = _booted(cloud, "e1.ephemeral", bfv=True)
    assert _usage(cloud, inst.host or "") == (4, 8192, 62)
    create_end = _notes(cloud, "instance.create.end")[0]
    assert _data(create_end)["image_uuid"] == ""
    assert _data(create_end)["block_devices"][0]["nova_object.data"]["boot_index"] == 0


# -- build / delete ----------------------------------------------------------------
def test_build_sequence_and_oracle() -> None:
    cloud = _cloud()
    inst = _booted(cloud)
    assert _events(cloud, inst) == ["instance.create.start", "instance.create.end"]
    start, end = _notes(cloud, "instance.create.start")[0], _notes(cloud, "instance.create.end")[0]
    assert _data(start)["host"] is None and _data(start)["state"] == "building"
    assert (_data(end)["host"], _data(end)["node"]) == (inst.host, inst.node)
    assert inst.node == f"{inst.host}.example.org"
    assert end["publisher_id"] == f"nova-compute:{inst.host}"
    oracle = cloud.oracle()
    row = oracle["nodes"][f"{inst.host}/{inst.node}"]
    assert (row["vcpus"], row["memory_mb"], row["local_gb"], row["running_vms"]) == (1, 2048, 20, 1)
    assert oracle["projects"][inst.project_id] == {
        "vcpus": 1,
        "memory_mb": 2048,
        "local_gb": 20,
        "instances": 1,
    }
    assert len(oracle["nodes"]) == 2


def test_build_reschedule_then_success() -> None:
    cloud = _cloud()
    inst = cloud.new_instance(FLAVORS["m1.small"], volume_backed=False)
    cloud.play(lc.build(cloud, inst, random.Random(3), failures=1))
    assert _events(cloud, inst) == [
        "instance.create.start",
        "instance.create.error",
        "instance.create.start",
        "instance.create.end",
    ]
    error = _notes(cloud, "instance.create.error")[0]
    assert error["priority"] == "ERROR" and _data(error)["host"] is None
    assert error["publisher_id"] != _notes(cloud, "instance.create.end")[0]["publisher_id"]
    assert cloud.oracle()["nodes"][f"{inst.host}/{inst.node}"]["running_vms"] == 1


def test_build_no_valid_host_counts_nothing() -> None:
    cloud = _cloud()
    inst = cloud.new_instance(FLAVORS["m1.small"], volume_backed=False)
    cloud.play(lc.build(cloud, inst, random.Random(3), failures=3))
    assert _events(cloud, inst) == [
        "instance.create.start",
        "instance.create.error",
        "instance.create.start",
        "instance.create.error",
        "compute_task.build_instances.error",
    ]
    assert inst.vm_state == "error" and inst.host is None
    assert all(r["vcpus"] == 0 for r in cloud.oracle()["nodes"].values())
    assert cloud.oracle()["projects"][inst.project_id]["instances"] == 0
    mark = _mark(cloud)
    cloud.play(lc.delete(cloud, inst, random.Random(1)))
    assert _since(cloud, inst, mark) == ["instance.delete.start", "instance.delete.end"]
    assert _notes(cloud, "instance.delete.end")[0]["publisher_id"] == "nova-api:api01"


def test_delete_from_compute_frees() -> None:
    cloud = _cloud()
    inst = _booted(cloud)
    mark = _mark(cloud)
    cloud.play(lc.delete(cloud, inst, random.Random(1)))
    assert _since(cloud, inst, mark) == [
        "instance.delete.start",
        "instance.shutdown.start",
        "instance.shutdown.end",
        "instance.delete.end",
    ]
    end = _data(_notes(cloud, "instance.delete.end")[0])
    assert end["state"] == "deleted" and end["host"] == inst.host
    assert all(r["running_vms"] == 0 and r["vcpus"] == 0 for r in cloud.oracle()["nodes"].values())


# -- resize ------------------------------------------------------------------------
RESIZE = [
    "instance.exists",
    "instance.resize_prep.start",
    "instance.resize_prep.end",
    "instance.resize.start",
    "instance.resize.end",
    "instance.resize_finish.start",
    "instance.resize_finish.end",
]


def _resized(cloud: Cloud, new: str = "m1.large", **kwargs: Any) -> tuple[Instance, str, str]:
    inst = _booted(cloud)
    source = inst.host or ""
    mark = _mark(cloud)
    cloud.play(lc.resize(cloud, inst, random.Random(2), FLAVORS[new], **kwargs))
    assert inst.vm_state == "resized"
    events = _since(cloud, inst, mark)
    assert events[-len(RESIZE) :] == RESIZE
    return inst, source, inst.host or ""


def test_resize_before_confirm_holds_old_on_source_new_on_dest() -> None:
    cloud = _cloud()
    inst, source, dest = _resized(cloud)
    assert source != dest
    assert _usage(cloud, source) == _size(FLAVORS["m1.small"])
    assert _usage(cloud, dest) == _size(FLAVORS["m1.large"])
    nodes = cloud.oracle()["nodes"]
    assert nodes[f"{dest}/{dest}.example.org"]["running_vms"] == 1
    assert nodes[f"{source}/{source}.example.org"]["running_vms"] == 0
    assert cloud.oracle()["projects"][inst.project_id]["vcpus"] == 1 + 4


def test_resize_payload_hosts() -> None:
    cloud = _cloud()
    _inst, source, dest = _resized(cloud)
    prep = _notes(cloud, "instance.resize_prep.start")[0]
    assert prep["publisher_id"] == f"nova-compute:{dest}"
    assert _data(prep)["host"] == source
    assert _data(prep)["flavor"]["nova_object.data"]["name"] == "m1.small"
    assert _data(prep)["new_flavor"]["nova_object.data"]["name"] == "m1.large"
    start, end = _notes(cloud, "instance.resize.start")[0], _notes(cloud, "instance.resize.end")[0]
    assert start["publisher_id"] == end["publisher_id"] == f"nova-compute:{source}"
    assert _data(start)["host"] == source and _data(end)["host"] == dest
    assert _data(end)["flavor"]["nova_object.data"]["name"] == "m1.small"
    finish = _data(_notes(cloud, "instance.resize_finish.end")[0])
    assert finish["state"] == "resized" and finish["flavor"]["nova_object.data"]["name"] == "m1.large"


def test_resize_confirm_frees_source() -> None:
    cloud = _cloud()
    inst, source, dest = _resized(cloud)
    mark = _mark(cloud)
    cloud.play(lc.confirm_resize(cloud, inst, random.Random(1)))
    assert _since(cloud, inst, mark) == ["instance.resize_confirm.start", "instance.resize_confirm.end"]
    confirm = _notes(cloud, "instance.resize_confirm.start")[0]
    assert confirm["publisher_id"] == f"nova-compute:{source}" and _data(confirm)["host"] == dest
    assert _usage(cloud, source) == (0, 0, 0)
    assert _usage(cloud, dest) == _size(FLAVORS["m1.large"])


def test_resize_revert_returns_to_source() -> None:
    cloud = _cloud()
    inst, source, dest = _resized(cloud)
    mark = _mark(cloud)
    cloud.play(lc.revert_resize(cloud, inst, random.Random(1)))
    assert _since(cloud, inst, mark) == [
        "instance.exists",
        "instance.resize_revert.start",
        "instance.resize_revert.end",
    ]
    start = _data(_notes(cloud, "instance.resize_revert.start")[0])
    end = _data(_notes(cloud, "instance.resize_revert.end")[0])
    assert start["host"] == dest and start["flavor"]["nova_object.data"]["name"] == "m1.large"
    assert end["host"] == source and end["flavor"]["nova_object.data"]["name"] == "m1.small"
    assert _usage(cloud, source) == _size(FLAVORS["m1.small"])
    assert _usage(cloud, dest) == (0, 0, 0)


@pytest.mark.parametrize("finish", ["confirm", "revert"])
def test_same_host_resize_holds_both(finish: str) -> None:
    cloud = _cloud()
    inst, source, dest = _resized(cloud, same_host=True)
    assert source == dest
    small, large = _size(FLAVORS["m1.small"]), _size(FLAVORS["m1.large"])
    assert _usage(cloud, source) == tuple(a + b for a, b in zip(small, large, strict=True))
    step = lc.confirm_resize if finish == "confirm" else lc.revert_resize
    cloud.play(step(cloud, inst, random.Random(1)))
    assert _usage(cloud, source) == (large if finish == "confirm" else small)


def test_resize_prep_failure_rescheduled() -> None:
    cloud = _cloud(hosts=3)
    inst = _booted(cloud)
    mark = _mark(cloud)
    cloud.play(lc.resize(cloud, inst, random.Random(4), FLAVORS["m1.large"], prep_failures=1))
    assert _since(cloud, inst, mark) == [
        "instance.exists",
        "instance.resize_prep.start",
        "instance.resize.error",
        "instance.resize_prep.end",
        *RESIZE,
    ]
    first_prep = _notes(cloud, "instance.resize_prep.end")[0]
    error = _notes(cloud, "instance.resize.error")[0]
    assert error["priority"] == "ERROR" and error["publisher_id"] == first_prep["publisher_id"]
    assert error["publisher_id"] != f"nova-compute:{inst.host}"
    assert sum(r["vcpus"] for r in cloud.oracle()["nodes"].values()) == 1 + 4


def test_cold_migration_same_flavor() -> None:
    cloud = _cloud()
    inst = _booted(cloud)
    source = inst.host or ""
    cloud.play(lc.resize(cloud, inst, random.Random(2), admin=True))
    assert _usage(cloud, source) == _usage(cloud, inst.host or "") == _size(FLAVORS["m1.small"])
    prep = _data(_notes(cloud, "instance.resize_prep.start")[0])
    assert prep["new_flavor"] == prep["flavor"]
    assert prep["action_initiator_project"] != prep["tenant_id"]


def test_resize_stopped_after_prep_holds_dest() -> None:
    cloud = _cloud()
    inst = _booted(cloud)
    source = inst.host or ""
    cloud.play(lc.resize(cloud, inst, random.Random(2), FLAVORS["m1.large"], stop_after_prep=True))
    dest = next(n.host for n in cloud.nodes() if n.host != source)
    assert _usage(cloud, source) == _size(FLAVORS["m1.small"])
    assert _usage(cloud, dest) == _size(FLAVORS["m1.large"])


# -- live migration ------------------------------------------------------------------
LIVE = [
    "instance.live_migration_pre.start",
    "instance.live_migration_pre.end",
    "instance.live_migration_post.start",
    "instance.live_migration_post_dest.start",
    "instance.live_migration_post_dest.end",
    "instance.live_migration_post.end",
]


def test_live_migration_success_and_stale_post_end() -> None:
    cloud = _cloud()
    inst = _booted(cloud, "c1.swap1536")
    source = inst.host or ""
    mark = _mark(cloud)
    cloud.play(lc.live_migrate(cloud, inst, random.Random(1)))
    assert _since(cloud, inst, mark) == LIVE
    dest = inst.host or ""
    assert dest != source
    pre = _notes(cloud, "instance.live_migration_pre.start")[0]
    assert pre["publisher_id"] == f"nova-compute:{dest}" and _data(pre)["host"] == source
    post_dest = _data(_notes(cloud, "instance.live_migration_post_dest.end")[0])
    assert (post_dest["host"], post_dest["node"]) == (dest, f"{dest}.example.org")
    post_end = _notes(cloud, "instance.live_migration_post.end")[0]
    assert post_end["publisher_id"] == f"nova-compute:{source}"
    assert _data(post_end)["host"] == source and _data(post_end)["task_state"] == "migrating"
    assert _usage(cloud, source) == (0, 0, 0)
    assert _usage(cloud, dest) == (2, 4096, 22)


def test_live_migration_pre_phase_holds_both() -> None:
    cloud = _cloud()
    inst = _booted(cloud)
    source = inst.host or ""
    cloud.play(lc.live_migrate(cloud, inst, random.Random(1), outcome="pre"))
    dest = next(n.host for n in cloud.nodes() if n.host != source)
    assert _usage(cloud, source) == _usage(cloud, dest) == _size(FLAVORS["m1.small"])
    nodes = cloud.oracle()["nodes"]
    assert nodes[f"{source}/{source}.example.org"]["running_vms"] == 1
    assert nodes[f"{dest}/{dest}.example.org"]["running_vms"] == 0


@pytest.mark.parametrize(
    "order,expected",
    [
        ("source_first", ["rollback.start", "rollback.end", "rollback_dest.start", "rollback_dest.end"]),
        ("dest_first", ["rollback.start", "rollback_dest.start", "rollback_dest.end", "rollback.end"]),
        ("interleaved", ["rollback.start", "rollback_dest.start", "rollback.end", "rollback_dest.end"]),
    ],
)
def test_live_migration_rollback(order: str, expected: list[str]) -> None:
    cloud = _cloud()
    inst = _booted(cloud)
    source = inst.host or ""
    mark = _mark(cloud)
    cloud.play(lc.live_migrate(cloud, inst, random.Random(1), "rollback", order))
    assert _since(cloud, inst, mark) == LIVE[:2] + [f"instance.live_migration_{e}" for e in expected]
    dest = next(n.host for n in cloud.nodes() if n.host != source)
    assert (
        _notes(cloud, "instance.live_migration_rollback_dest.end")[0]["publisher_id"]
        == f"nova-compute:{dest}"
    )
    assert inst.host == source
    assert _usage(cloud, source) == _size(FLAVORS["m1.small"])
    assert _usage(cloud, dest) == (0, 0, 0)


# -- evacuate / rebuild -------------------------------------------------------------------
EVACUATE = ["instance.evacuate", "instance.rebuild_scheduled", "instance.exists", "instance.rebuild.start"]


def test_evacuate_success() -> None:
    cloud = _cloud()
    inst = _booted(cloud)
    source = inst.host or ""
    mark = _mark(cloud)
    cloud.play(lc.evacuate(cloud, inst, random.Random(1)))
    assert _since(cloud, inst, mark) == [*EVACUATE, "instance.rebuild.end"]
    dest = inst.host or ""
    assert dest != source
    assert _notes(cloud, "instance.evacuate")[0]["publisher_id"] == "nova-api:api01"
    scheduled = _notes(cloud, "instance.rebuild_scheduled")[0]
    assert scheduled["publisher_id"] == f"nova-conductor:{dest}"
    assert _data(scheduled)["host"] == source
    end = _notes(cloud, "instance.rebuild.end")[0]
    assert end["publisher_id"] == f"nova-compute:{dest}" and _data(end)["host"] == source
    assert _usage(cloud, source) == (0, 0, 0)
    assert _usage(cloud, dest) == _size(FLAVORS["m1.small"])


def test_evacuate_in_progress_holds_both() -> None:
    cloud = _cloud()
    inst = _booted(cloud)
    source = inst.host or ""
    cloud.play(lc.evacuate(cloud, inst, random.Random(1), stop_after_start=True))
    dest = next(n.host for n in cloud.nodes() if n.host != source)
    assert _usage(cloud, source) == _usage(cloud, dest) == _size(FLAVORS["m1.small"])


def test_evacuate_failure_stays_on_source() -> None:
    cloud = _cloud()
    inst = _booted(cloud)
    source = inst.host or ""
    mark = _mark(cloud)
    cloud.play(lc.evacuate(cloud, inst, random.Random(1), fail=True))
    assert _since(cloud, inst, mark) == [*EVACUATE, "instance.rebuild.error"]
    assert _notes(cloud, "instance.rebuild.error")[0]["priority"] == "ERROR"
    assert inst.vm_state == "error" and inst.host == source
    dest = next(n.host for n in cloud.nodes() if n.host != source)
    assert _usage(cloud, source) == _size(FLAVORS["m1.small"])
    assert _usage(cloud, dest) == (0, 0, 0)


def test_plain_rebuild_same_host() -> None:
    cloud = _cloud()
    inst = _booted(cloud)
    host = inst.host or ""
    mark = _mark(cloud)
    cloud.play(lc.rebuild(cloud, inst, random.Random(1)))
    assert _since(cloud, inst, mark) == [
        "instance.rebuild_scheduled",
        "instance.exists",
        "instance.rebuild.start",
        "instance.rebuild.end",
    ]
    assert _notes(cloud, "instance.rebuild_scheduled")[0]["publisher_id"] == (f"nova-conductor:{host}")
    assert _usage(cloud, host) == _size(FLAVORS["m1.small"])


# -- shelve / soft delete / stats-only --------------------------------------------------------
def test_shelve_keeps_usage_offload_frees() -> None:
    cloud = _cloud()
    inst = _booted(cloud)
    host = inst.host or ""
    mark = _mark(cloud)
    cloud.play(lc.shelve(cloud, inst, random.Random(1), offload=False))
    assert _since(cloud, inst, mark) == ["instance.exists", "instance.shelve.start", "instance.shelve.end"]
    assert inst.vm_state == "shelved" and _usage(cloud, host) == _size(FLAVORS["m1.small"])
    cloud.play(lc.shelve_offload(cloud, inst, random.Random(1)))
    end = _notes(cloud, "instance.shelve_offload.end")[0]
    assert end["publisher_id"] == f"nova-compute:{host}"
    assert _data(end)["host"] is None and _data(end)["node"] is None
    assert _data(end)["state"] == "shelved_offloaded"
    assert _usage(cloud, host) == (0, 0, 0)
    assert cloud.oracle()["projects"][inst.project_id]["instances"] == 0


def test_shelve_with_offload_then_unshelve() -> None:
    cloud = _cloud()
    inst = _booted(cloud, "c1.swap512")
    mark = _mark(cloud)
    cloud.play(lc.shelve(cloud, inst, random.Random(1)))
    cloud.play(lc.unshelve(cloud, inst, random.Random(5)))
    assert _since(cloud, inst, mark) == [
        "instance.exists",
        "instance.shelve.start",
        "instance.shelve.end",
        "instance.shelve_offload.start",
        "instance.shelve_offload.end",
        "instance.unshelve.start",
        "instance.unshelve.end",
    ]
    start = _data(_notes(cloud, "instance.unshelve.start")[0])
    assert start["host"] is None and start["task_state"] == "unshelving"
    end = _notes(cloud, "instance.unshelve.end")[0]
    assert _data(end)["host"] == inst.host and end["publisher_id"] == f"nova-compute:{inst.host}"
    assert _usage(cloud, inst.host or "") == (2, 2048, 21)


def test_soft_delete_counts_then_reclaim_frees() -> None:
    cloud = _cloud()
    inst = _booted(cloud)
    host = inst.host or ""
    cloud.play(lc.soft_delete(cloud, inst, random.Random(1)))
    assert inst.vm_state == "soft-delete" and _usage(cloud, host) == _size(FLAVORS["m1.small"])
    mark = _mark(cloud)
    cloud.play(lc.restore(cloud, inst, random.Random(1)))
    cloud.play(lc.soft_delete(cloud, inst, random.Random(1)))
    cloud.play(lc.reclaim(cloud, inst, random.Random(1)))
    assert _since(cloud, inst, mark) == [
        "instance.restore.start",
        "instance.restore.end",
        "instance.soft_delete.start",
        "instance.soft_delete.end",
        "instance.delete.start",
        "instance.shutdown.start",
        "instance.shutdown.end",
        "instance.delete.end",
    ]
    assert _data(_notes(cloud, "instance.delete.end")[0])["request_id"] is None
    assert _usage(cloud, host) == (0, 0, 0)


@pytest.mark.parametrize(
    "pair", [("power_off", "power_on"), ("pause", "unpause"), ("suspend", "resume"), ("reboot", None)]
)
def test_stats_only_actions_keep_usage(pair: tuple[str, str | None]) -> None:
    cloud = _cloud()
    inst = _booted(cloud)
    host = inst.host or ""
    mark = _mark(cloud)
    for action in pair:
        if action:
            cloud.play(lc.simple_action(cloud, inst, random.Random(1), action))
            assert _usage(cloud, host) == _size(FLAVORS["m1.small"])
    expected = [f"instance.{a}.{p}" for a in pair if a for p in ("start", "end")]
    assert _since(cloud, inst, mark) == expected


def test_rescue_lock_snapshot() -> None:
    cloud = _cloud()
    inst = _booted(cloud)
    mark = _mark(cloud)
    cloud.play(lc.rescue(cloud, inst, random.Random(1)))
    cloud.play(lc.simple_action(cloud, inst, random.Random(1), "unrescue"))
    cloud.play(lc.lock(cloud, inst, random.Random(1)))
    cloud.play(lc.lock(cloud, inst, random.Random(1), locked=False))
    cloud.play(lc.snapshot(cloud, inst, random.Random(1)))
    assert _since(cloud, inst, mark) == [
        "instance.rescue.start",
        "instance.exists",
        "instance.rescue.end",
        "instance.unrescue.start",
        "instance.unrescue.end",
        "instance.lock",
        "instance.unlock",
        "instance.snapshot.start",
        "instance.snapshot.end",
    ]
    assert _notes(cloud, "instance.lock")[0]["publisher_id"] == "nova-api:api01"
    assert _notes(cloud, "instance.snapshot.end")[0]["payload"]["nova_object.name"] == (
        "InstanceActionSnapshotPayload"
    )


# -- instance.update ------------------------------------------------------------------
def test_state_change_updates() -> None:
    cloud = _cloud()
    inst = _booted(cloud)
    updates = [n for n in map(inner, cloud.messages) if n["event_type"] == "instance.update"]
    assert updates[0]["publisher_id"] == "nova-conductor:ctl01"
    transitions = [
        (
            _data(n)["state_update"]["nova_object.data"]["old_task_state"],
            _data(n)["state_update"]["nova_object.data"]["new_task_state"],
            _data(n)["host"],
        )
        for n in updates
    ]
    assert transitions == [
        ("scheduling", "scheduling", None),
        ("scheduling", None, None),
        (None, None, inst.host),
        (None, "networking", inst.host),
        ("networking", "block_device_mapping", inst.host),
        ("block_device_mapping", "spawning", inst.host),
        ("spawning", None, inst.host),
    ]
    last = _data(updates[-1])["state_update"]["nova_object.data"]
    assert (last["old_state"], last["state"]) == ("building", "active")


def test_no_updates_when_state_change_off() -> None:
    cloud = _cloud(notify_on_state_change=None)
    _booted(cloud)
    assert not [n for n in map(inner, cloud.messages) if n["event_type"] == "instance.update"]


# -- the random driver -------------------------------------------------------------------
def _run(fmt: str = "versioned", instances: int = 40, seed: int = 11) -> Cloud:
    cloud = Cloud(seed=seed, hosts=6, fmt=fmt)
    cloud.run(instances, random.Random(seed))
    return cloud


def _uuid_of(note: dict[str, Any]) -> str:
    payload = note["payload"]
    data = payload.get("nova_object.data", {})
    return str(data.get("uuid") or data.get("instance_uuid") or payload.get("instance_id"))


def test_timestamps_strictly_increase_and_format() -> None:
    cloud = _run()
    notes = [inner(m) for m in cloud.messages]
    stamps = [n["timestamp"] for n in notes]
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
    assert all(len(s) == 26 and s[10] == " " and "T" not in s for s in stamps)
    per_instance: dict[str, list[str]] = {}
    for note in notes:
        per_instance.setdefault(_uuid_of(note), []).append(note["timestamp"])
    assert all(v == sorted(v) for v in per_instance.values())
    assert len({n["message_id"] for n in notes}) == len(notes)
    assert len({n["_unique_id"] for n in notes}) == len(notes)


def test_run_interleaves_and_is_reproducible() -> None:
    first, second = _run(), _run()
    assert [m["body"] for m in first.messages] == [m["body"] for m in second.messages]
    assert first.oracle() == second.oracle()
    uuids = [_uuid_of(inner(m)) for m in first.messages]
    switches = sum(1 for a, b in itertools.pairwise(uuids) if a != b)
    assert switches > len(set(uuids)) * 2


def test_run_oracle_is_consistent() -> None:
    cloud = _run(instances=60)
    oracle = cloud.oracle()
    for key in ("vcpus", "memory_mb", "local_gb"):
        assert sum(r[key] for r in oracle["nodes"].values()) == sum(
            p[key] for p in oracle["projects"].values()
        )
    assert sum(r["running_vms"] for r in oracle["nodes"].values()) == sum(
        p["instances"] for p in oracle["projects"].values()
    )
    assert {f"{n['host']}/{n['node']}" for n in cloud.inventory()} == set(oracle["nodes"])
    moving = [i for i in cloud.state.instances.values() if i.move is not None]
    assert moving, "the run should leave some moves open"


def test_envelope_shape() -> None:
    cloud = _run(instances=5)
    for message in cloud.messages:
        assert set(message["body"]) == {"oslo.version", "oslo.message"}
        assert message["body"]["oslo.version"] == "2.0"
        note = inner(message)
        assert message["routing_key"] == "versioned_notifications." + note["priority"].lower()
        assert note["_context_auth_token"].startswith("gAAAA") or note["_context_user"] is None
        payload = note["payload"]
        assert payload["nova_object.namespace"] == "nova"
        assert "nova_object.changes" not in payload


def test_shuffle_bounded_by_window() -> None:
    cloud = _run(instances=10)
    messages = cloud.messages
    shuffled = shuffle_within_window(messages, 5, random.Random(3))
    position = {id(m): i for i, m in enumerate(messages)}
    moves = [abs(position[id(m)] - i) for i, m in enumerate(shuffled)]
    assert max(moves) <= 5 and any(moves)
    assert sorted(map(id, shuffled)) == sorted(map(id, messages))


def test_duplicates_are_exact_copies_later() -> None:
    cloud = _run(instances=10)
    duplicated = with_duplicates(cloud.messages, 0.1, random.Random(3))
    assert len(duplicated) > len(cloud.messages)
    seen: dict[str, int] = {}
    for i, message in enumerate(duplicated):
        note_id = inner(message)["message_id"]
        if note_id in seen:
            assert message == duplicated[seen[note_id]] and i > seen[note_id]
        else:
            seen[note_id] = i
    assert len(seen) == len(cloud.messages)


# -- legacy format ---------------------------------------------------------------------------
def test_legacy_names_payload_and_routing() -> None:
    cloud = _cloud("legacy")
    inst = _booted(cloud, "c1.swap1536")
    cloud.play(lc.resize(cloud, inst, random.Random(2), FLAVORS["m1.large"]))
    cloud.play(lc.confirm_resize(cloud, inst, random.Random(2)))
    cloud.play(lc.live_migrate(cloud, inst, random.Random(2)))
    assert [e for e in _events(cloud, inst) if "live" not in e] == [
        "compute.instance.create.start",
        "compute.instance.create.end",
        "compute.instance.exists",
        "compute.instance.resize.prep.start",
        "compute.instance.resize.prep.end",
        "compute.instance.resize.start",
        "compute.instance.resize.end",
        "compute.instance.finish_resize.start",
        "compute.instance.finish_resize.end",
        "compute.instance.resize.confirm.start",
        "compute.instance.resize.confirm.end",
    ]
    assert [e for e in _events(cloud, inst) if "live" in e] == [
        "compute.instance.live_migration.pre.start",
        "compute.instance.live_migration.pre.end",
        "compute.instance.live_migration._post.start",
        "compute.instance.live_migration.post.dest.start",
        "compute.instance.live_migration.post.dest.end",
        "compute.instance.live_migration._post.end",
    ]
    end = _notes(cloud, "compute.instance.create.end")[0]
    assert end["publisher_id"] == f"compute.{end['payload']['host']}"
    payload = end["payload"]
    assert payload["instance_id"] == inst.uuid and "swap" not in payload
    assert (payload["memory_mb"], payload["vcpus"], payload["root_gb"], payload["disk_gb"]) == (
        4096,
        2,
        20,
        20,
    )
    assert payload["instance_type"] == "c1.swap1536"
    prep_end = _notes(cloud, "compute.instance.resize.prep.end")[0]["payload"]
    assert prep_end["new_instance_type"] == "m1.large" and prep_end["instance_type"] == ("c1.swap1536")
    assert all(m["routing_key"].startswith("notifications.") for m in cloud.messages)


def test_legacy_error_priority_and_update_publishers() -> None:
    cloud = _cloud("legacy")
    inst = cloud.new_instance(FLAVORS["m1.small"], volume_backed=False)
    cloud.play(lc.build(cloud, inst, random.Random(3), failures=1))
    error = _notes(cloud, "compute.instance.create.error")[0]
    assert (
        error["priority"] == "ERROR"
        and cloud.messages[
            [inner(m)["event_type"] for m in cloud.messages].index("compute.instance.create.error")
        ]["routing_key"]
        == "notifications.error"
    )
    updates = _notes(cloud, "compute.instance.update")
    assert updates[0]["publisher_id"] == "conductor.ctl01"
    assert updates[-1]["payload"]["state"] == "active"


def test_delete_while_compute_down_from_api() -> None:
    for fmt, publisher in (("versioned", "nova-api:api01"), ("legacy", "compute.api01")):
        cloud = _cloud(fmt)
        inst = _booted(cloud)
        host = inst.host
        mark = _mark(cloud)
        cloud.play(lc.delete_compute_down(cloud, inst, random.Random(1)))
        prefix = "instance" if fmt == "versioned" else "compute.instance"
        assert _since(cloud, inst, mark) == [f"{prefix}.delete.start", f"{prefix}.delete.end"]
        end = _notes(cloud, f"{prefix}.delete.end")[0]
        payload = _data(end) if fmt == "versioned" else end["payload"]
        assert end["publisher_id"] == publisher and payload["host"] == host
        assert payload["state"] == "deleted"
        assert all(r["vcpus"] == 0 for r in cloud.oracle()["nodes"].values())


def test_multiple_nodes_per_host() -> None:
    cloud = Cloud(seed=5, hosts=2, nodes_per_host=2)
    assert [n.node for n in cloud.nodes()] == ["cmp01-n1", "cmp01-n2", "cmp02-n1", "cmp02-n2"]
    inst = _booted(cloud)
    source = f"{inst.host}/{inst.node}"
    cloud.play(lc.live_migrate(cloud, inst, random.Random(1), outcome="pre"))
    nodes = cloud.oracle()["nodes"]
    held = [k for k, r in nodes.items() if r["vcpus"]]
    assert len(held) == 2 and source in held
    assert {k.split("/")[0] for k in held} == {"cmp01", "cmp02"}
    assert {"host", "node", "vcpus", "memory_mb", "local_gb"} == set(cloud.inventory()[0])
    assert {"flavorid", "name", "vcpus", "memory_mb", "root_gb", "ephemeral_gb", "swap"} == set(
        cloud.flavors()[0]
    )


def test_legacy_run_oracle_matches_versioned_run() -> None:
    versioned, legacy = _run("versioned"), _run("legacy")
    assert versioned.oracle() == legacy.oracle()


def test_build_when_cloud_is_full() -> None:
    cloud = _cloud()
    huge = Flavor(99, "huge", "huge", 1, 10**7, 1)
    inst = cloud.new_instance(huge, volume_backed=False)
    cloud.play(lc.build(cloud, inst, random.Random(1)))
    assert _events(cloud, inst) == ["compute_task.build_instances.error"]
    error = inner(cloud.messages[-1])
    assert error["priority"] == "ERROR" and error["publisher_id"] == "nova-conductor:ctl01"
    assert _events(cloud, inst, updates=True)[0] == "instance.update"
    assert inst.vm_state == "error" and inst.host is None
