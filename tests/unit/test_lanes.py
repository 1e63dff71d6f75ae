import queue
import threading
import time

from tracker.bus.lanes import Lanes, lane_index


def test_lane_index_is_stable_and_spreads_hosts():
    assert lane_index("cmp1", 4) == lane_index("cmp1", 4)
    assert len({lane_index(f"cmp{i}", 4) for i in range(40)}) == 4


def test_items_of_one_key_run_one_at_a_time_in_order():
    running = {"now": 0, "max": 0}
    lock = threading.Lock()

    def handle(item):
        with lock:
            running["now"] += 1
            running["max"] = max(running["max"], running["now"])
        time.sleep(0.001)
        with lock:
            running["now"] -= 1
        return item

    results: queue.Queue = queue.Queue()
    lanes = Lanes(4, handle, results)
    lanes.start()
    for i in range(50):
        lanes.submit("cmp1", i)
    assert lanes.stop(10)
    assert [results.get_nowait() for _ in range(50)] == list(range(50))
    assert running["max"] == 1


def test_different_keys_run_concurrently():
    barrier = threading.Barrier(2, timeout=5)
    results: queue.Queue = queue.Queue()
    lanes = Lanes(8, lambda item: barrier.wait() is not None, results)
    lanes.start()
    keys = [k for k in (f"h{i}" for i in range(100)) if lane_index(k, 8) in (0, 1)]
    first = next(k for k in keys if lane_index(k, 8) == 0)
    second = next(k for k in keys if lane_index(k, 8) == 1)
    lanes.submit(first, 1)
    lanes.submit(second, 2)
    assert lanes.stop(5)
    assert results.qsize() == 2
