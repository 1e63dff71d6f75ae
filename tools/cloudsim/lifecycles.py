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
from datetime import datetime
from typing import TYPE_CHECKING, Any

from cloudsim.context import Context
from cloudsim.envelope import rand_uuid
from cloudsim.flavors import CATALOGUE, Flavor
from cloudsim.nova import Instance, Move, Node
from cloudsim.payloads import Extras, Fault

if TYPE_CHECKING:
    from cloudsim.cloud import Cloud

Step = Generator[float, None, bool]
Story = Iterator[float]
Wait = Generator[float, None, None]
COMPUTE, API, CONDUCTOR = "nova-compute", "nova-api", "nova-conductor"
PLAIN = Extras()  # nothing on top of the instance snapshot
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


def _db_now(cloud: Cloud) -> datetime:
    """The current time as Nova stores it: its DB columns keep whole seconds."""
    return cloud.now().replace(microsecond=0)


def _api_save(cloud: Cloud, inst: Instance, ctx: Context, **changes: object) -> None:
    """An ``instance.save()`` done by nova-api."""
    cloud.save(inst, source=API, pub=cloud.api_host, ctx=ctx, **changes)


def _conductor_save(cloud: Cloud, inst: Instance, ctx: Context, **changes: object) -> None:
    """An ``instance.save()`` done by nova-conductor."""
    cloud.save(inst, source=CONDUCTOR, pub=cloud.conductor_host, ctx=ctx, **changes)


def _compute_save(cloud: Cloud, inst: Instance, pub: str, ctx: Context, **changes: object) -> None:
    """An ``instance.save()`` done by nova-compute on host ``pub`` (the
    publisher; ``changes`` may move the row's own host/node)."""
    cloud.save(inst, source=COMPUTE, pub=pub, ctx=ctx, **changes)


def _place(cloud: Cloud, inst: Instance, pub: str, ctx: Context, node: Node, **more: object) -> None:
    """A compute save that points the instance row at ``node``: the resource
    tracker charges the row's flavor there from now on."""
    _compute_save(cloud, inst, pub, ctx, host=node.host, node=node.node, **more)


def _compute_notify(
    cloud: Cloud,
    inst: Instance,
    action: str,
    phase: str | None,
    host: str,
    ctx: Context,
    kind: str = "action",
    extras: Extras = PLAIN,
) -> None:
    """A notification from nova-compute on ``host``, the usual emitter.

    ``inst`` may be a stale copy: some hosts send what their copy still says.
    """
    cloud.notify(inst, action, phase, source=COMPUTE, host=host, ctx=ctx, kind=kind, extras=extras)


def _settle(
    cloud: Cloud, inst: Instance, host: str, ctx: Context, vm_state: str, power_state: str, **more: object
) -> None:
    """The compute save that ends a task: Nova records the outcome and clears
    task_state in one save, so a single instance.update carries both."""
    _compute_save(cloud, inst, host, ctx, vm_state=vm_state, task_state=None, power_state=power_state, **more)


def _launched(cloud: Cloud, inst: Instance, host: str, ctx: Context, vm_state: str = "active") -> None:
    """The save after a (re)spawn: the guest runs and launched_at is stamped."""
    _settle(cloud, inst, host, ctx, vm_state, "running", launched_at=_db_now(cloud))


def _user_request(cloud: Cloud, inst: Instance, task_state: str) -> tuple[Context, str]:
    """A user's API call on a scheduled instance: nova-api saves ``task_state``.

    Returns the request context and the compute host that will do the work.
    The context is drawn before the save, as Nova does, which also keeps the
    seeded random stream (and so every message) in its order.
    """
    ctx = cloud.user_ctx(inst)
    host = _node_of(cloud, inst).host
    _api_save(cloud, inst, ctx, task_state=task_state)
    return ctx, host


def _no_valid_host(
    cloud: Cloud, inst: Instance, ctx: Context, method: str, vm_state: str, fault: Fault = NO_VALID_HOST
) -> None:
    """Conductor's set_vm_state_and_notify after NoValidHost / MaxRetriesExceeded."""
    _conductor_save(cloud, inst, ctx, vm_state=vm_state, task_state=None)
    cloud.compute_task_error(inst, method, ctx, fault)


def _host_off(
    cloud: Cloud, inst: Instance, rng: random.Random, ctx: Context, source: Node, method: str, vm_state: str
) -> Node | None:
    """Schedule a move of the current flavor away from ``source``'s host.

    With no host left the conductor sets ``vm_state`` and sends the
    ``compute_task.<method>.error``; None is returned.
    """
    dest = cloud.state.pick_node(inst.flavor, inst.volume_backed, rng, {source.host})
    if dest is None:
        _no_valid_host(cloud, inst, ctx, method, vm_state)
    return dest


def _move(kind: str, inst: Instance, source: Node, dest: Node, new: Flavor | None = None) -> Move:
    """An open move: the source keeps the old flavor, the dest claims ``new``
    (the current flavor when the move does not resize)."""
    old, new = inst.flavor, new or inst.flavor
    return Move(kind, source, dest, old, new, holds=[(source, old), (dest, new)])


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
        _compute_save(cloud, inst, node.host, ctx, task_state="scheduling")
        yield pause(rng)
    _no_valid_host(cloud, inst, ctx, "build_instances", "error", MAX_RETRIES if tried else NO_VALID_HOST)
    return False


def _build_on(cloud: Cloud, inst: Instance, node: Node, ctx: Context, rng: random.Random, fail: bool) -> Step:
    """``_do_build_and_run_instance`` on one compute host."""
    host = node.host
    _compute_save(cloud, inst, host, ctx, vm_state="building", task_state=None)
    image_name = "" if inst.volume_backed else "ubuntu-24.04-server"
    _create_notify(cloud, inst, "start", host, ctx, legacy={"image_name": image_name})
    yield pause(rng, 0.05, 0.5)
    _place(cloud, inst, host, ctx, node)  # claim
    if fail:
        yield pause(rng, 0.5, 3.0)
        _compute_save(cloud, inst, host, ctx, host=None, node=None)  # abort
        _create_notify(cloud, inst, "error", host, ctx, fault=rng.choice(BUILD_FAULTS))
        return False
    yield from _spawn(cloud, inst, host, ctx, rng)
    _create_notify(
        cloud, inst, "end", host, ctx, legacy={"message": "Success", "fixed_ips": _fixed_ips(inst)}
    )
    return True


def _create_notify(
    cloud: Cloud,
    inst: Instance,
    phase: str,
    host: str,
    ctx: Context,
    fault: Fault | None = None,
    legacy: dict[str, Any] | None = None,
) -> None:
    """instance.create.<phase>: create payloads always carry the bdms."""
    extras = Extras(fault=fault, with_bdms=True, legacy=legacy)
    _compute_notify(cloud, inst, "create", phase, host, ctx, kind="create", extras=extras)


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


def _spawn(cloud: Cloud, inst: Instance, host: str, ctx: Context, rng: random.Random) -> Wait:
    """networking -> block_device_mapping -> spawning -> active saves."""
    _compute_save(cloud, inst, host, ctx, task_state="networking")
    yield pause(rng, 0.2, 1.5)
    ip = f"192.168.{rng.randint(0, 254)}.{rng.randint(2, 254)}"
    port = str(rand_uuid(rng))
    mac = "fa:16:3e:" + ":".join(f"{rng.randint(0, 255):02x}" for _ in range(3))
    _compute_save(
        cloud, inst, host, ctx, task_state="block_device_mapping", ip_address=ip, port_id=port, mac=mac
    )
    _compute_save(cloud, inst, host, ctx, task_state="spawning")
    yield pause(rng, 2.0, 8.0)
    _launched(cloud, inst, host, ctx)


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
    now = _db_now(cloud)
    inst.vm_state, inst.task_state, inst.power_state = "deleted", None, "pending"
    inst.terminated_at = inst.deleted_at = now
    inst.ip_address = None  # deallocate_for_instance
    inst.move = None
    cloud.notify(inst, "delete", "end", source=API, host=cloud.api_host, ctx=ctx)


def _delete_on_compute(cloud: Cloud, inst: Instance, host: str, ctx: Context, rng: random.Random) -> Wait:
    """``ComputeManager._delete_instance``."""
    _compute_notify(cloud, inst, "delete", "start", host, ctx, extras=BDMS)
    _compute_notify(cloud, inst, "shutdown", "start", host, ctx, extras=BDMS)
    yield pause(rng, 0.5, 3.0)
    _compute_notify(cloud, inst, "shutdown", "end", host, ctx, extras=BDMS)
    now = _db_now(cloud)
    _settle(cloud, inst, host, ctx, "deleted", "pending", terminated_at=now, ip_address=None)
    inst.deleted_at = now  # instance.destroy()
    _compute_notify(cloud, inst, "delete", "end", host, ctx, extras=BDMS)


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
    _api_save(cloud, inst, ctx, task_state="soft-deleting", deleted_at=_db_now(cloud))
    yield pause(rng)
    _bracketed_settle(cloud, inst, "soft_delete", inst.host or cloud.api_host, ctx, "soft-delete", "shutdown")
    return True


def restore(cloud: Cloud, inst: Instance, rng: random.Random) -> Step:
    """api update (restoring); compute ``restore.start``, update (active),
    ``restore.end``."""
    ctx = cloud.user_ctx(inst)
    _api_save(cloud, inst, ctx, task_state="restoring", deleted_at=None)
    yield pause(rng)
    _bracketed_settle(cloud, inst, "restore", _node_of(cloud, inst).host, ctx, "active", "running")
    return True


def _bracketed_settle(
    cloud: Cloud, inst: Instance, action: str, host: str, ctx: Context, vm_state: str, power_state: str
) -> None:
    """A compute action with no wait inside: ``<action>.start``, the final
    save, ``<action>.end``."""
    _compute_notify(cloud, inst, action, "start", host, ctx)
    _settle(cloud, inst, host, ctx, vm_state, power_state)
    _compute_notify(cloud, inst, action, "end", host, ctx)


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
        _no_valid_host(cloud, inst, ctx, "migrate_server", inst.vm_state)
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
            inst.move = _move("resize", inst, source, dest, new)
            _prep_notify(cloud, inst, ctx, dest.host, "end", new)
            return dest
        yield pause(rng, 0.1, 0.5)
        _compute_save(cloud, inst, dest.host, ctx, task_state="resize_prep")
        fault = Fault(
            "ComputeResourcesUnavailable",
            "Insufficient compute resources: Free memory too low.",
            "prep_resize",
        )
        _compute_notify(cloud, inst, "resize", "error", dest.host, ctx, extras=Extras(fault=fault))
        _prep_notify(cloud, inst, ctx, dest.host, "end", new)
        if same_host:
            return None
        tried.add(dest.host)
    return None


def _prep_notify(cloud: Cloud, inst: Instance, ctx: Context, host: str, phase: str, new: Flavor) -> None:
    """resize_prep.<phase>; legacy end carries new_instance_type(_id)."""
    legacy = {"new_instance_type": new.name, "new_instance_type_id": new.id}
    extras = Extras(new_flavor=new, legacy=legacy if phase == "end" else None)
    _compute_notify(cloud, inst, "resize_prep", phase, host, ctx, kind="resize_prep", extras=extras)


def _resize_instance(
    cloud: Cloud, inst: Instance, rng: random.Random, ctx: Context, source: Node, dest: Node
) -> Wait:
    """``resize_instance`` on the source."""
    _compute_save(cloud, inst, source.host, ctx, task_state="resize_migrating")
    _compute_notify(cloud, inst, "resize", "start", source.host, ctx, extras=BDMS)
    yield pause(rng, 1.0, 6.0)
    _place(
        cloud,
        inst,
        source.host,
        ctx,
        dest,
        old_flavor=inst.flavor,
        task_state="resize_migrated",
        power_state="shutdown",
    )
    _compute_notify(cloud, inst, "resize", "end", source.host, ctx, extras=BDMS)


def _finish_resize(
    cloud: Cloud, inst: Instance, rng: random.Random, ctx: Context, dest: Node, new: Flavor
) -> Wait:
    """``finish_resize`` on the dest: applies the new flavor."""
    _compute_save(cloud, inst, dest.host, ctx, flavor=new, task_state="resize_finish")
    _compute_notify(cloud, inst, "resize_finish", "start", dest.host, ctx, extras=BDMS)
    yield pause(rng, 1.0, 4.0)
    _launched(cloud, inst, dest.host, ctx, vm_state="resized")
    _compute_notify(cloud, inst, "resize_finish", "end", dest.host, ctx, extras=BDMS)


def confirm_resize(cloud: Cloud, inst: Instance, rng: random.Random) -> Step:
    """From the source: ``resize_confirm.start`` (payload host = dest),
    source drops the old-flavor claim, update (active), ``resize_confirm.end``."""
    assert inst.move is not None
    ctx = cloud.user_ctx(inst)
    yield pause(rng, 0.2, 2.0)
    source = inst.move.source.host
    _compute_notify(cloud, inst, "resize_confirm", "start", source, ctx)
    yield pause(rng, 0.2, 1.0)
    inst.move = None  # drop_move_claim_at_source: only the dest row remains
    _compute_save(cloud, inst, source, ctx, vm_state="active", task_state=None)
    inst.old_flavor = inst.new_flavor = None
    _compute_notify(cloud, inst, "resize_confirm", "end", source, ctx)
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
    _compute_notify(cloud, inst, "resize_revert", "start", src.host, ctx, extras=BDMS)
    yield pause(rng, 1.0, 4.0)
    _place(cloud, inst, src.host, ctx, src, flavor=inst.old_flavor, launched_at=_db_now(cloud))
    inst.move = None
    _settle(cloud, inst, src.host, ctx, "active", "running")
    inst.old_flavor = inst.new_flavor = None
    _compute_notify(cloud, inst, "resize_revert", "end", src.host, ctx, extras=BDMS)
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
    dest = _host_off(cloud, inst, rng, ctx, source, "migrate_server", inst.vm_state)
    if dest is None:
        return False
    yield pause(rng)
    inst.move = _move("live-migration", inst, source, dest)
    _compute_notify(cloud, inst, "live_migration_pre", "start", dest.host, ctx)
    yield pause(rng, 0.5, 2.0)
    _compute_notify(cloud, inst, "live_migration_pre", "end", dest.host, ctx)
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
) -> Wait:
    """``_post_live_migration`` (source) and ``post_live_migration_at_destination``."""
    _compute_notify(cloud, inst, "live_migration_post", "start", source.host, ctx)
    stale = dataclasses.replace(inst)  # the source's copy is never refreshed
    yield pause(rng, 0.2, 1.0)
    _compute_notify(cloud, inst, "live_migration_post_dest", "start", dest.host, ctx)
    inst.move = None
    _place(cloud, inst, dest.host, ctx, dest, power_state="running", task_state=None)
    _compute_notify(cloud, inst, "live_migration_post_dest", "end", dest.host, ctx)
    yield pause(rng, 0.1, 0.5)
    _compute_notify(cloud, stale, "live_migration_post", "end", source.host, ctx)


def _live_rollback(
    cloud: Cloud, inst: Instance, rng: random.Random, ctx: Context, source: Node, dest: Node, order: str
) -> Wait:
    """``_rollback_live_migration``: ``rollback.start``, update (task None),
    then ``rollback.end`` (source) and ``rollback_dest.start``/``.end`` (dest)
    whose relative order is not defined (``order``: source_first,
    dest_first, interleaved).  The dest payload is stale (task migrating)."""
    _compute_notify(cloud, inst, "live_migration_rollback", "start", source.host, ctx)
    stale = dataclasses.replace(inst)
    _compute_save(cloud, inst, source.host, ctx, task_state=None)
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
        _compute_notify(cloud, snapshot, action, phase, host, ctx)
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
    dest = _host_off(cloud, inst, rng, ctx, source, "rebuild_server", "error")
    if dest is None:
        return False
    yield from _rebuild_scheduled(cloud, inst, rng, ctx, dest.host)
    inst.move = _move("evacuation", inst, source, dest)  # rebuild_claim
    yield from _rebuild_body(cloud, inst, rng, ctx, dest.host, fail, stop_after_start)
    if fail or stop_after_start:
        return False
    inst.move = None
    _place(cloud, inst, dest.host, ctx, dest)
    return True


def rebuild(cloud: Cloud, inst: Instance, rng: random.Random) -> Step:
    """Rebuild in place with a new image: api update (rebuilding),
    ``rebuild_scheduled`` (conductor, publisher host = own host), ``exists``,
    ``rebuild.start``, updates, ``rebuild.end``.  NopClaim: usage unchanged."""
    ctx = cloud.user_ctx(inst)
    host = _node_of(cloud, inst).host
    _api_save(cloud, inst, ctx, task_state="rebuilding", image_ref=str(rand_uuid(rng)))
    yield from _rebuild_scheduled(cloud, inst, rng, ctx, host)
    yield from _rebuild_body(cloud, inst, rng, ctx, host, False, False)
    return True


def _rebuild_scheduled(cloud: Cloud, inst: Instance, rng: random.Random, ctx: Context, host: str) -> Wait:
    """Conductor's ``rebuild_scheduled`` once it has the request and a host,
    then the RPC to that compute.  Versioned publisher: the chosen host;
    legacy: the conductor."""
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


def _rebuild_body(
    cloud: Cloud,
    inst: Instance,
    rng: random.Random,
    ctx: Context,
    host: str,
    fail: bool,
    stop_after_start: bool,
) -> Wait:
    """``_do_rebuild_instance`` on ``host`` (the evacuation dest)."""
    cloud.exists(inst, host, ctx)
    _rebuild_notify(cloud, inst, "start", host, ctx)
    _compute_save(cloud, inst, host, ctx, task_state="rebuilding")
    if stop_after_start:
        return
    yield pause(rng, 1.0, 5.0)
    if fail:
        fault = Fault(
            "VirtualInterfaceCreateException",
            "Virtual Interface creation failed",
            "_virtual_interface_create_failed",
        )
        _rebuild_notify(cloud, inst, "error", host, ctx, Extras(fault=fault, with_bdms=True))
        inst.move = None  # the claim context manager aborts the dest claim
        _compute_save(cloud, inst, host, ctx, vm_state="error", task_state=None)
        return
    _compute_save(cloud, inst, host, ctx, task_state="rebuild_block_device_mapping")
    _compute_save(cloud, inst, host, ctx, task_state="rebuild_spawning")
    yield pause(rng, 2.0, 6.0)
    _launched(cloud, inst, host, ctx)
    _rebuild_notify(cloud, inst, "end", host, ctx)


def _rebuild_notify(
    cloud: Cloud, inst: Instance, phase: str, host: str, ctx: Context, extras: Extras = BDMS
) -> None:
    """instance.rebuild.<phase> (InstanceActionRebuildPayload, with the bdms)."""
    _compute_notify(cloud, inst, "rebuild", phase, host, ctx, kind="rebuild", extras=extras)


# -- shelve ----------------------------------------------------------------------------
def shelve(cloud: Cloud, inst: Instance, rng: random.Random, offload: bool = True) -> Step:
    """api update (shelving); compute ``exists``, ``shelve.start``, updates
    (image upload), update (shelved), ``shelve.end``; with ``offload``
    (shelved_offload_time = 0, Nova's default) the last save sets task
    shelving_offloading and ``shelve_offload`` follows immediately."""
    ctx, host = _user_request(cloud, inst, "shelving")
    yield pause(rng)
    cloud.exists(inst, host, ctx)
    _compute_notify(cloud, inst, "shelve", "start", host, ctx)
    yield from _upload_image(
        cloud, inst, host, ctx, rng, ("shelving_image_pending_upload", "shelving_image_uploading"), 4.0
    )
    _compute_save(
        cloud,
        inst,
        host,
        ctx,
        vm_state="shelved",
        task_state="shelving_offloading" if offload else None,
        power_state="shutdown",
    )
    _compute_notify(cloud, inst, "shelve", "end", host, ctx)
    if offload:
        _offload(cloud, inst, host, ctx)
    return True


def _upload_image(
    cloud: Cloud,
    inst: Instance,
    host: str,
    ctx: Context,
    rng: random.Random,
    task_states: tuple[str, str],
    longest: float,
) -> Wait:
    """An image upload to glance: the pending then the uploading task_state,
    each held for 1 to ``longest`` seconds."""
    for task_state in task_states:
        _compute_save(cloud, inst, host, ctx, task_state=task_state)
        yield pause(rng, 1.0, longest)


def shelve_offload(cloud: Cloud, inst: Instance, rng: random.Random) -> Step:
    """Offload of an already shelved instance: api update
    (shelving_offloading), then ``shelve_offload.start``/``.end``."""
    ctx, host = _user_request(cloud, inst, "shelving_offloading")
    yield pause(rng)
    _offload(cloud, inst, host, ctx)
    return True


def _offload(cloud: Cloud, inst: Instance, host: str, ctx: Context) -> None:
    """``_shelve_offload_instance``: state first, then host/node nulled;
    ``shelve_offload.end`` therefore carries host/node None."""
    _compute_notify(cloud, inst, "shelve_offload", "start", host, ctx)
    _compute_save(cloud, inst, host, ctx, vm_state="shelved_offloaded", task_state=None)
    _compute_save(cloud, inst, host, ctx, host=None, node=None, availability_zone=None)
    _compute_notify(cloud, inst, "shelve_offload", "end", host, ctx)


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
    _compute_notify(cloud, inst, "unshelve", "start", dest.host, ctx)
    _compute_save(cloud, inst, dest.host, ctx, task_state="spawning")
    _place(cloud, inst, dest.host, ctx, dest, availability_zone="nova")
    yield pause(rng, 2.0, 6.0)
    _launched(cloud, inst, dest.host, ctx)
    _compute_notify(cloud, inst, "unshelve", "end", dest.host, ctx)
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
    ctx, host = _user_request(cloud, inst, task)
    yield pause(rng)
    _compute_notify(cloud, inst, action, "start", host, ctx)
    yield pause(rng, 0.5, 3.0)
    _settle(cloud, inst, host, ctx, vm_state, power)
    _compute_notify(cloud, inst, action, "end", host, ctx)
    return True


def rescue(cloud: Cloud, inst: Instance, rng: random.Random) -> Step:
    """api update (rescuing); ``rescue.start``, update (rescued), ``exists``,
    ``rescue.end`` (InstanceActionRescuePayload)."""
    ctx = cloud.user_ctx(inst)
    host = _node_of(cloud, inst).host
    image = Extras(image_id=inst.image_ref or str(rand_uuid(rng)))
    _api_save(cloud, inst, ctx, task_state="rescuing")
    yield pause(rng)
    _compute_notify(cloud, inst, "rescue", "start", host, ctx, kind="rescue", extras=image)
    yield pause(rng, 1.0, 4.0)
    _settle(cloud, inst, host, ctx, "rescued", "running")
    cloud.exists(inst, host, ctx)
    _compute_notify(cloud, inst, "rescue", "end", host, ctx, kind="rescue", extras=image)
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
    _compute_notify(cloud, inst, "snapshot", "start", host, ctx, kind="snapshot", extras=image)
    yield from _upload_image(cloud, inst, host, ctx, rng, ("image_pending_upload", "image_uploading"), 5.0)
    _compute_save(cloud, inst, host, ctx, task_state=None)
    _compute_notify(cloud, inst, "snapshot", "end", host, ctx, kind="snapshot", extras=image)
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
