"""Nova's functional stack driven through lifecycles and their failure paths.

Run by ``tools/nova-capture`` inside Nova's own virtualenv (never by the
tracker's test suite). One test method runs every scenario in order on one
cloud of three fake computes and a real Placement; every notification, in
both formats, is recorded as oslo.messaging would publish it, and after each
scenario Placement's usage of every resource provider is recorded as the
truth the tracker must reach.

One difference from a real cloud comes from running every service in one
process: Nova's services publish as ``CONF.host`` where they have no host of
their own (nova-api's ``instance.evacuate``, the scheduler's notifications,
``wrap_exception``), and the stack has one ``CONF.host``, the last compute
started. The compute exceptions, which the tracker matches by their
publisher, are published under the host of the compute manager that raised
(``_from_raising_host``), as a real compute does; the API's and scheduler's
publishers are left as the stack names them (the tracker reads no host from
them).
"""

import contextlib
import json
import os
import sys
from unittest import mock

import nova.conf
from nova import exception, exception_wrapper, test
from nova.compute import manager as compute_manager
from nova.tests.fixtures import notifications as fake_notifications
from nova.tests.functional import integrated_helpers

from nova_capture import wire

OUT = os.environ.get("NOVA_CAPTURE_OUT", "tests/data/nova")
HOSTS = ("host1", "host2", "host3")
IMAGE = "155d900f-4e14-4e4c-a73d-069cbf4541e6"

_RECORDED = []  # (topic family, routing key, body) in emit order
_CURRENT = {"scenario": None}


def _recording(original, family, topic):
    def _notify(self, priority, ctxt, event_type, payload):
        original(self, priority, ctxt, event_type, payload)
        key, text = wire.body(topic, self.publisher_id, priority, event_type, payload, ctxt)
        _RECORDED.append((_CURRENT["scenario"], family, key, text))

    return _notify


def _raising_host():
    """The host of the compute manager whose wrapped method is raising, up the stack."""
    frame = sys._getframe(1)
    while frame is not None:
        candidate = frame.f_locals.get("self")
        if isinstance(candidate, compute_manager.ComputeManager):
            return candidate.host
        frame = frame.f_back
    return None


def _from_raising_host(emit):
    """wrap_exception publishes as ``CONF.host``. Every service of the functional stack
    shares one process and one CONF, so that would be the last compute started; a real
    compute's CONF.host is its own, which this restores for the emission."""

    def emit_there(*args, **kwargs):
        host = _raising_host()
        if host is None:
            return emit(*args, **kwargs)
        conf = nova.conf.CONF
        previous = conf.host
        conf.set_override("host", host)
        try:
            return emit(*args, **kwargs)
        finally:
            conf.set_override("host", previous)

    return emit_there


class Capture(integrated_helpers.ProviderUsageBaseTestCase):
    compute_driver = "fake.MediumFakeDriver"

    def setUp(self):
        # Nova's default notification settings but for the format: no
        # notify_on_state_change, so no instance.update is sent.
        self.flags(notification_format="both", group="notifications")
        for cls, family, topic in (
            (fake_notifications.FakeVersionedNotifier, "versioned", "versioned_notifications"),
            (fake_notifications.FakeNotifier, "legacy", "notifications"),
        ):
            patcher = mock.patch.object(cls, "_notify", _recording(cls._notify, family, topic))
            patcher.start()
            self.addCleanup(patcher.stop)
        for name in ("_emit_versioned_exception_notification", "_emit_legacy_exception_notification"):
            patcher = mock.patch.object(
                exception_wrapper, name, _from_raising_host(getattr(exception_wrapper, name))
            )
            patcher.start()
            self.addCleanup(patcher.stop)
        super().setUp()
        for host in HOSTS:
            self._start_compute(host)
        # swap that is not a whole GiB: Placement rounds it up, the RT truncates
        self.small = self._create_flavor(name="small", vcpu=1, memory_mb=256, disk=1, ephemeral=1, swap=1536)
        self.large = self._create_flavor(name="large", vcpu=2, memory_mb=512, disk=2, ephemeral=0, swap=512)
        self.other = self._create_flavor(name="other", vcpu=3, memory_mb=384, disk=3, ephemeral=2, swap=0)
        self.truths = []

    # -- helpers ---------------------------------------------------------

    def _begin(self, name):
        _CURRENT["scenario"] = name
        self.notifier.reset()

    def _end(self, name):
        self._run_periodics()
        usages = {}
        inventories = {}
        for provider in self.placement.get("/resource_providers").body["resource_providers"]:
            usages[provider["name"]] = self._get_provider_usages(provider["uuid"])
            inventories[provider["name"]] = self._get_provider_inventory(provider["uuid"])
        self.truths.append({"scenario": name, "usages": usages, "inventories": inventories})

    def _boot(self, flavor, host):
        request = self._build_server(image_uuid=IMAGE, flavor_id=flavor, networks="none")
        request["availability_zone"] = f"nova:{host}"
        server = self.api.post_server({"server": request})
        server = self._wait_for_state_change(server, "ACTIVE")
        self.notifier.wait_for_versioned_notifications("instance.create.end")
        return server

    def _host_of(self, server):
        return self._show_server(server)["OS-EXT-SRV-ATTR:host"]

    def _other_host(self, *exclude):
        return next(h for h in HOSTS if h not in exclude)

    def _wait_exception(self, n=1):
        self.notifier.wait_for_versioned_notifications("compute.exception", n_events=n)

    def _force_down(self, host, down):
        service = self.admin_api.get_services(host=host, binary="nova-compute")[0]
        self.admin_api.put_service(service["id"], {"forced_down": "true" if down else "false"})

    # -- scenarios -------------------------------------------------------

    def boots_and_deletes(self):
        self.s1 = self._boot(self.small, "host1")
        doomed = self._boot(self.large, "host2")
        self.s2 = self._boot(self.other, "host3")
        self._delete_server(doomed)
        self.notifier.wait_for_versioned_notifications("instance.delete.end")

    def boot_from_volume(self):
        self._create_server_boot_from_volume(flavor_id=self.large, networks="none")
        self.notifier.wait_for_versioned_notifications("instance.create.end")

    def shelve_offload_unshelve(self):
        server = self._boot(self.other, "host2")
        self._shelve_server(server)  # shelved_offload_time = 0: offloaded at once
        self.notifier.wait_for_versioned_notifications("instance.shelve_offload.end")
        self._unshelve_server(server)
        self.notifier.wait_for_versioned_notifications("instance.unshelve.end")

    def soft_delete_restore(self):
        self.flags(reclaim_instance_interval=3600)
        server = self._boot(self.small, "host3")
        self.api.delete_server(server["id"])
        self._wait_for_state_change(server, "SOFT_DELETED")
        self.api.post_server_action(server["id"], {"restore": {}})
        self._wait_for_state_change(server, "ACTIVE")
        self.flags(reclaim_instance_interval=0)

    def resize_confirm(self):
        self.api.post_server_action(self.s1["id"], {"resize": {"flavorRef": self.large}})
        self._wait_for_state_change(self.s1, "VERIFY_RESIZE")
        self._confirm_resize(self.s1)

    def resize_revert(self):
        self.api.post_server_action(self.s1["id"], {"resize": {"flavorRef": self.other}})
        self._wait_for_state_change(self.s1, "VERIFY_RESIZE")
        self._revert_resize(self.s1)

    def cold_migration_confirm(self):
        self._migrate_server(self.s2)
        self._confirm_resize(self.s2)

    def live_migration(self):
        source = self._host_of(self.s1)
        self._live_migrate(self.s1, host=self._other_host(source))
        self.notifier.wait_for_versioned_notifications("instance.live_migration_post.end")

    def live_migration_rollback(self):
        """The destination's pre_live_migration fails: Nova rolls back."""
        source = self._host_of(self.s1)
        dest = self._other_host(source)
        with mock.patch.object(
            self.computes[dest].driver, "pre_live_migration", side_effect=test.TestingException("pre failed")
        ):
            self.api.post_server_action(
                self.s1["id"], {"os-migrateLive": {"host": dest, "block_migration": "auto"}}
            )
            self._wait_for_migration_status(self.s1, ["error", "failed"])
            self._wait_for_server_parameter(self.s1, {"OS-EXT-STS:task_state": None})
            self.notifier.wait_for_versioned_notifications("instance.live_migration_rollback.end")

    def live_migration_fails_in_driver(self):
        """The hypervisor's migration fails and the driver calls the recover method."""
        source = self._host_of(self.s1)
        dest = self._other_host(source)

        def fail(
            context, instance, dest, post_method, recover_method, block_migration=False, migrate_data=None
        ):
            recover_method(context, instance, dest, migrate_data)

        with mock.patch.object(self.computes[source].driver, "live_migration", side_effect=fail):
            self.api.post_server_action(
                self.s1["id"], {"os-migrateLive": {"host": dest, "block_migration": "auto"}}
            )
            self._wait_for_migration_status(self.s1, ["error", "failed"])
            self._wait_for_server_parameter(self.s1, {"OS-EXT-STS:task_state": None})
            self.notifier.wait_for_versioned_notifications("instance.live_migration_rollback.end")

    def resize_fails_on_source_rollback(self):
        """migrate_disk_and_power_off raises InstanceFaultRollback after the dest's resize_prep.end."""
        server = self._boot(self.small, "host1")
        rollback = exception.InstanceFaultRollback(
            inner_exception=exception.ResizeError(reason="disk too small, rolled back")
        )
        with mock.patch.object(
            self.computes["host1"].driver, "migrate_disk_and_power_off", side_effect=rollback
        ):
            self.api.post_server_action(server["id"], {"resize": {"flavorRef": self.large}})
            self._wait_exception()
            self._wait_for_server_parameter(server, {"status": "ACTIVE", "OS-EXT-STS:task_state": None})

    def resize_fails_on_source_error(self):
        """migrate_disk_and_power_off raises ResizeError: the instance goes to ERROR on the source."""
        self.errored = self._boot(self.small, "host2")
        failure = exception.ResizeError(reason="hypervisor refused")
        with mock.patch.object(
            self.computes["host2"].driver, "migrate_disk_and_power_off", side_effect=failure
        ):
            self.api.post_server_action(self.errored["id"], {"resize": {"flavorRef": self.other}})
            self._wait_exception()
            self._wait_for_state_change(self.errored, "ERROR")

    def cold_migration_fails_at_finish(self):
        """finish_migration fails on the destination: Nova keeps the destination, frees the source."""
        server = self._boot(self.small, "host3")
        with contextlib.ExitStack() as patches:
            for host in ("host1", "host2"):
                failure = test.TestingException("finish failed")
                patches.enter_context(
                    mock.patch.object(self.computes[host].driver, "finish_migration", side_effect=failure)
                )
            self.api.post_server_action(server["id"], {"migrate": None})
            self._wait_exception()
            self._wait_for_state_change(server, "ERROR")

    def cold_migration_fails_at_prep(self):
        """Migration to a named host whose prep_resize fails: no reschedule; resize_prep.end, then
        the exception."""
        server = self._boot(self.large, "host1")
        dest = "host2"
        with mock.patch.object(
            self.computes[dest].manager, "_prep_resize", side_effect=test.TestingException("prep failed")
        ):
            self.api.post_server_action(server["id"], {"migrate": {"host": dest}})
            self._wait_exception()
            self._wait_for_server_parameter(server, {"OS-EXT-STS:task_state": None})

    def resize_rescheduled(self):
        """The first destination's prep_resize fails; the conductor reschedules to the next one."""
        server = self._boot(self.small, "host2")
        original = compute_manager.ComputeManager._prep_resize
        calls = []

        def fail_once(manager, *args, **kwargs):
            calls.append(manager.host)
            if len(calls) == 1:
                raise test.TestingException("first destination failed")
            return original(manager, *args, **kwargs)

        with mock.patch.object(compute_manager.ComputeManager, "_prep_resize", fail_once):
            self.api.post_server_action(server["id"], {"resize": {"flavorRef": self.large}})
            self._wait_for_state_change(server, "VERIFY_RESIZE")
        self.assertEqual(2, len(calls))
        self._confirm_resize(server)

    def evacuate(self):
        source = self._host_of(self.s2)
        self.computes[source].stop()
        self._force_down(source, True)
        self._evacuate_server(self.s2)
        # the failed host frees its allocation only when it comes back
        self.computes[source] = self.restart_compute_service(
            self.computes[source], keep_hypervisor_state=False
        )
        self._force_down(source, False)

    def evacuation_fails(self):
        """The destination's rebuild fails: its claim is dropped, the instance stays on the failed host."""
        source = self._host_of(self.s2)
        self.computes[source].stop()
        self._force_down(source, True)
        others = [h for h in HOSTS if h != source]
        patchers = [
            mock.patch.object(
                self.computes[h].driver, "rebuild", side_effect=test.TestingException("rebuild failed")
            )
            for h in others
        ]
        for patcher in patchers:
            patcher.start()
        try:
            self._evacuate_server(self.s2, expected_state="ERROR", expected_migration_status="failed")
            self.notifier.wait_for_versioned_notifications("instance.rebuild.error")
        finally:
            for patcher in patchers:
                patcher.stop()
        self.computes[source] = self.restart_compute_service(
            self.computes[source], keep_hypervisor_state=True
        )
        self._force_down(source, False)

    def deletes_everything(self):
        for server in self.api.get_servers():
            self._delete_server(server)

    SCENARIOS = (
        "boots_and_deletes",
        "boot_from_volume",
        "shelve_offload_unshelve",
        "soft_delete_restore",
        "resize_confirm",
        "resize_revert",
        "cold_migration_confirm",
        "live_migration",
        "live_migration_rollback",
        "live_migration_fails_in_driver",
        "resize_fails_on_source_rollback",
        "resize_fails_on_source_error",
        "cold_migration_fails_at_finish",
        "cold_migration_fails_at_prep",
        "resize_rescheduled",
        "evacuate",
        "evacuation_fails",
        "deletes_everything",
    )

    def test_capture(self):
        only = os.environ.get("NOVA_CAPTURE_ONLY")
        for name in self.SCENARIOS:
            if only and name not in only.split(","):
                continue
            self._begin(name)
            getattr(self, name)()
            self._end(name)
        _write(self.truths)


def _write(truths):
    os.makedirs(OUT, exist_ok=True)
    for family in ("versioned", "legacy"):
        with open(os.path.join(OUT, f"feed.{family}.jsonl"), "w") as out:
            for scenario, fam, key, text in _RECORDED:
                if fam == family and scenario is not None:
                    out.write(json.dumps({"scenario": scenario, "routing_key": key, "body": text}) + "\n")
    with open(os.path.join(OUT, "truth.json"), "w") as out:
        json.dump(truths, out, indent=1, sort_keys=True)
        out.write("\n")
