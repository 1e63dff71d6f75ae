"""The simulated cloud: state, clock, notification emitter and random driver.

Lifecycles (``cloudsim.lifecycles``) are generators that mutate the state and
emit notifications through ``Cloud.notify``/``Cloud.save``; each ``yield``
hands back a delay in seconds.  ``Cloud.run`` merges many such generators on
one simulated clock, so different instances' notifications interleave while
each instance's steps stay in causal order.  Every emitted timestamp is
strictly greater than the previous one.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

from cloudsim import envelope
from cloudsim.context import Context, admin_periodic_context, user_context
from cloudsim.envelope import Message
from cloudsim.flavors import CATALOGUE, Flavor
from cloudsim.lifecycles import random_story
from cloudsim.nova import Instance, Node, NovaState, make_nodes
from cloudsim.payloads import (
    Extras,
    Fault,
    compute_task_payload,
    legacy_compute_task_payload,
    legacy_payload,
    strtime,
    versioned_payload,
)

DEFAULT_START = datetime(2026, 8, 21, 21, 0, 0)
Story = Iterator[float]

# versioned source -> legacy notifier service name (rpc.get_notifier(service)).
# nova-api's compute.API uses get_notifier('compute'); so does the conductor.
LEGACY_SERVICE = {"nova-compute": "compute", "nova-api": "compute", "nova-conductor": "compute"}
# instance.update: send_update(service=...) -> legacy publisher prefix.
UPDATE_LEGACY_SERVICE = {"nova-compute": "compute", "nova-api": "compute", "nova-conductor": "conductor"}
VERSIONED_ONLY = {"lock", "unlock"}
NO_EXTRAS = Extras()


class Cloud:
    """A reproducible simulated Nova deployment emitting notifications."""

    def __init__(
        self,
        seed: int,
        hosts: int = 8,
        nodes_per_host: int = 1,
        fmt: str = "versioned",
        start: datetime = DEFAULT_START,
        notify_on_state_change: str | None = "vm_and_task_state",
        projects: int = 5,
    ) -> None:
        if fmt not in ("versioned", "legacy"):
            raise ValueError(f"unknown format {fmt!r}")
        self.rng = random.Random(seed)
        # Message ids come from their own stream, so that one seed simulates
        # the same cloud (and oracle) in both formats.
        self.wire_rng = random.Random(seed + 0x5EED)
        self.fmt = fmt
        self.notify_on_state_change = notify_on_state_change
        self.state = NovaState(make_nodes(hosts, nodes_per_host, self.rng))
        self.projects = [self._hex_id() for _ in range(projects)]
        self.users = {p: [self._hex_id() for _ in range(2)] for p in self.projects}
        self.admin_user, self.admin_project = self._hex_id(), self._hex_id()
        self.api_host, self.conductor_host = "api01", "ctl01"
        self.messages: list[Message] = []
        self._now = start
        self._seq = 0

    def _hex_id(self) -> str:
        """Keystone-style 32-hex id."""
        return f"{self.rng.getrandbits(128):032x}"

    # -- clock ---------------------------------------------------------------
    def now(self) -> datetime:
        """Current simulated time."""
        return self._now

    def stamp(self) -> datetime:
        """A timestamp strictly after every earlier one."""
        self._now += timedelta(microseconds=self.rng.randint(300, 40000))
        return self._now

    def advance_to(self, when: datetime) -> None:
        """Move the clock forward (never backward)."""
        self._now = max(self._now, when)

    # -- public views ----------------------------------------------------------
    def oracle(self) -> dict[str, Any]:
        """True end-of-run usage per node and per project (see nova.py)."""
        result: dict[str, Any] = self.state.oracle()
        for project in self.projects:
            result["projects"].setdefault(
                project, {"vcpus": 0, "memory_mb": 0, "local_gb": 0, "instances": 0}
            )
        return result

    def inventory(self) -> list[dict[str, int | str]]:
        """Capacity of every compute node."""
        return self.state.inventory()

    def flavors(self) -> list[dict[str, object]]:
        """The flavor catalogue."""
        return [flavor.as_dict() for flavor in CATALOGUE]

    def nodes(self) -> list[Node]:
        """All compute nodes."""
        return self.state.nodes

    # -- contexts --------------------------------------------------------------
    def user_ctx(self, inst: Instance) -> Context:
        """Context of the instance owner calling the API."""
        user = self.rng.choice(self.users[inst.project_id])
        return user_context(self.rng, user, inst.project_id, self._now)

    def admin_ctx(self) -> Context:
        """Context of a cloud admin (migrations, evacuations)."""
        return user_context(self.rng, self.admin_user, self.admin_project, self._now, admin=True)

    def periodic_ctx(self) -> Context:
        """Admin context of a periodic task."""
        return admin_periodic_context(self.rng, self._now)

    # -- instances -------------------------------------------------------------
    def new_instance(
        self, flavor: Flavor | None = None, volume_backed: bool | None = None, project_id: str | None = None
    ) -> Instance:
        """Register a new instance in state building/scheduling (API create)."""
        rng = self.rng
        flavor = flavor or rng.choice(CATALOGUE)
        if volume_backed is None:
            volume_backed = rng.random() < 0.2
        project = project_id or rng.choice(self.projects)
        number = len(self.state.instances) + 1
        inst = Instance(
            uuid=str(envelope.rand_uuid(rng)),
            project_id=project,
            user_id=rng.choice(self.users[project]),
            display_name=f"vm-{number:04d}",
            flavor=flavor,
            image_ref="" if volume_backed else str(envelope.rand_uuid(rng)),
            volume_id=str(envelope.rand_uuid(rng)) if volume_backed else None,
            created_at=self._now.replace(microsecond=0),
            reservation_id=f"r-{rng.getrandbits(40):010x}",
            instance_name=f"instance-{number:08x}",
        )
        self.state.instances[inst.uuid] = inst
        return inst

    # -- emission --------------------------------------------------------------
    def audit_period(self, current: bool = True) -> tuple[datetime, datetime]:
        """``audit_period_bounds`` for the default monthly period."""
        month = self._now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        if current:
            return month, self._now
        previous = (month - timedelta(days=1)).replace(day=1)
        return previous, month

    def notify(
        self,
        inst: Instance,
        action: str,
        phase: str | None,
        *,
        source: str,
        host: str,
        ctx: Context,
        kind: str = "action",
        extras: Extras = NO_EXTRAS,
        legacy_host: str | None = None,
    ) -> None:
        """Emit one instance notification in the cloud's format."""
        priority = "ERROR" if phase == "error" else "INFO"
        if self.fmt == "versioned":
            self._append(
                envelope.versioned_event_type(action, phase),
                f"{source}:{host}",
                priority,
                versioned_payload(kind, inst, ctx, extras),
                ctx,
            )
        elif action in VERSIONED_ONLY:
            self.stamp()  # time still passes: keeps both formats on one timeline
        else:
            publisher = f"{LEGACY_SERVICE[source]}.{legacy_host or host}"
            self._append(
                envelope.legacy_event_type(action, phase),
                publisher,
                priority,
                legacy_payload(inst, extras),
                ctx,
            )

    def _append(
        self, event_type: str, publisher_id: str, priority: str, payload: dict[str, Any], ctx: Context
    ) -> None:
        """Stamp, wrap and record one message."""
        self.messages.append(
            envelope.make_message(
                fmt=self.fmt,
                event_type=event_type,
                publisher_id=publisher_id,
                priority=priority,
                payload=payload,
                context=ctx.packed(),
                timestamp=self.stamp(),
                rng=self.wire_rng,
            )
        )

    def exists(self, inst: Instance, host: str, ctx: Context, current: bool = True) -> None:
        """``notify_usage_exists``: an audit snapshot from a compute host."""
        self.notify(
            inst,
            "exists",
            None,
            source="nova-compute",
            host=host,
            ctx=ctx,
            kind="exists",
            extras=Extras(audit_period=self.audit_period(current)),
        )

    def save(self, inst: Instance, *, source: str, pub: str, ctx: Context, **changes: Any) -> None:
        """``Instance.save()``: apply changes, then ``send_update`` if enabled.

        With notify_on_state_change set, Nova sends instance.update on *every*
        save: a state-change update when vm_state (or, in vm_and_task_state
        mode, task_state) changed, else a regular one with old == new states.
        """
        old_vm, old_task = inst.vm_state, inst.task_state
        for name, value in changes.items():
            setattr(inst, name, value)
        if changes:
            inst.updated_at = self._now.replace(microsecond=0)
        mode = self.notify_on_state_change
        if not mode:
            return
        changed = old_vm != inst.vm_state or (mode == "vm_and_task_state" and old_task != inst.task_state)
        states = (
            (old_vm, inst.vm_state, old_task, inst.task_state)
            if changed
            else (inst.vm_state, inst.vm_state, inst.task_state, inst.task_state)
        )
        self._emit_update(inst, source, pub, ctx, states)

    def _emit_update(
        self,
        inst: Instance,
        source: str,
        host: str,
        ctx: Context,
        states: tuple[str | None, str | None, str | None, str | None],
    ) -> None:
        """instance.update (versioned) / compute.instance.update (legacy)."""
        begin, end = self.audit_period()
        extras = Extras(
            audit_period=(begin, end),
            state_update=states,
            legacy={"audit_period_beginning": strtime(begin), "audit_period_ending": strtime(end)},
        )
        if self.fmt == "versioned":
            self._append(
                "instance.update",
                f"{source}:{host}",
                "INFO",
                versioned_payload("update", inst, ctx, extras),
                ctx,
            )
        else:
            self._append(
                "compute.instance.update",
                f"{UPDATE_LEGACY_SERVICE[source]}.{host}",
                "INFO",
                legacy_payload(inst, extras),
                ctx,
            )

    # -- driver ----------------------------------------------------------------
    def drive(self, stories: list[tuple[datetime, Story]]) -> list[Message]:
        """Run lifecycle generators to completion on the shared clock."""
        heap = [(at, n, story) for n, (at, story) in enumerate(stories)]
        heapq.heapify(heap)
        while heap:
            at, n, story = heapq.heappop(heap)
            self.advance_to(at)
            delay = next(story, None)
            if delay is not None:
                heapq.heappush(heap, (self._now + timedelta(seconds=delay), n, story))
        return self.messages

    def play(self, story: Story) -> list[Message]:
        """Run one lifecycle alone (used by tests and hand-made scenarios)."""
        return self.drive([(self._now, story)])

    def run(self, instances: int, rng: random.Random | None = None, spacing: float = 1.5) -> list[Message]:
        """Random interleaved workload of ``instances`` instances."""
        rng = rng or self.rng
        t0 = self._now
        stories = [
            (t0 + timedelta(seconds=i * spacing + rng.random() * spacing), random_story(self, rng))
            for i in range(instances)
        ]
        return self.drive(stories)

    def compute_task_error(self, inst: Instance, method: str, ctx: Context, fault: Fault) -> None:
        """Conductor's ``set_vm_state_and_notify`` error notification."""
        if self.fmt == "versioned":
            self._append(
                f"compute_task.{method}.error",
                f"nova-conductor:{self.conductor_host}",
                "ERROR",
                compute_task_payload(inst, inst.vm_state, fault),
                ctx,
            )
        else:
            self._append(
                f"compute_task.{method}",
                f"compute_task.{self.conductor_host}",
                "ERROR",
                legacy_compute_task_payload(inst, inst.vm_state, method, fault),
                ctx,
            )
