"""Instance lifecycles, each emitting Nova's exact notification sequence.

Every lifecycle is a generator: it mutates the simulated instance, emits
notifications through ``Cloud.notify``/``Cloud.save`` and yields a delay (in
seconds) wherever Nova would hand work to another service, so ``Cloud.drive``
can interleave instances.  Lifecycles return True/False (``yield from``) when
the caller needs to know whether the operation succeeded.

Payload host/node are whatever ``instance.host``/``node`` hold at emit time,
which is why many move notifications carry the *source*; the emitting host is
only in publisher_id.  Each function's docstring lists the versioned sequence.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Generator, Iterator
from typing import TYPE_CHECKING

from cloudsim.context import Context
from cloudsim.envelope import rand_uuid
from cloudsim.flavors import CATALOGUE, Flavor
from cloudsim.nova import Instance, Move, Node
from cloudsim.payloads import Extras, Fault

if TYPE_CHECKING:
    from cloudsim.cloud import Cloud

Step = Generator[float, None, bool]
Story = Iterator[float]
COMPUTE, API, CONDUCTOR = "nova-compute", "nova-api", "nova-conductor"
BDMS = Extras(with_bdms=True)
BUILD_FAULTS = (
    Fault(
        "ComputeResourcesUnavailable",
        "Insufficient compute resources: Claim pci failed.",
        "_build_and_run_instance",
    ),
    Fault(
        "RescheduledException",
        "Build of instance was re-scheduled: internal error: process exited while connecting to monitor",
        "_do_build_and_run_instance",
    ),
)
MAX_RETRIES = Fault(
    "MaxRetriesExceeded",
    "Exceeded maximum number of retries. Exhausted all hosts available for retrying build failures.",
    "build_instances",
    "nova.conductor.manager",
)
NO_VALID_HOST = Fault(
    "NoValidHost", "No valid host was found. ", "select_destinations", "nova.conductor.manager"
)


def pause(rng: random.Random, low: float = 0.2, high: float = 2.0) -> float:
    """Time until the next service picks the work up."""
    return rng.uniform(low, high)


def _node_of(cloud: Cloud, inst: Instance) -> Node:
    """The Node the instance row points at."""
    assert inst.host is not None and inst.node is not None
    return cloud.state.node_by_name(inst.host, inst.node)


def _api_save(cloud: Cloud, inst: Instance, ctx: Context, **changes: object) -> None:
    """An ``instance.save()`` done by nova-api."""
    cloud.save(inst, source=API, pub=cloud.api_host, ctx=ctx, **changes)


def _conductor_save(cloud: Cloud, inst: Instance, ctx: Context, **changes: object) -> None:
    """An ``instance.save()`` done by nova-conductor."""
    cloud.save(inst, source=CONDUCTOR, pub=cloud.conductor_host, ctx=ctx, **changes)


def _no_valid_host(
    cloud: Cloud,
    inst: Instance,
    ctx: Context,
    method: str,
    fault: Fault = NO_VALID_HOST,
    **updates: object,
) -> None:
    """Conductor's set_vm_state_and_notify after NoValidHost / MaxRetriesExceeded."""
    _conductor_save(cloud, inst, ctx, **updates)
    cloud.compute_task_error(inst, method, ctx, fault)


# -- build ---------------------------------------------------------------------
def build(cloud: Cloud, inst: Instance, rng: random.Random, failures: int = 0, max_attempts: int = 3) -> Step:
    """Boot: conductor update, then per attempt on a compute host
    ``create.start`` .. ``create.end`` (or ``create.error`` and reschedule).
    After ``max_attempts`` failures or with no host left: conductor sets
    vm_state error and sends ``compute_task.build_instances.error``; with no
    host at all (cloud full) that error is the only notification.
    """
    ctx = cloud.user_ctx(inst)
    tried: set[str] = set()
    for attempt in range(max_attempts):
        node = cloud.state.pick_node(inst.flavor, inst.volume_backed, rng, tried)
        if node is None:
            break
        if attempt == 0:  # schedule_and_build_instances, once a host was selected
            inst.availability_zone = "nova"
            _conductor_save(cloud, inst, ctx)  # send_update_with_states(service=conductor)
        yield pause(rng)
        if (yield from _build_on(cloud, inst, node, ctx, rng, fail=attempt < failures)):
            return True
        tried.add(node.host)
        cloud.save(inst, source=COMPUTE, pub=node.host, ctx=ctx, task_state="scheduling")
        yield pause(rng)
    fault = MAX_RETRIES if tried else NO_VALID_HOST
    _no_valid_host(cloud, inst, ctx, "build_instances", fault, vm_state="error", task_state=None)
    return False


def _build_on(cloud: Cloud, inst: Instance, node: Node, ctx: Context, rng: random.Random, fail: bool) -> Step:
    """``_do_build_and_run_instance`` on one compute host."""
    host = node.host
    cloud.save(inst, source=COMPUTE, pub=host, ctx=ctx, vm_state="building", task_state=None)
    image_name = "" if inst.volume_backed else "ubuntu-24.04-server"
    cloud.notify(
        inst,
        "create",
        "start",
        source=COMPUTE,
        host=host,
        ctx=ctx,
        kind="create",
        extras=dataclasses.replace(BDMS, legacy={"image_name": image_name}),
    )
    yield pause(rng, 0.05, 0.5)
    cloud.save(inst, source=COMPUTE, pub=host, ctx=ctx, host=host, node=node.node)  # claim
    if fail:
        yield pause(rng, 0.5, 3.0)
        cloud.save(inst, source=COMPUTE, pub=host, ctx=ctx, host=None, node=None)  # abort
        fault = rng.choice(BUILD_FAULTS)
        cloud.notify(
            inst,
            "create",
            "error",
            source=COMPUTE,
            host=host,
            ctx=ctx,
            kind="create",
            extras=dataclasses.replace(BDMS, fault=fault),
        )
        return False
    yield from _spawn(cloud, inst, host, ctx, rng)
    legacy = {"message": "Success", "fixed_ips": _fixed_ips(inst)}
    cloud.notify(
        inst,
        "create",
        "end",
        source=COMPUTE,
        host=host,
        ctx=ctx,
        kind="create",
        extras=dataclasses.replace(BDMS, legacy=legacy),
    )
    return True


def _fixed_ips(inst: Instance) -> list[dict[str, object]]:
    """Legacy create.end ``fixed_ips`` (network_info is passed there)."""
    return [
        {
            "address": inst.ip_address,
            "floating_ips": [],
            "label": "private",
            "meta": {},
            "type": "fixed",
            "version": 4,
            "vif_mac": inst.mac,
        }
    ]


def _spawn(
    cloud: Cloud, inst: Instance, host: str, ctx: Context, rng: random.Random
) -> Generator[float, None, None]:
    """networking -> block_device_mapping -> spawning -> active saves."""
    cloud.save(inst, source=COMPUTE, pub=host, ctx=ctx, task_state="networking")
    yield pause(rng, 0.2, 1.5)
    ip = f"192.168.{rng.randint(0, 254)}.{rng.randint(2, 254)}"
    port = str(rand_uuid(rng))
    mac = "fa:16:3e:" + ":".join(f"{rng.randint(0, 255):02x}" for _ in range(3))
    cloud.save(
        inst,
        source=COMPUTE,
        pub=host,
        ctx=ctx,
        task_state="block_device_mapping",
        ip_address=ip,
        port_id=port,
        mac=mac,
    )
    cloud.save(inst, source=COMPUTE, pub=host, ctx=ctx, task_state="spawning")
    yield pause(rng, 2.0, 8.0)
    cloud.save(
        inst,
        source=COMPUTE,
        pub=host,
        ctx=ctx,
        vm_state="active",
        task_state=None,
        power_state="running",
        launched_at=cloud.now().replace(microsecond=0),
    )


# -- delete / soft delete / restore -----------------------------------------------
def delete(cloud: Cloud, inst: Instance, rng: random.Random) -> Step:
    """User delete.  On a compute: api update (deleting), then from the
    compute ``delete.start``, ``shutdown.start``, ``shutdown.end``,
    update (deleted), ``delete.end``.  With no host (never scheduled,
    shelved_offloaded): ``_local_delete`` in nova-api, delete.start/.end.
    """
    ctx = cloud.user_ctx(inst)
    _api_save(cloud, inst, ctx, task_state="deleting")
    if inst.host is None:
        local_delete(cloud, inst, ctx)
        return True
    yield pause(rng, 0.1, 1.0)
    yield from _delete_on_compute(cloud, inst, inst.host, ctx, rng)
    return True


def local_delete(cloud: Cloud, inst: Instance, ctx: Context) -> None:
    """``compute.API._local_delete``: notifications from nova-api only.

    Used when the instance was never scheduled or its compute is down; the
    payload host/node are whatever the row holds (None if never scheduled).
    """
    cloud.notify(inst, "delete", "start", source=API, host=cloud.api_host, ctx=ctx)
    now = cloud.now().replace(microsecond=0)
    inst.vm_state, inst.task_state, inst.power_state = "deleted", None, "pending"
    inst.terminated_at = inst.deleted_at = now
    inst.ip_address = None  # deallocate_for_instance
    inst.move = None
    cloud.notify(inst, "delete", "end", source=API, host=cloud.api_host, ctx=ctx)


def _delete_on_compute(
    cloud: Cloud, inst: Instance, host: str, ctx: Context, rng: random.Random
) -> Generator[float, None, None]:
    """``ComputeManager._delete_instance``."""
    cloud.notify(inst, "delete", "start", source=COMPUTE, host=host, ctx=ctx, extras=BDMS)
    cloud.notify(inst, "shutdown", "start", source=COMPUTE, host=host, ctx=ctx, extras=BDMS)
    yield pause(rng, 0.5, 3.0)
    cloud.notify(inst, "shutdown", "end", source=COMPUTE, host=host, ctx=ctx, extras=BDMS)
    now = cloud.now().replace(microsecond=0)
    cloud.save(
        inst,
        source=COMPUTE,
        pub=host,
        ctx=ctx,
        vm_state="deleted",
        task_state=None,
        power_state="pending",
        terminated_at=now,
        ip_address=None,
    )
    inst.deleted_at = now  # instance.destroy()
    cloud.notify(inst, "delete", "end", source=COMPUTE, host=host, ctx=ctx, extras=BDMS)


def delete_compute_down(cloud: Cloud, inst: Instance, rng: random.Random) -> Step:
    """Delete while the compute service is down: api update (deleting),
    then ``delete.start``/``delete.end`` from nova-api with host/node still set.
    """
    ctx = cloud.user_ctx(inst)
    _api_save(cloud, inst, ctx, task_state="deleting")
    yield pause(rng, 0.05, 0.3)
    local_delete(cloud, inst, ctx)
    return True


def soft_delete(cloud: Cloud, inst: Instance, rng: random.Random) -> Step:
    """api update (soft-deleting); compute ``soft_delete.start``, update
    (soft-delete), ``soft_delete.end``.  The instance still counts."""
    ctx = cloud.user_ctx(inst)
    _api_save(cloud, inst, ctx, task_state="soft-deleting", deleted_at=cloud.now().replace(microsecond=0))
    yield pause(rng)
    host = inst.host or cloud.api_host
    cloud.notify(inst, "soft_delete", "start", source=COMPUTE, host=host, ctx=ctx)
    cloud.save(
        inst,
        source=COMPUTE,
        pub=host,
        ctx=ctx,
        vm_state="soft-delete",
        task_state=None,
        power_state="shutdown",
    )
    cloud.notify(inst, "soft_delete", "end", source=COMPUTE, host=host, ctx=ctx)
    return True


def restore(cloud: Cloud, inst: Instance, rng: random.Random) -> Step:
    """api update (restoring); compute ``restore.start``, update (active),
    ``restore.end``."""
    ctx = cloud.user_ctx(inst)
    _api_save(cloud, inst, ctx, task_state="restoring", deleted_at=None)
    yield pause(rng)
    host = _node_of(cloud, inst).host
    cloud.notify(inst, "restore", "start", source=COMPUTE, host=host, ctx=ctx)
    cloud.save(
        inst, source=COMPUTE, pub=host, ctx=ctx, vm_state="active", task_state=None, power_state="running"
    )
    cloud.notify(inst, "restore", "end", source=COMPUTE, host=host, ctx=ctx)
    return True


def reclaim(cloud: Cloud, inst: Instance, rng: random.Random) -> Step:
    """Periodic ``_reclaim_queued_deletes`` on the compute (admin context):
    ``delete.start``, ``shutdown.start``, ``shutdown.end``, update (deleted),
    ``delete.end``."""
    yield pause(rng, 5.0, 20.0)
    yield from _delete_on_compute(cloud, inst, _node_of(cloud, inst).host, cloud.periodic_ctx(), rng)
    return True


# -- resize / cold migration ---------------------------------------------------------
def resize(
    cloud: Cloud,
    inst: Instance,
    rng: random.Random,
    new_flavor: Flavor | None = None,
    same_host: bool = False,
    prep_failures: int = 0,
    admin: bool = False,
    stop_after_prep: bool = False,
) -> Step:
    """Resize (or cold migration when ``new_flavor`` is the current flavor)
    up to vm_state ``resized``: api update (resize_prep); per dest attempt
    ``exists``, ``resize_prep.start``, [``resize.error`` on a failed claim,
    rescheduled], ``resize_prep.end`` (dest); ``resize.start``,
    ``resize.end`` (source; payload host switches to dest before end);
    ``resize_finish.start``, ``resize_finish.end`` (dest, new flavor).
    Returns False (instance back to active, ``compute_task.migrate_server.error``)
    when no host is left.  ``stop_after_prep`` leaves the dest claim open.
    """
    ctx = cloud.admin_ctx() if admin else cloud.user_ctx(inst)
    new = new_flavor or inst.flavor
    source = _node_of(cloud, inst)
    _api_save(cloud, inst, ctx, task_state="resize_prep")
    dest = yield from _resize_prep(cloud, inst, rng, ctx, new, same_host, prep_failures)
    if dest is None:
        _no_valid_host(cloud, inst, ctx, "migrate_server", vm_state=inst.vm_state, task_state=None)
        return False
    if stop_after_prep:
        return True
    yield pause(rng, 0.1, 1.0)
    yield from _resize_instance(cloud, inst, rng, ctx, source, dest)
    yield pause(rng, 0.1, 1.0)
    yield from _finish_resize(cloud, inst, rng, ctx, dest, new)
    return True


def _resize_prep(
    cloud: Cloud,
    inst: Instance,
    rng: random.Random,
    ctx: Context,
    new: Flavor,
    same_host: bool,
    failures: int,
) -> Generator[float, None, Node | None]:
    """Scheduling plus ``prep_resize`` on each candidate dest."""
    source = _node_of(cloud, inst)
    tried: set[str] = set() if same_host else {source.host}
    for attempt in range(3):
        dest = source if same_host else cloud.state.pick_node(new, inst.volume_backed, rng, tried)
        if dest is None:
            return None
        yield pause(rng)
        cloud.exists(inst, dest.host, ctx)
        _prep_notify(cloud, inst, ctx, dest.host, "start", new)
        if attempt >= failures:
            inst.new_flavor = new
            inst.move = Move(
                "resize", source, dest, inst.flavor, new, holds=[(source, inst.flavor), (dest, new)]
            )
            _prep_notify(cloud, inst, ctx, dest.host, "end", new)
            return dest
        yield pause(rng, 0.1, 0.5)
        cloud.save(inst, source=COMPUTE, pub=dest.host, ctx=ctx, task_state="resize_prep")
        fault = Fault(
            "ComputeResourcesUnavailable",
            "Insufficient compute resources: Free memory too low.",
            "prep_resize",
        )
        cloud.notify(
            inst, "resize", "error", source=COMPUTE, host=dest.host, ctx=ctx, extras=Extras(fault=fault)
        )
        _prep_notify(cloud, inst, ctx, dest.host, "end", new)
        if same_host:
            return None
        tried.add(dest.host)
    return None


def _prep_notify(cloud: Cloud, inst: Instance, ctx: Context, host: str, phase: str, new: Flavor) -> None:
    """resize_prep.<phase>; legacy end carries new_instance_type(_id)."""
    legacy = {"new_instance_type": new.name, "new_instance_type_id": new.id}
    cloud.notify(
        inst,
        "resize_prep",
        phase,
        source=COMPUTE,
        host=host,
        ctx=ctx,
        kind="resize_prep",
        extras=Extras(new_flavor=new, legacy=legacy if phase == "end" else None),
    )


def _resize_instance(
    cloud: Cloud, inst: Instance, rng: random.Random, ctx: Context, source: Node, dest: Node
) -> Generator[float, None, None]:
    """``resize_instance`` on the source."""
    cloud.save(inst, source=COMPUTE, pub=source.host, ctx=ctx, task_state="resize_migrating")
    cloud.notify(inst, "resize", "start", source=COMPUTE, host=source.host, ctx=ctx, extras=BDMS)
    yield pause(rng, 1.0, 6.0)
    cloud.save(
        inst,
        source=COMPUTE,
        pub=source.host,
        ctx=ctx,
        host=dest.host,
        node=dest.node,
        old_flavor=inst.flavor,
        task_state="resize_migrated",
        power_state="shutdown",
    )
    cloud.notify(inst, "resize", "end", source=COMPUTE, host=source.host, ctx=ctx, extras=BDMS)


def _finish_resize(
    cloud: Cloud, inst: Instance, rng: random.Random, ctx: Context, dest: Node, new: Flavor
) -> Generator[float, None, None]:
    """``finish_resize`` on the dest: applies the new flavor."""
    cloud.save(inst, source=COMPUTE, pub=dest.host, ctx=ctx, flavor=new, task_state="resize_finish")
    cloud.notify(inst, "resize_finish", "start", source=COMPUTE, host=dest.host, ctx=ctx, extras=BDMS)
    yield pause(rng, 1.0, 4.0)
    cloud.save(
        inst,
        source=COMPUTE,
        pub=dest.host,
        ctx=ctx,
        vm_state="resized",
        task_state=None,
        power_state="running",
        launched_at=cloud.now().replace(microsecond=0),
    )
    cloud.notify(inst, "resize_finish", "end", source=COMPUTE, host=dest.host, ctx=ctx, extras=BDMS)


def confirm_resize(cloud: Cloud, inst: Instance, rng: random.Random) -> Step:
    """From the source: ``resize_confirm.start`` (payload host = dest),
    source drops the old-flavor claim, update (active), ``resize_confirm.end``."""
    assert inst.move is not None
    ctx = cloud.user_ctx(inst)
    yield pause(rng, 0.2, 2.0)
    source = inst.move.source.host
    cloud.notify(inst, "resize_confirm", "start", source=COMPUTE, host=source, ctx=ctx)
    yield pause(rng, 0.2, 1.0)
    inst.move = None  # drop_move_claim_at_source: only the dest row remains
    cloud.save(inst, source=COMPUTE, pub=source, ctx=ctx, vm_state="active", task_state=None)
    inst.old_flavor = inst.new_flavor = None
    cloud.notify(inst, "resize_confirm", "end", source=COMPUTE, host=source, ctx=ctx)
    return True


def revert_resize(cloud: Cloud, inst: Instance, rng: random.Random) -> Step:
    """api update (resize_reverting); dest ``exists`` and drop of the
    new-flavor claim; source ``resize_revert.start`` (payload host = dest,
    new flavor), updates back to source/old flavor, ``resize_revert.end``."""
    move = inst.move
    assert move is not None and inst.old_flavor is not None
    ctx = cloud.user_ctx(inst)
    _api_save(cloud, inst, ctx, task_state="resize_reverting")
    yield pause(rng)
    cloud.exists(inst, move.dest.host, ctx)
    move.holds = [(move.source, move.old_flavor)]  # drop_move_claim_at_dest
    yield pause(rng, 0.2, 1.0)
    src = move.source
    cloud.notify(inst, "resize_revert", "start", source=COMPUTE, host=src.host, ctx=ctx, extras=BDMS)
    yield pause(rng, 1.0, 4.0)
    cloud.save(
        inst,
        source=COMPUTE,
        pub=src.host,
        ctx=ctx,
        flavor=inst.old_flavor,
        host=src.host,
        node=src.node,
        launched_at=cloud.now().replace(microsecond=0),
    )
    inst.move = None
    cloud.save(
        inst, source=COMPUTE, pub=src.host, ctx=ctx, vm_state="active", task_state=None, power_state="running"
    )
    inst.old_flavor = inst.new_flavor = None
    cloud.notify(inst, "resize_revert", "end", source=COMPUTE, host=src.host, ctx=ctx, extras=BDMS)
    return True


# -- live migration ------------------------------------------------------------------
def live_migrate(
    cloud: Cloud,
    inst: Instance,
    rng: random.Random,
    outcome: str = "success",
    rollback_order: str = "source_first",
) -> Step:
    """Admin live migration: api update (migrating); dest
    ``live_migration_pre.start``/``.end`` (dest holds the flavor); then either
    ``outcome="success"``: ``live_migration_post.start`` (source),
    ``live_migration_post_dest.start``, update (host = dest),
    ``live_migration_post_dest.end`` (dest), ``live_migration_post.end``
    (source, stale payload: host = source, task migrating);
    or ``outcome="rollback"``: see ``_live_rollback``;
    or ``outcome="pre"``: stop right after pre.end (migration in progress).
    """
    ctx = cloud.admin_ctx()
    source = _node_of(cloud, inst)
    _api_save(cloud, inst, ctx, task_state="migrating")
    dest = cloud.state.pick_node(inst.flavor, inst.volume_backed, rng, {source.host})
    if dest is None:
        _no_valid_host(cloud, inst, ctx, "migrate_server", vm_state=inst.vm_state, task_state=None)
        return False
    yield pause(rng)
    inst.move = Move(
        "live-migration",
        source,
        dest,
        inst.flavor,
        inst.flavor,
        holds=[(source, inst.flavor), (dest, inst.flavor)],
    )
    cloud.notify(inst, "live_migration_pre", "start", source=COMPUTE, host=dest.host, ctx=ctx)
    yield pause(rng, 0.5, 2.0)
    cloud.notify(inst, "live_migration_pre", "end", source=COMPUTE, host=dest.host, ctx=ctx)
    if outcome == "pre":
        return True
    yield pause(rng, 2.0, 10.0)
    if outcome == "rollback":
        yield from _live_rollback(cloud, inst, rng, ctx, source, dest, rollback_order)
        return False
    yield from _live_post(cloud, inst, rng, ctx, source, dest)
    return True


def _live_post(
    cloud: Cloud, inst: Instance, rng: random.Random, ctx: Context, source: Node, dest: Node
) -> Generator[float, None, None]:
    """``_post_live_migration`` (source) and ``post_live_migration_at_destination``."""
    cloud.notify(inst, "live_migration_post", "start", source=COMPUTE, host=source.host, ctx=ctx)
    stale = dataclasses.replace(inst)  # the source's copy is never refreshed
    yield pause(rng, 0.2, 1.0)
    cloud.notify(inst, "live_migration_post_dest", "start", source=COMPUTE, host=dest.host, ctx=ctx)
    inst.move = None
    cloud.save(
        inst,
        source=COMPUTE,
        pub=dest.host,
        ctx=ctx,
        host=dest.host,
        node=dest.node,
        power_state="running",
        task_state=None,
    )
    cloud.notify(inst, "live_migration_post_dest", "end", source=COMPUTE, host=dest.host, ctx=ctx)
    yield pause(rng, 0.1, 0.5)
    cloud.notify(stale, "live_migration_post", "end", source=COMPUTE, host=source.host, ctx=ctx)


def _live_rollback(
    cloud: Cloud, inst: Instance, rng: random.Random, ctx: Context, source: Node, dest: Node, order: str
) -> Generator[float, None, None]:
    """``_rollback_live_migration``: ``rollback.start``, update (task None),
    then ``rollback.end`` (source) and ``rollback_dest.start``/``.end`` (dest)
    whose relative order is not defined (``order``: source_first,
    dest_first, interleaved).  The dest payload is stale (task migrating)."""
    cloud.notify(inst, "live_migration_rollback", "start", source=COMPUTE, host=source.host, ctx=ctx)
    stale = dataclasses.replace(inst)
    cloud.save(inst, source=COMPUTE, pub=source.host, ctx=ctx, task_state=None)
    yield pause(rng, 0.1, 0.5)
    src_end = ("live_migration_rollback", "end", source.host, inst)
    dst_start = ("live_migration_rollback_dest", "start", dest.host, stale)
    dst_end = ("live_migration_rollback_dest", "end", dest.host, stale)
    steps = {
        "source_first": [src_end, dst_start, dst_end],
        "dest_first": [dst_start, dst_end, src_end],
        "interleaved": [dst_start, src_end, dst_end],
    }[order]
    for action, phase, host, snapshot in steps:
        if (action, phase) == ("live_migration_rollback_dest", "end"):
            inst.move = None  # drop_move_claim on the dest
        cloud.notify(snapshot, action, phase, source=COMPUTE, host=host, ctx=ctx)
        yield pause(rng, 0.05, 0.3)


# -- evacuate / rebuild ------------------------------------------------------------------
def evacuate(
    cloud: Cloud, inst: Instance, rng: random.Random, fail: bool = False, stop_after_start: bool = False
) -> Step:
    """Evacuate from a failed host: api update (rebuilding), ``evacuate``
    (nova-api), ``rebuild_scheduled`` (nova-conductor, publisher host = dest),
    then on the dest ``exists``, ``rebuild.start`` (the claim ran before it),
    updates, ``rebuild.end`` (payload host still the source), update (host =
    dest, finish_evacuation).  ``fail``: ``rebuild.error`` then update (error),
    the instance stays on the source.
    """
    ctx = cloud.admin_ctx()
    source = _node_of(cloud, inst)
    _api_save(cloud, inst, ctx, task_state="rebuilding")
    cloud.notify(inst, "evacuate", None, source=API, host=cloud.api_host, ctx=ctx)
    dest = cloud.state.pick_node(inst.flavor, inst.volume_backed, rng, {source.host})
    if dest is None:
        _no_valid_host(cloud, inst, ctx, "rebuild_server", vm_state="error", task_state=None)
        return False
    yield pause(rng)
    cloud.notify(
        inst,
        "rebuild_scheduled",
        None,
        source=CONDUCTOR,
        host=dest.host,
        ctx=ctx,
        kind="rebuild",
        legacy_host=cloud.conductor_host,
    )
    yield pause(rng)
    inst.move = Move(
        "evacuation",
        source,
        dest,
        inst.flavor,
        inst.flavor,
        holds=[(source, inst.flavor), (dest, inst.flavor)],
    )  # rebuild_claim
    yield from _rebuild_body(cloud, inst, rng, ctx, dest.host, fail, stop_after_start)
    if fail or stop_after_start:
        return False
    inst.move = None
    cloud.save(inst, source=COMPUTE, pub=dest.host, ctx=ctx, host=dest.host, node=dest.node)
    return True


def rebuild(cloud: Cloud, inst: Instance, rng: random.Random) -> Step:
    """Rebuild in place with a new image: api update (rebuilding),
    ``rebuild_scheduled`` (conductor, publisher host = own host), ``exists``,
    ``rebuild.start``, updates, ``rebuild.end``.  NopClaim: usage unchanged."""
    ctx = cloud.user_ctx(inst)
    host = _node_of(cloud, inst).host
    _api_save(cloud, inst, ctx, task_state="rebuilding", image_ref=str(rand_uuid(rng)))
    yield pause(rng)
    cloud.notify(
        inst,
        "rebuild_scheduled",
        None,
        source=CONDUCTOR,
        host=host,
        ctx=ctx,
        kind="rebuild",
        legacy_host=cloud.conductor_host,
    )
    yield pause(rng)
    yield from _rebuild_body(cloud, inst, rng, ctx, host, False, False)
    return True


def _rebuild_body(
    cloud: Cloud,
    inst: Instance,
    rng: random.Random,
    ctx: Context,
    host: str,
    fail: bool,
    stop_after_start: bool,
) -> Generator[float, None, None]:
    """``_do_rebuild_instance`` on ``host`` (the evacuation dest)."""
    cloud.exists(inst, host, ctx)
    rebuild_extras = Extras(with_bdms=True)
    cloud.notify(
        inst, "rebuild", "start", source=COMPUTE, host=host, ctx=ctx, kind="rebuild", extras=rebuild_extras
    )
    cloud.save(inst, source=COMPUTE, pub=host, ctx=ctx, task_state="rebuilding")
    if stop_after_start:
        return
    yield pause(rng, 1.0, 5.0)
    if fail:
        fault = Fault(
            "VirtualInterfaceCreateException",
            "Virtual Interface creation failed",
            "_virtual_interface_create_failed",
        )
        cloud.notify(
            inst,
            "rebuild",
            "error",
            source=COMPUTE,
            host=host,
            ctx=ctx,
            kind="rebuild",
            extras=Extras(fault=fault, with_bdms=True),
        )
        inst.move = None  # the claim context manager aborts the dest claim
        cloud.save(inst, source=COMPUTE, pub=host, ctx=ctx, vm_state="error", task_state=None)
        return
    cloud.save(inst, source=COMPUTE, pub=host, ctx=ctx, task_state="rebuild_block_device_mapping")
    cloud.save(inst, source=COMPUTE, pub=host, ctx=ctx, task_state="rebuild_spawning")
    yield pause(rng, 2.0, 6.0)
    cloud.save(
        inst,
        source=COMPUTE,
        pub=host,
        ctx=ctx,
        vm_state="active",
        task_state=None,
        power_state="running",
        launched_at=cloud.now().replace(microsecond=0),
    )
    cloud.notify(
        inst, "rebuild", "end", source=COMPUTE, host=host, ctx=ctx, kind="rebuild", extras=rebuild_extras
    )


# -- shelve ----------------------------------------------------------------------------
def shelve(cloud: Cloud, inst: Instance, rng: random.Random, offload: bool = True) -> Step:
    """api update (shelving); compute ``exists``, ``shelve.start``, updates
    (image upload), update (shelved), ``shelve.end``; with ``offload``
    (shelved_offload_time = 0, Nova's default) the last save sets task
    shelving_offloading and ``shelve_offload`` follows immediately."""
    ctx = cloud.user_ctx(inst)
    host = _node_of(cloud, inst).host
    _api_save(cloud, inst, ctx, task_state="shelving")
    yield pause(rng)
    cloud.exists(inst, host, ctx)
    cloud.notify(inst, "shelve", "start", source=COMPUTE, host=host, ctx=ctx)
    cloud.save(inst, source=COMPUTE, pub=host, ctx=ctx, task_state="shelving_image_pending_upload")
    yield pause(rng, 1.0, 4.0)
    cloud.save(inst, source=COMPUTE, pub=host, ctx=ctx, task_state="shelving_image_uploading")
    yield pause(rng, 1.0, 4.0)
    cloud.save(
        inst,
        source=COMPUTE,
        pub=host,
        ctx=ctx,
        vm_state="shelved",
        task_state="shelving_offloading" if offload else None,
        power_state="shutdown",
    )
    cloud.notify(inst, "shelve", "end", source=COMPUTE, host=host, ctx=ctx)
    if offload:
        _offload(cloud, inst, host, ctx)
    return True


def shelve_offload(cloud: Cloud, inst: Instance, rng: random.Random) -> Step:
    """Offload of an already shelved instance: api update
    (shelving_offloading), then ``shelve_offload.start``/``.end``."""
    ctx = cloud.user_ctx(inst)
    host = _node_of(cloud, inst).host
    _api_save(cloud, inst, ctx, task_state="shelving_offloading")
    yield pause(rng)
    _offload(cloud, inst, host, ctx)
    return True


def _offload(cloud: Cloud, inst: Instance, host: str, ctx: Context) -> None:
    """``_shelve_offload_instance``: state first, then host/node nulled;
    ``shelve_offload.end`` therefore carries host/node None."""
    cloud.notify(inst, "shelve_offload", "start", source=COMPUTE, host=host, ctx=ctx)
    cloud.save(inst, source=COMPUTE, pub=host, ctx=ctx, vm_state="shelved_offloaded", task_state=None)
    cloud.save(inst, source=COMPUTE, pub=host, ctx=ctx, host=None, node=None, availability_zone=None)
    cloud.notify(inst, "shelve_offload", "end", source=COMPUTE, host=host, ctx=ctx)


def unshelve(cloud: Cloud, inst: Instance, rng: random.Random) -> Step:
    """api update (unshelving); dest ``unshelve.start`` (host None), update
    (spawning), update (claim sets host/node), update (active),
    ``unshelve.end``.  With no host: conductor resets task_state."""
    ctx = cloud.user_ctx(inst)
    _api_save(cloud, inst, ctx, task_state="unshelving")
    dest = cloud.state.pick_node(inst.flavor, inst.volume_backed, rng)
    if dest is None:
        _conductor_save(cloud, inst, ctx, task_state=None)
        return False
    yield pause(rng)
    cloud.notify(inst, "unshelve", "start", source=COMPUTE, host=dest.host, ctx=ctx)
    cloud.save(inst, source=COMPUTE, pub=dest.host, ctx=ctx, task_state="spawning")
    cloud.save(
        inst, source=COMPUTE, pub=dest.host, ctx=ctx, host=dest.host, node=dest.node, availability_zone="nova"
    )
    yield pause(rng, 2.0, 6.0)
    cloud.save(
        inst,
        source=COMPUTE,
        pub=dest.host,
        ctx=ctx,
        vm_state="active",
        task_state=None,
        power_state="running",
        launched_at=cloud.now().replace(microsecond=0),
    )
    cloud.notify(inst, "unshelve", "end", source=COMPUTE, host=dest.host, ctx=ctx)
    return True


# -- stats-only actions --------------------------------------------------------------------
# action -> (api task_state, final vm_state, final power_state)
SIMPLE_ACTIONS: dict[str, tuple[str, str, str]] = {
    "power_off": ("powering-off", "stopped", "shutdown"),
    "power_on": ("powering-on", "active", "running"),
    "pause": ("pausing", "paused", "paused"),
    "unpause": ("unpausing", "active", "running"),
    "suspend": ("suspending", "suspended", "suspended"),
    "resume": ("resuming", "active", "running"),
    "reboot": ("rebooting", "active", "running"),
    "unrescue": ("unrescuing", "active", "running"),
}


def simple_action(cloud: Cloud, inst: Instance, rng: random.Random, action: str) -> Step:
    """api update (<task>); compute ``<action>.start``, update (final state),
    ``<action>.end``.  Stats only: usage unchanged."""
    task, vm_state, power = SIMPLE_ACTIONS[action]
    ctx = cloud.user_ctx(inst)
    host = _node_of(cloud, inst).host
    _api_save(cloud, inst, ctx, task_state=task)
    yield pause(rng)
    cloud.notify(inst, action, "start", source=COMPUTE, host=host, ctx=ctx)
    yield pause(rng, 0.5, 3.0)
    cloud.save(inst, source=COMPUTE, pub=host, ctx=ctx, vm_state=vm_state, task_state=None, power_state=power)
    cloud.notify(inst, action, "end", source=COMPUTE, host=host, ctx=ctx)
    return True


def rescue(cloud: Cloud, inst: Instance, rng: random.Random) -> Step:
    """api update (rescuing); ``rescue.start``, update (rescued), ``exists``,
    ``rescue.end`` (InstanceActionRescuePayload)."""
    ctx = cloud.user_ctx(inst)
    host = _node_of(cloud, inst).host
    image = Extras(image_id=inst.image_ref or str(rand_uuid(rng)))
    _api_save(cloud, inst, ctx, task_state="rescuing")
    yield pause(rng)
    cloud.notify(inst, "rescue", "start", source=COMPUTE, host=host, ctx=ctx, kind="rescue", extras=image)
    yield pause(rng, 1.0, 4.0)
    cloud.save(
        inst, source=COMPUTE, pub=host, ctx=ctx, vm_state="rescued", task_state=None, power_state="running"
    )
    cloud.exists(inst, host, ctx)
    cloud.notify(inst, "rescue", "end", source=COMPUTE, host=host, ctx=ctx, kind="rescue", extras=image)
    return True


def lock(cloud: Cloud, inst: Instance, rng: random.Random, locked: bool = True) -> Step:
    """nova-api only: update (locked flag, no state change), then
    ``instance.lock`` / ``instance.unlock`` (no phase, versioned only)."""
    ctx = cloud.user_ctx(inst)
    reason = "maintenance" if locked and rng.random() < 0.5 else None
    _api_save(cloud, inst, ctx, locked=locked, locked_reason=reason)
    cloud.notify(inst, "lock" if locked else "unlock", None, source=API, host=cloud.api_host, ctx=ctx)
    yield pause(rng, 0.0, 0.1)
    return True


def snapshot(cloud: Cloud, inst: Instance, rng: random.Random) -> Step:
    """api update (image_snapshot); ``snapshot.start``, updates (upload),
    update (task None), ``snapshot.end`` (InstanceActionSnapshotPayload)."""
    ctx = cloud.user_ctx(inst)
    host = _node_of(cloud, inst).host
    image = Extras(image_id=str(rand_uuid(rng)))
    _api_save(cloud, inst, ctx, task_state="image_snapshot")
    yield pause(rng)
    cloud.notify(inst, "snapshot", "start", source=COMPUTE, host=host, ctx=ctx, kind="snapshot", extras=image)
    cloud.save(inst, source=COMPUTE, pub=host, ctx=ctx, task_state="image_pending_upload")
    yield pause(rng, 1.0, 5.0)
    cloud.save(inst, source=COMPUTE, pub=host, ctx=ctx, task_state="image_uploading")
    yield pause(rng, 1.0, 5.0)
    cloud.save(inst, source=COMPUTE, pub=host, ctx=ctx, task_state=None)
    cloud.notify(inst, "snapshot", "end", source=COMPUTE, host=host, ctx=ctx, kind="snapshot", extras=image)
    return True


def audit(cloud: Cloud, inst: Instance, rng: random.Random) -> Step:
    """Periodic ``_instance_usage_audit``: ``exists`` for the previous period
    under an admin context (payload request_id None)."""
    yield pause(rng, 1.0, 10.0)
    cloud.exists(inst, _node_of(cloud, inst).host, cloud.periodic_ctx(), current=False)
    return True


# -- random stories -------------------------------------------------------------------------
def _can_resize_to(inst: Instance, new: Flavor) -> bool:
    """Targets the API and libvirt accept: local disks never shrink, and an
    image-backed instance cannot move to a root_gb=0 flavor from a sized one."""
    old = inst.flavor
    if new == old or new.ephemeral_gb < old.ephemeral_gb:
        return False
    if inst.volume_backed:
        return True
    return new.root_gb >= old.root_gb and not (new.root_gb == 0 and old.root_gb > 0)


def _other_flavor(inst: Instance, rng: random.Random) -> Flavor:
    """A valid resize target (the current flavor, i.e. a cold migration, if none)."""
    targets = [f for f in CATALOGUE if _can_resize_to(inst, f)]
    return rng.choice(targets) if targets else inst.flavor


def _resize_then(cloud: Cloud, inst: Instance, rng: random.Random, finish: str, **kwargs: object) -> Step:
    """Resize followed by confirm or revert."""
    if not (yield from resize(cloud, inst, rng, **kwargs)):  # type: ignore[arg-type]
        return False
    yield pause(rng, 2.0, 20.0)
    if finish == "confirm":
        return (yield from confirm_resize(cloud, inst, rng))
    return (yield from revert_resize(cloud, inst, rng))


def _actions_for(cloud: Cloud, inst: Instance, rng: random.Random) -> list[tuple[float, Step]]:
    """Weighted lifecycles valid from the instance's current state."""
    state = inst.vm_state
    if state == "active":
        return [
            (3, simple_action(cloud, inst, rng, "power_off")),
            (1, simple_action(cloud, inst, rng, "pause")),
            (1, simple_action(cloud, inst, rng, "suspend")),
            (1, simple_action(cloud, inst, rng, "reboot")),
            (1, rescue(cloud, inst, rng)),
            (1, lock(cloud, inst, rng, not inst.locked)),
            (1, snapshot(cloud, inst, rng)),
            (1, audit(cloud, inst, rng)),
            (3, _resize_then(cloud, inst, rng, "confirm", new_flavor=_other_flavor(inst, rng))),
            (2, _resize_then(cloud, inst, rng, "revert", new_flavor=_other_flavor(inst, rng))),
            (
                1,
                _resize_then(
                    cloud,
                    inst,
                    rng,
                    rng.choice(["confirm", "revert"]),
                    new_flavor=_other_flavor(inst, rng),
                    same_host=True,
                ),
            ),
            (
                1,
                _resize_then(
                    cloud, inst, rng, "confirm", new_flavor=_other_flavor(inst, rng), prep_failures=1
                ),
            ),
            (2, _resize_then(cloud, inst, rng, "confirm", admin=True)),  # cold migration
            (3, live_migrate(cloud, inst, rng)),
            (
                1,
                live_migrate(
                    cloud, inst, rng, "rollback", rng.choice(["source_first", "dest_first", "interleaved"])
                ),
            ),
            (1, evacuate(cloud, inst, rng)),
            (0.5, evacuate(cloud, inst, rng, fail=True)),
            (1, rebuild(cloud, inst, rng) if inst.image_ref else audit(cloud, inst, rng)),
            (1, shelve(cloud, inst, rng, offload=True)),
            (0.5, shelve(cloud, inst, rng, offload=False)),
            (1, soft_delete(cloud, inst, rng)),
        ]
    return [(1, step) for step in _recoveries(cloud, inst, rng)]


def _recoveries(cloud: Cloud, inst: Instance, rng: random.Random) -> list[Step]:
    """The way back to active (or onwards) from a non-active state."""
    state = inst.vm_state
    table: dict[str, list[Step]] = {
        "stopped": [simple_action(cloud, inst, rng, "power_on")],
        "paused": [simple_action(cloud, inst, rng, "unpause")],
        "suspended": [simple_action(cloud, inst, rng, "resume")],
        "rescued": [simple_action(cloud, inst, rng, "unrescue")],
        "shelved": [shelve_offload(cloud, inst, rng)],
        "shelved_offloaded": [unshelve(cloud, inst, rng)],
        "soft-delete": [restore(cloud, inst, rng), reclaim(cloud, inst, rng)],
        "error": [delete(cloud, inst, rng)],
    }
    return table.get(state, [])


def _choose(rng: random.Random, weighted: list[tuple[float, Step]]) -> Step | None:
    """Pick one weighted lifecycle; close the unused generators."""
    if not weighted:
        return None
    chosen = rng.choices([s for _, s in weighted], weights=[w for w, _ in weighted])[0]
    for _, step in weighted:
        if step is not chosen:
            step.close()
    return chosen


def _ending(cloud: Cloud, inst: Instance, rng: random.Random) -> Step:
    """How the story ends: delete, leave alive, or leave a move open."""
    r = rng.random()
    if r < 0.35:
        if inst.vm_state == "soft-delete":
            return (yield from reclaim(cloud, inst, rng))
        if rng.random() < 0.08 and inst.host is not None:
            return (yield from delete_compute_down(cloud, inst, rng))
        return (yield from delete(cloud, inst, rng))
    if r < 0.55 and inst.vm_state == "active":
        return (yield from _open_move(cloud, inst, rng))
    return True


def _open_move(cloud: Cloud, inst: Instance, rng: random.Random) -> Step:
    """A move left unfinished at the end of the run (double holds)."""
    kind = rng.choice(["resized", "prep", "live_pre", "evacuating", "same_host"])
    if kind == "resized":
        return (yield from resize(cloud, inst, rng, new_flavor=_other_flavor(inst, rng)))
    if kind == "same_host":
        return (yield from resize(cloud, inst, rng, new_flavor=_other_flavor(inst, rng), same_host=True))
    if kind == "prep":
        return (
            yield from resize(cloud, inst, rng, new_flavor=_other_flavor(inst, rng), stop_after_prep=True)
        )
    if kind == "live_pre":
        return (yield from live_migrate(cloud, inst, rng, outcome="pre"))
    return (yield from evacuate(cloud, inst, rng, stop_after_start=True))


def random_story(cloud: Cloud, rng: random.Random) -> Story:
    """One instance's whole life: build, a few actions, an ending."""
    inst = cloud.new_instance()
    r = rng.random()
    failures = 0 if r < 0.86 else (1 if r < 0.94 else 3)
    if not (yield from build(cloud, inst, rng, failures=failures)):
        if rng.random() < 0.6:
            yield pause(rng, 2.0, 20.0)
            yield from delete(cloud, inst, rng)
        return
    for _ in range(rng.randint(0, 4)):
        yield pause(rng, 3.0, 30.0)
        step = _choose(rng, _actions_for(cloud, inst, rng))
        if step is not None:
            yield from step
        if inst.vm_state == "deleted":
            return
    yield pause(rng, 3.0, 30.0)
    if inst.vm_state not in ("active", "soft-delete"):
        step = _choose(rng, [(1, s) for s in _recoveries(cloud, inst, rng)])
        if step is not None:
            yield from step
    if inst.vm_state != "deleted":
        yield from _ending(cloud, inst, rng)
