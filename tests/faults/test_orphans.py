"""Pool workers die with their parent, even when it is killed while they start."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import children_of

REPO = Path(__file__).resolve().parents[2]
PARENT = """
import os, sys, time
sys.path.insert(0, {repo!r})
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from tests.faults.pool_worker import init, pid

with ProcessPoolExecutor(1, mp_context=get_context({ctx!r}), initializer=init,
                         initargs=(os.getpid(), {slow})) as pool:
    future = pool.submit(pid)
    if {slow}:
        time.sleep(1.0)  # the worker is inside its start-up
    print(future.result() if not {slow} else "started", flush=True)
    time.sleep(60)
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return stat.is_file() and stat.read_text().split()[2] != "Z"


def _children_of(pid: int):
    return children_of(pid)


def _run(ctx: str, slow: bool):
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT.format(repo=str(REPO), ctx=ctx, slow=slow)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    line = parent.stdout.readline().strip()
    workers = [p for p in _children_of(parent.pid)]
    parent.send_signal(signal.SIGKILL)  # no cleanup of any kind
    parent.wait()
    t0 = time.time()
    while time.time() - t0 < 15 and any(_alive(w) for w in workers):
        time.sleep(0.1)
    return line, workers


def test_spawned_decode_style_worker_dies_with_a_killed_parent():
    line, workers = _run("spawn", slow=False)
    assert line.isdigit() and workers
    assert not any(_alive(w) for w in workers), "worker survived its parent"


def test_worker_still_starting_when_the_parent_dies_exits_too():
    """The parent is killed while the worker is inside its (slow) start-up: the worker must
    notice when it gets to its initializer."""
    line, workers = _run("spawn", slow=True)
    assert line == "started" and workers
    assert not any(_alive(w) for w in workers), "worker survived its parent"


def test_forked_feature_style_worker_dies_with_a_killed_parent():
    line, workers = _run("fork", slow=False)
    assert line.isdigit() and workers
    assert not any(_alive(w) for w in workers), "worker survived its parent"
