"""A database fault that is not the message's (a missing table, a revoked grant, a
statement timeout under a DBA's lock) is neither transient nor poison: good
messages wait unacknowledged, the health check fails naming the reason, nothing
is dead-lettered, and all of them count once it is fixed.

One worker lives through the faults one after the other (a worker start and a
scratch database cost seconds each); it waits to be healthy again between them,
so each fault's reason is its own."""

import uuid

import pytest
import sqlalchemy as sa

from tests import factories
from tests.functional.test_faults import Rig, feed, merged, notification, verdict, wait_until
from tests.functional.test_worker_start import _publish_to_a_running_worker

pytestmark = pytest.mark.functional


class WorkerRole:
    """The worker logs in with a role of its own, as in production, with a statement_timeout."""

    def __init__(self, url):
        self.name = f"tracker_{uuid.uuid4().hex[:8]}"
        self.url = (
            sa.make_url(url).set(username=self.name, password="pw").render_as_string(hide_password=False)
        )

    def create(self, admin):
        admin.exec_driver_sql(f"CREATE ROLE {self.name} LOGIN PASSWORD 'pw'")
        admin.exec_driver_sql(f"GRANT ALL ON ALL TABLES IN SCHEMA public TO {self.name}")
        admin.exec_driver_sql(f"GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO {self.name}")
        admin.exec_driver_sql(f"ALTER ROLE {self.name} SET statement_timeout = '300ms'")

    def drop(self, admin):
        admin.exec_driver_sql(
            f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{self.name}'"
        )
        admin.exec_driver_sql(f"DROP OWNED BY {self.name}")
        admin.exec_driver_sql(f"DROP ROLE {self.name}")


class MissingTable:
    """``project_usage`` renamed away (as a schema of another version would lack it), then back."""

    reason = 'UndefinedTable: relation "project_usage" does not exist'
    said = "the database refuses our work ("

    def break_it(self, admin, role):
        admin.exec_driver_sql("ALTER TABLE project_usage RENAME TO project_usage_away")

    def fix(self, admin, role):
        admin.exec_driver_sql("ALTER TABLE project_usage_away RENAME TO project_usage")


class RevokedGrant:
    """The worker's role loses UPDATE on compute_nodes, then gets it back."""

    reason = "InsufficientPrivilege: permission denied for table compute_nodes"
    said = "the database refuses our work ("

    def break_it(self, admin, role):
        admin.exec_driver_sql(f"REVOKE UPDATE ON compute_nodes FROM {role.name}")

    def fix(self, admin, role):
        admin.exec_driver_sql(f"GRANT UPDATE ON compute_nodes TO {role.name}")


class LockedUnderStatementTimeout:
    """A DBA holds a maintenance lock on compute_nodes; the worker's role has a
    statement_timeout: every statement is cancelled (57014, on no list) until the lock goes.
    It once dead-lettered 5 of 5 good messages with the health check green."""

    reason = "QueryCanceled: canceling statement due to statement timeout"
    said = "fails our work ("

    def __init__(self, url):
        self.dba = sa.create_engine(url)

    def break_it(self, admin, role):
        self.locking = self.dba.connect()
        self.locking.begin()
        self.locking.exec_driver_sql("LOCK TABLE compute_nodes IN ACCESS EXCLUSIVE MODE")

    def fix(self, admin, role):
        self.locking.rollback()
        self.locking.close()


def test_database_faults_dead_letter_nothing_fail_health_and_resume_once_fixed(
    tmp_path, names, postgresql_url
):
    role = WorkerRole(postgresql_url)
    locked = LockedUnderStatementTimeout(postgresql_url)
    admin = sa.create_engine(postgresql_url, isolation_level="AUTOCOMMIT")
    try:
        # the rig migrates the database; the worker's role gets its grants afterwards
        with admin.connect() as connection, Rig(tmp_path, names, postgresql_url, database=role.url) as rig:
            role.create(connection)
            try:
                worker = rig.start()
                truths = [
                    _one_fault(rig, worker, connection, role, fault, number)
                    for number, fault in enumerate([MissingTable(), RevokedGrant(), locked])
                ]
                verdict(rig.finish(worker, merged(*truths), dead=0))
                assert "Traceback" not in rig.log_text()
            finally:
                locked.dba.dispose()  # the lock goes with its connection, whatever happened
                role.drop(connection)
    finally:
        admin.dispose()


def _one_fault(rig, worker, admin, role, fault, number):
    bodies, truth = feed(5, f"env{number}", delete_every=0)
    # a service disabled meanwhile: kept once fixed, never dead-lettered (it once was)
    disabled = factories.service_payload(f"env{number}-cmp0", disabled=True, reason="maintenance")
    bodies.append(notification("service.update", disabled, f"env{number}-cmp0", factories.T0))
    fault.break_it(admin, role)
    _publish_to_a_running_worker(rig, bodies)
    wait_until(lambda: rig.check_health()[0] == 1, 40, lambda: f"failing health: {rig.check_health()}")
    _, why = rig.check_health()
    assert fault.said in why and fault.reason in why, why
    assert worker.alive()
    assert rig.broker.depth(rig.dlq) == 0
    assert rig.instances() == 5 * number
    assert f"{fault.said}{fault.reason})" in rig.log_text()

    fault.fix(admin, role)
    wait_until(lambda: rig.instances() == 5 * (number + 1), 40, "the waiting messages applied once fixed")
    wait_until(lambda: _disabled(rig, f"env{number}-cmp0"), 40, "the waiting service.update kept once fixed")
    wait_until(lambda: rig.check_health()[0] == 0, 40, lambda: f"healthy again: {rig.check_health()}")
    return truth


def _disabled(rig, host):
    with rig.db.engine.connect() as connection:
        query = sa.text("SELECT disabled FROM host_services WHERE host = :host")
        return bool(connection.execute(query, {"host": host}).scalar())
