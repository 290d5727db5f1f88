"""The Ray runner: a real local Ray started by the tests, on loopback only."""
import ipaddress
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from _util import kill_after_first_shard, shard_bytes

from blursynth.recipe import load_recipe
from blursynth.runner import run_generate
from blursynth.store.manifest import Manifest

RECIPE = ["size=[96, 64]"]


def listening_sockets() -> set[tuple[str, int, str]]:
    """(local address, port, inode) of every listening TCP socket on this machine, from /proc/net."""
    found = set()
    for name, v6 in (("/proc/net/tcp", False), ("/proc/net/tcp6", True)):
        try:
            lines = Path(name).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            local, state, inode = parts[1], parts[3], parts[9]
            if state != "0A":  # LISTEN
                continue
            addr_hex, port_hex = local.split(":")
            # /proc/net prints the address as 32-bit words in host (little-endian) byte order
            raw = b"".join(bytes.fromhex(addr_hex[i:i + 8])[::-1] for i in range(0, len(addr_hex), 8))
            found.add((ipaddress.ip_address(raw), int(port_hex, 16), inode))
    return found


def is_loopback(addr) -> bool:
    mapped = getattr(addr, "ipv4_mapped", None)
    return addr.is_loopback or (mapped is not None and mapped.is_loopback)


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("ref") / "run"
    run_generate(load_recipe("default", RECIPE), "builtin", 6, out, seed=5, shard_size=2, progress=False, workers=0)
    return out


def test_two_ray_workers_give_the_same_bytes_on_loopback_only(reference_run, tmp_path):
    before = listening_sockets()
    seen = set()
    out = tmp_path / "ray"

    import threading

    stop = threading.Event()

    def watch():
        while not stop.is_set():
            seen.update(listening_sockets() - before)
            time.sleep(0.2)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        summary = run_generate(load_recipe("default", RECIPE), "builtin", 6, out, seed=5, shard_size=2,
                               progress=False, workers=2)
    finally:
        stop.set()
        watcher.join()
    assert summary.written == 6 and summary.shards_done == 3
    assert shard_bytes(out) == shard_bytes(reference_run)
    assert [s.checksum for s in Manifest.load(out).shards] == [s.checksum for s in Manifest.load(reference_run).shards]
    # Ray opened ports while it ran, and every one of them was bound to loopback
    assert seen, "no listening socket seen while Ray ran"
    assert all(is_loopback(addr) for addr, _, _ in seen), sorted(map(str, seen))


def _processes():
    """(pid, parent pid, command line bytes) of every process this test can read, from /proc."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            ppid = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
            cmd = (proc / "cmdline").read_bytes()
        except (OSError, ValueError, IndexError):
            continue
        yield int(proc.name), ppid, cmd


def _ray_task_pids() -> list[int]:
    return [pid for pid, _, cmd in _processes() if b"ray::_shard_task" in cmd]


def test_a_killed_ray_worker_is_retried_and_the_run_completes(reference_run, tmp_path):
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "blursynth", "generate", "--num", "6", "--out", str(out), "--seed", "5",
           "--shard-size", "2", "--size", "96x64", "--workers", "1", "--no-progress"]
    env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    killed = None
    deadline = time.time() + 120
    while killed is None and time.time() < deadline and proc.poll() is None:
        pids = _ray_task_pids()
        if pids:
            time.sleep(0.3)  # let it get into the shard
            os.kill(pids[0], signal.SIGKILL)
            killed = pids[0]
        time.sleep(0.05)
    output = proc.communicate(timeout=300)[0].decode()
    assert killed is not None, "never saw a running shard task to kill:\n" + output
    assert proc.returncode == 0, output
    assert "wrote 6 of 6 samples" in output
    assert shard_bytes(out) == shard_bytes(reference_run)


@pytest.mark.parametrize("workers", ["0", "2"])
def test_driver_killed_mid_run_resumes_to_the_same_bytes(reference_run, tmp_path, workers):
    out = tmp_path / "crashed"
    cmd = [sys.executable, "-m", "blursynth", "generate", "--num", "6", "--out", str(out), "--seed", "5",
           "--shard-size", "2", "--size", "96x64", "--workers", workers, "--no-progress"]
    before = set(_orphaned_ray_pids())
    kill_after_first_shard(cmd, out)
    done = len(Manifest.load(out).shards)
    assert 1 <= done, "the driver never finished a shard"
    r = subprocess.run(cmd + ["--resume"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert shard_bytes(out) == shard_bytes(reference_run)
    assert not list(out.glob("*.tmp"))
    # Ray's agents of the killed driver's session outlive it (Ray's behaviour, seen for 20+ s): end them here
    for pid in set(_orphaned_ray_pids()) - before:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _orphaned_ray_pids() -> list[int]:
    """Ray processes whose parent is gone (re-parented to init)."""
    return [pid for pid, ppid, cmd in _processes() if ppid == 1 and cmd.startswith(b"ray::")]
@pytest.fixture
def two_node_cluster():
    """A head and a second node on this machine, loopback only (conftest sets the environment), 1 CPU each."""
    from ray.cluster_utils import Cluster

    before = listening_sockets()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    try:
        cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        cluster.opened = listening_sockets() - before
        yield cluster
    finally:
        cluster.shutdown()


def test_generate_joins_a_two_node_cluster_and_uses_both(two_node_cluster, reference_run, tmp_path):
    before = listening_sockets()
    out = tmp_path / "cluster"
    cmd = [sys.executable, "-m", "blursynth", "generate", "--num", "6", "--out", str(out), "--seed", "5",
           "--shard-size", "1", "--size", "96x64", "--address", two_node_cluster.address, "--no-progress"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    m = Manifest.load(out)
    nodes = set(m.extra["shard_nodes"].values())
    assert len(nodes) == 2, m.extra["shard_nodes"]
    # same samples as the in-process reference, shard by shard
    assert shard_bytes(out, by_shard=False) == shard_bytes(reference_run, by_shard=False)
    opened = two_node_cluster.opened | (listening_sockets() - before)
    assert opened and all(is_loopback(addr) for addr, _, _ in opened), sorted(map(str, opened))


def test_map_tasks_gives_the_job_of_a_dead_actor_out_again_and_gives_up_after_the_retries(tmp_path):
    """runner.map_tasks on a pool of real actors: an actor whose process dies mid-job is restarted by Ray and
    the job given out again (every result arrives once); a job that kills every actor ends the map after
    `retries` tries with Ray's error."""
    from blursynth.runner import _start_ray, _Tally, map_tasks
    from blursynth.store.progress import Progress

    class DiesOnce:
        """Kills its own process (os._exit: no exception to catch) on job 2 once, and on job "always" every time.
        Defined here so that Ray ships it by value (the workers cannot import this test module)."""

        def run(self, job, marker_dir: str):
            marker = Path(marker_dir) / f"died-{job}"
            if job == "always" or (job == 2 and not marker.exists()):
                marker.touch()
                os._exit(1)
            return job * 10

    ray = _start_ray(2, None)
    try:
        actor = ray.remote(num_cpus=1, max_restarts=5)(DiesOnce)
        pool = [actor.remote() for _ in range(2)]
        results = {}

        def submit(job, worker):
            return worker.run.remote(job, str(tmp_path))

        map_tasks(ray, [0, 1, 2, 3], submit, results.__setitem__, _Tally(ray, Progress(4, False), 2), pool=pool)
        assert results == {0: 0, 1: 10, 2: 20, 3: 30}
        assert (tmp_path / "died-2").exists()  # the job did kill its actor once
        with pytest.raises(ray.exceptions.RayActorError):
            map_tasks(ray, ["always"], submit, results.__setitem__, _Tally(ray, Progress(1, False), 2), pool=pool,
                      retries=1)
    finally:
        ray.shutdown()
