import queue
import threading
import time

from tracker.bus.lanes import Lanes, lane_index


def test_lane_index_is_stable_and_spreads_hosts():
    assert lane_index("cmp1", 4) == lane_index("cmp1", 4)
    assert len({lane_index(f"cmp{i}", 4) for i in range(40)}) == 4


def test_items_of_one_key_run_one_batch_at_a_time_in_order():
    running = {"now": 0, "max": 0}
    lock = threading.Lock()

    def handle(items):
        with lock:
            running["now"] += 1
            running["max"] = max(running["max"], running["now"])
        time.sleep(0.001)
        with lock:
            running["now"] -= 1
        return list(items)

    results: queue.Queue = queue.Queue()
    lanes = Lanes(4, handle, results, batch_size=7)
    lanes.start()
    for i in range(50):
        lanes.submit("cmp1", i)
    assert lanes.stop(10)
    assert [results.get_nowait() for _ in range(50)] == list(range(50))
    assert running["max"] == 1


def test_a_lane_takes_what_queued_up_in_batches_bounded_by_size():
    release = threading.Event()
    sizes = []

    def handle(items):
        release.wait(5)  # the first batch holds the lane while the rest queue up
        sizes.append(len(items))
        return list(items)

    results: queue.Queue = queue.Queue()
    lanes = Lanes(1, handle, results, batch_size=10)
    lanes.start()
    lanes.submit("cmp1", 0)
    time.sleep(0.05)
    for i in range(1, 26):
        lanes.submit("cmp1", i)
    release.set()
    assert lanes.stop(5)
    assert sizes == [1, 10, 10, 5]
    assert [results.get_nowait() for _ in range(26)] == list(range(26))


def test_a_lane_waits_at_most_batch_wait_for_more():
    sizes = []
    results: queue.Queue = queue.Queue()
    lanes = Lanes(1, lambda items: sizes.append(len(items)) or list(items), results, 50, batch_wait=0.3)
    lanes.start()
    lanes.submit("cmp1", 0)
    time.sleep(0.05)
    lanes.submit("cmp1", 1)  # within the wait: same batch
    time.sleep(0.5)
    lanes.submit("cmp1", 2)  # after it: a batch of its own
    assert lanes.stop(5)
    assert sizes == [2, 1]


def test_different_keys_run_concurrently():
    barrier = threading.Barrier(2, timeout=5)
    results: queue.Queue = queue.Queue()
    lanes = Lanes(8, lambda items: [barrier.wait() is not None for _ in items], results)
    lanes.start()
    keys = [k for k in (f"h{i}" for i in range(100)) if lane_index(k, 8) in (0, 1)]
    first = next(k for k in keys if lane_index(k, 8) == 0)
    second = next(k for k in keys if lane_index(k, 8) == 1)
    lanes.submit(first, 1)
    lanes.submit(second, 2)
    assert lanes.stop(5)
    assert results.qsize() == 2


def test_a_lane_stuck_on_one_batch_shows_while_the_others_progress():
    stuck = threading.Event()
    results: queue.Queue = queue.Queue()

    def handle(items):
        if "stuck" in items:
            stuck.wait(5)
        return list(items)

    lanes = Lanes(8, handle, results)
    lanes.start()
    keys = [f"h{i}" for i in range(100)]
    stuck_key = keys[0]
    other = next(k for k in keys if lane_index(k, 8) != lane_index(stuck_key, 8))
    lanes.submit(stuck_key, "stuck")
    for i in range(20):
        lanes.submit(other, i)
        time.sleep(0.01)
    assert lanes.longest_batch() >= 0.15  # the other lane's progress does not hide it
    stuck.set()
    assert lanes.stop(5)
    assert lanes.longest_batch() == 0.0
