"""A database fault that is not the message's (a missing table, a revoked grant, a
statement timeout under a DBA's lock) is neither transient nor poison: good
messages wait unacknowledged, the health check fails naming the reason, nothing
is dead-lettered, and all of them count once it is fixed."""

import uuid

import pytest
import sqlalchemy as sa

from tests.functional.test_faults import Rig, feed, verdict, wait_until

pytestmark = pytest.mark.functional


class MissingTable:
    """``project_usage`` renamed away (as a schema of another version would lack it), then back."""

    def __init__(self, url):
        self.url = url

    def worker_url(self):
        return self.url

    def break_it(self, admin):
        admin.exec_driver_sql("ALTER TABLE project_usage RENAME TO project_usage_away")

    def fix(self, admin):
        admin.exec_driver_sql("ALTER TABLE project_usage_away RENAME TO project_usage")

    reason = 'UndefinedTable: relation "project_usage" does not exist'
    said = "the database refuses our work ("

    def close(self, admin):
        pass


class OwnRole:
    """The worker logs in with a role of its own, as in production."""

    def __init__(self, url):
        self.url = url
        self.role = f"tracker_{uuid.uuid4().hex[:8]}"

    def worker_url(self):
        return (
            sa.make_url(self.url).set(username=self.role, password="pw").render_as_string(hide_password=False)
        )

    def grant_all(self, admin):
        admin.exec_driver_sql(f"CREATE ROLE {self.role} LOGIN PASSWORD 'pw'")
        admin.exec_driver_sql(f"GRANT ALL ON ALL TABLES IN SCHEMA public TO {self.role}")
        admin.exec_driver_sql(f"GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO {self.role}")

    def close(self, admin):
        admin.exec_driver_sql(f"DROP OWNED BY {self.role}")
        admin.exec_driver_sql(f"DROP ROLE {self.role}")


class RevokedGrant(OwnRole):
    """The worker's role loses UPDATE on compute_nodes, then gets it back."""

    def break_it(self, admin):
        admin.exec_driver_sql(f"REVOKE UPDATE ON compute_nodes FROM {self.role}")

    def fix(self, admin):
        admin.exec_driver_sql(f"GRANT UPDATE ON compute_nodes TO {self.role}")

    reason = "InsufficientPrivilege: permission denied for table compute_nodes"
    said = "the database refuses our work ("


class LockedUnderStatementTimeout(OwnRole):
    """A DBA holds a maintenance lock on compute_nodes; the worker's role has a
    statement_timeout: every statement is cancelled (57014, on no list) until the lock goes.
    It once dead-lettered 5 of 5 good messages with the health check green."""

    def grant_all(self, admin):
        super().grant_all(admin)
        admin.exec_driver_sql(f"ALTER ROLE {self.role} SET statement_timeout = '300ms'")

    def break_it(self, admin):
        self.dba = sa.create_engine(self.url)
        self.locking = self.dba.connect()
        self.locking.begin()
        self.locking.exec_driver_sql("LOCK TABLE compute_nodes IN ACCESS EXCLUSIVE MODE")

    def fix(self, admin):
        self.locking.rollback()
        self.locking.close()
        self.dba.dispose()

    def close(self, admin):
        self.dba.dispose()  # the lock goes with its connection, whatever happened
        super().close(admin)

    reason = "QueryCanceled: canceling statement due to statement timeout"
    said = "fails our work ("


@pytest.mark.parametrize("fault", [MissingTable, RevokedGrant, LockedUnderStatementTimeout])
def test_a_broken_database_dead_letters_nothing_fails_health_and_resumes_once_fixed(
    tmp_path, names, postgresql_url, fault
):
    bodies, truth = feed(5, "env", delete_every=0)
    fault = fault(postgresql_url)
    admin = sa.create_engine(postgresql_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            _run_case(tmp_path, names, postgresql_url, fault, connection, bodies, truth)
    finally:
        admin.dispose()


def _run_case(tmp_path, names, postgresql_url, fault, admin, bodies, truth):
    # the rig migrates the database; the worker's role gets its grants afterwards
    with Rig(tmp_path, names, postgresql_url, database=fault.worker_url()) as rig:
        try:
            if isinstance(fault, OwnRole):
                fault.grant_all(admin)
            fault.break_it(admin)
            rig.publish(bodies)
            worker = rig.start()
            wait_until(
                lambda: rig.check_health()[0] == 1, 40, lambda: f"failing health: {rig.check_health()}"
            )
            _, why = rig.check_health()
            assert fault.said in why and fault.reason in why, why
            assert worker.alive()
            assert rig.broker.depth(rig.dlq) == 0
            assert rig.instances() == 0
            log = rig.log_text()
            assert f"{fault.said}{fault.reason})" in log
            assert "Traceback" not in log

            fault.fix(admin)
            wait_until(lambda: rig.instances() == 5, 40, "the waiting messages applied once fixed")
            wait_until(lambda: rig.check_health()[0] == 0, 40, lambda: f"healthy again: {rig.check_health()}")
            verdict(rig.finish(worker, truth, dead=0))
        finally:
            fault.close(admin)
