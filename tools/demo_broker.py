"""What the demo leaves on the broker: nothing it did not find there.

    python tools/demo_broker.py snapshot URL STATE.json   # before: which entities exist
    python tools/demo_broker.py cleanup URL STATE.json    # after: delete those the demo created
    python tools/demo_broker.py check URL                 # can we log in? one line if not

The entities are the demo's own queues (config below) and those the simulated
Nova's oslo.messaging notifier declares and fills (``versioned_notifications.*``).
One that existed before the demo is left alone, messages included: it may be
someone else's.
"""

import json
import sys

import kombu

from tracker.bus.amqp import broker_urls

QUEUES = (
    "versioned_notifications.info",
    "versioned_notifications.error",
    "tracker-demo.nova_notifications",
    "tracker-demo.dead_letter",
)
EXCHANGES = ("nova", "tracker-demo")


def _exists(connection: kombu.Connection, kind: str, name: str) -> bool:
    channel = connection.channel()  # a 404 closes the channel: one per question
    try:
        if kind == "queue":
            channel.queue_declare(name, passive=True)
        else:
            channel.exchange_declare(name, "topic", passive=True)
    except connection.channel_errors:
        return False
    finally:
        if channel.is_open:
            channel.close()
    return True


def _connect(url: str) -> kombu.Connection:
    connection = kombu.Connection(broker_urls(url)[0], connect_timeout=5)
    connection.connect()
    return connection


def snapshot(url: str, path: str) -> None:
    with _connect(url) as connection:
        found = {
            "queue": [q for q in QUEUES if _exists(connection, "queue", q)],
            "exchange": [e for e in EXCHANGES if _exists(connection, "exchange", e)],
        }
    with open(path, "w", encoding="utf-8") as out:
        json.dump(found, out)


def cleanup(url: str, path: str) -> None:
    with open(path, encoding="utf-8") as handle:
        before = json.load(handle)
    deleted = []
    with _connect(url) as connection:
        channel = connection.channel()
        for queue in QUEUES:
            if queue not in before["queue"] and _exists(connection, "queue", queue):
                channel.queue_delete(queue)
                deleted.append(f"queue {queue}")
        for exchange in EXCHANGES:
            if exchange not in before["exchange"] and _exists(connection, "exchange", exchange):
                channel.exchange_delete(exchange)
                deleted.append(f"exchange {exchange}")
    print(f"removed from the broker what the demo created: {', '.join(deleted) or 'nothing'}")


def check(url: str) -> int:
    try:
        _connect(url).release()
    except Exception as error:  # noqa: BLE001 - one line for the operator, whatever the cause
        print(f"cannot use the broker: {type(error).__name__}: {str(error).splitlines()[0]}")
        return 1
    return 0


def main(argv: list[str]) -> int:
    command, url, *rest = argv
    if command == "check":
        return check(url)
    {"snapshot": snapshot, "cleanup": cleanup}[command](url, rest[0])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
