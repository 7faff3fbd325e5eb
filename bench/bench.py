#!/usr/bin/env python3
"""Benchmarks of ngx_http_sse_module against nchan, a floor server and nginx.

For every workload each server is started fresh in a directory of its own
under <build>/run/, measured and stopped, one server after the other (module,
nchan, floor, and plain nginx where it applies), so that the columns of a row
come from the same run on the same machine.  The results go to
<build>/results.json, a markdown report (ratios, targets met or not, method,
machine) and gnuplot plots.  `make bench` and `make bench-quick` run this;
docs/benchmarks.md is its output.
"""

import argparse
import atexit
import json
import os
import platform
import random
import re
import resource
import select
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONF_DIR = ROOT / "bench" / "conf"
NCHAN_SO = Path("/usr/lib/nginx/modules/ngx_nchan_module.so")
NGINX = "/usr/sbin/nginx"
REDIS_SERVER = "/usr/bin/redis-server"
REDIS_BENCHMARK = "/usr/bin/redis-benchmark"
CLK_TCK = os.sysconf("SC_CLK_TCK")


# ------------------------------------------------------------------ profiles

@dataclass
class Profile:
    """The sizes of the workloads (see docs/benchmarks.md, Method)."""
    broadcast_subs: int
    broadcast_events: int
    many_channels: int
    many_subs_per_channel: int
    many_events: int
    many_publishers: int
    rate_seconds: float
    rate_channels: int
    rate_publishers: int
    rate_subs_per_channel: int
    rate_paced: float        # "publish, no subscribers, paced": publishes per second in all
    rate_10_paced: float     # "publish, 10 subscribers per channel, paced": the same
    idle_subs: int
    idle_channels: int
    held_subs: int
    held_workers: int
    held_channels: int
    storm_clients: int
    storm_channels: int
    storm_before: int
    storm_missed: int
    paced_events: int
    paced_rate: float        # events per second
    many_paced_events: int   # "many channels, paced": events per channel ...
    many_paced_rate: float   # ... published at this many per second over all channels
    replay_clients: int      # "replay storm": clients that join at once with sse_replay all ...
    replay_events: int       # ... a channel holding this many events ...
    replay_size: int         # ... of this many bytes each
    tokens_channels: int     # "tokens": channels (one subscriber each) ...
    tokens_channels_many: int  # ... and the wider variant
    tokens_rate: float       # tokens per second over all channels
    tokens_seconds: float    # how long the tokens are published for
    rounds: int              # of the workloads measured more than once (median kept)
    budget_s: float          # the whole run stops starting workloads after this
    crossnode_subs: int = 5000       # "cross-node": subscribers on each of two nodes ...
    crossnode_channels: int = 100    # ... over this many channels
    crossnode_events: int = 20       # ... events per channel, published on the first node
    workers: int = 2
    event_size: int = 64     # bytes of data per event
    src_ips: int = 8         # client source addresses 127.0.0.1 .. 127.0.0.8
    large_subs: int = 2000           # "broadcast, 16 KB events": subscribers ...
    large_events: int = 100          # ... events ...
    large_event_size: int = 16384    # ... of this many bytes of data each ...
    large_rate: float = 20           # ... published at this many per second


PROFILES = {
    "full": Profile(
        broadcast_subs=10000, broadcast_events=100,
        many_channels=1000, many_subs_per_channel=10, many_events=50, many_publishers=10,
        rate_seconds=5, rate_channels=100, rate_publishers=16, rate_subs_per_channel=10,
        rate_paced=40000, rate_10_paced=5000,
        idle_subs=18000, idle_channels=1000,
        held_subs=100000, held_workers=8, held_channels=1000,
        storm_clients=1000, storm_channels=100, storm_before=10, storm_missed=50,
        paced_events=20, paced_rate=5, many_paced_events=10, many_paced_rate=4000,
        replay_clients=1000, replay_events=1000, replay_size=4096,
        tokens_channels=1000, tokens_channels_many=5000, tokens_rate=4000, tokens_seconds=12,
        rounds=3, budget_s=960),   # 720, + 60 s for the many-channels-paced and
                                   # replay-storm rows, + 60 s for "broadcast, 16 KB
                                   # events", + 30 s for "publish, no subscribers, paced",
                                   # + 30 s for "publish, 10 subscribers per channel, paced",
                                   # + 60 s so that the tokens rows get their third round
                                   # (12 s each, not 20: a median of three rounds, not
                                   # the mean of two that one slow round decides)
    "quick": Profile(
        broadcast_subs=2000, broadcast_events=20,
        many_channels=200, many_subs_per_channel=10, many_events=10, many_publishers=10,
        rate_seconds=2, rate_channels=100, rate_publishers=16, rate_subs_per_channel=10,
        rate_paced=10000, rate_10_paced=3000,
        idle_subs=3000, idle_channels=300,
        held_subs=10000, held_workers=4, held_channels=100,
        storm_clients=200, storm_channels=20, storm_before=5, storm_missed=20,
        paced_events=10, paced_rate=5, many_paced_events=5, many_paced_rate=1000,
        replay_clients=200, replay_events=200, replay_size=4096,
        tokens_channels=200, tokens_channels_many=1000, tokens_rate=1000, tokens_seconds=6,
        rounds=1, budget_s=300,
        crossnode_subs=1000, crossnode_channels=20, crossnode_events=10),
}

SERVER_ORDER = ["module", "nchan", "floor", "plain"]


class BenchError(Exception):
    """A workload could not be measured on one server."""


# ------------------------------------------------------------------ /proc

def children_of(pid):
    kids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            kids.append(int(entry))
    return kids


def cpu_ticks(pid):
    """utime + stime of one process, in clock ticks."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def host_busy_s():
    """CPU time the whole host spent busy (all cores; steal counts as busy)."""
    with open("/proc/stat") as f:
        ticks = [int(v) for v in f.readline().split()[1:9]]
    return (sum(ticks) - ticks[3] - ticks[4]) / CLK_TCK


def own_cpu_s():
    """CPU time of this process and every descendant reaped so far: the
    servers and load generators (each reaps its own children)."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def pss_kib(pid):
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith("Pss:"):
                return int(line.split()[1])
    return 0


# ------------------------------------------------------------------ processes

LIVE = set()   # servers and load generators to stop whatever happens


def stop_everything():
    for thing in list(LIVE):
        thing.kill()


def free_port():
    """A free port on 127.0.0.1 outside the ephemeral range the clients use."""
    for _ in range(200):
        port = random.randint(20000, 32000)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
                return port
            except OSError:
                continue
    raise BenchError("no free port")


def kill_group(proc):
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


class Loadgen:
    """One run of bench/loadgen, whose stdout is a stream of JSON events."""

    def __init__(self, exe, mode, args, log_path):
        self.name = f"loadgen {mode}"
        self.log = open(log_path, "wb")
        cmd = [str(exe), mode] + [str(a) for a in args]
        self.log.write((" ".join(cmd) + "\n").encode())
        self.log.flush()
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self.log,
                                     start_new_session=True)
        self.buf = b""
        self.report = None
        LIVE.add(self)

    def wait_for(self, event, timeout):
        """The next JSON event of that name, within timeout seconds."""
        deadline = time.monotonic() + timeout
        while True:
            line = self._readline(deadline)
            if line is None:
                status = self.proc.poll()
                why = f"exited with {status}" if status is not None else f"nothing in {timeout:.0f}s"
                raise BenchError(f"{self.name}: no '{event}' event ({why})")
            msg = json.loads(line)
            if msg.get("event") == "report":
                self.report = msg
            if msg.get("event") == event:
                return msg

    def _readline(self, deadline):
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            ready, _, _ = select.select([self.proc.stdout], [], [], left)
            if not ready:
                return None
            chunk = os.read(self.proc.stdout.fileno(), 1 << 16)
            if not chunk:
                return None
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line

    def finish(self, timeout=30):
        """Stops it (a subscriber closes its connections) and returns its report."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            if self.report is None:
                self.wait_for("report", timeout)
            self.proc.wait(timeout)
        except (BenchError, subprocess.TimeoutExpired):
            pass
        self.kill()
        return self.report

    def kill(self):
        if self.proc.poll() is None:
            kill_group(self.proc)
            self.proc.wait()
        kill_group(self.proc)   # children left behind, if any
        self.proc.stdout.close()
        self.log.close()
        LIVE.discard(self)


class Server:
    """A server in its own directory, on a port picked at start."""

    def __init__(self, kind, rundir, workers):
        self.kind = kind
        self.dir = rundir
        self.workers = workers
        self.port = None
        self.proc = None

    def command(self):
        raise NotImplementedError

    def start(self):
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        cmd = self.command()
        with open(self.dir / "stderr.log", "wb") as err:
            self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err,
                                         cwd=self.dir, start_new_session=True)
        LIVE.add(self)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BenchError(f"{self.kind} did not start: {self.startup_error()}")
            if len(children_of(self.proc.pid)) >= self.workers and self.accepts():
                return
            time.sleep(0.05)
        raise BenchError(f"{self.kind} not ready in 15s")

    def accepts(self):
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", self.port)) == 0

    def startup_error(self):
        text = (self.dir / "stderr.log").read_text(errors="replace").strip()
        return text.splitlines()[-1] if text else "no output"

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                pass
        self.kill()

    def kill(self):
        if self.proc:
            kill_group(self.proc)   # workers left behind, if any
            if self.proc.poll() is None:
                self.proc.wait()
        LIVE.discard(self)

    def url(self, what):
        return f"http://127.0.0.1:{self.port}/{what}/c{{ch}}"

    def pids(self):
        return [self.proc.pid] + children_of(self.proc.pid)

    def cpu_snapshot(self):
        snap = {}
        for pid in self.pids():
            try:
                snap[pid] = cpu_ticks(pid)
            except OSError:
                pass
        return snap

    def cpu_since(self, before):
        """CPU-seconds spent since a snapshot; a process that vanished is an error."""
        after = self.cpu_snapshot()
        gone = set(before) - set(after)
        if gone:
            raise BenchError(f"{self.kind}: processes {sorted(gone)} died during the workload")
        return sum(after[p] - before.get(p, 0) for p in after) / CLK_TCK

    def pss_kib(self):
        return sum(pss_kib(pid) for pid in self.pids())

    def workers_rss_kib(self):
        """VmRSS of the workers together (the master holds no stream)."""
        total = 0
        for pid in children_of(self.proc.pid):
            try:
                with open(f"/proc/{pid}/status") as f:
                    total += next(int(line.split()[1]) for line in f
                                  if line.startswith("VmRSS:"))
            except (OSError, StopIteration):
                pass
        return total

    def log_problems(self):
        return []


class Nginx(Server):
    """nginx with one of bench/conf/*.conf.in."""

    def __init__(self, kind, rundir, workers, module_so):
        super().__init__(kind, rundir, workers)
        self.module_so = module_so

    def command(self):
        (self.dir / "tmp").mkdir(exist_ok=True)
        values = {
            "USER": "user root root;" if os.geteuid() == 0 else "",
            "WORKERS": str(self.workers),
            "DIR": str(self.dir),
            "PORT": str(self.port),
            "MODULE_SO": str(self.module_so),
            "NCHAN_SO": str(NCHAN_SO),
            "UPSTREAM": str(getattr(self, "upstream", "")),
            "REDIS_PORT": str(getattr(self, "redis_port", "")),
        }
        text = (CONF_DIR / f"{self.kind}.conf.in").read_text()
        text = re.sub(r"@([A-Z_]+)@", lambda m: values[m.group(1)], text)
        conf = self.dir / "nginx.conf"
        conf.write_text(text)
        return [NGINX, "-p", str(self.dir), "-c", str(conf), "-g", "daemon off;"]

    def log_problems(self):
        """error.log lines at [warn] or worse, counted by message."""
        log = self.dir / "error.log"
        if not log.exists():
            return []
        seen = {}
        for line in log.read_text(errors="replace").splitlines():
            m = re.search(r"\[(warn|error|crit|alert|emerg)\] \d+#\d+: (?:\*\d+ )?(.*)", line)
            if m:
                text = re.sub(r"client: .*", "", m.group(2)).strip()[:200]
                # one entry per kind of message, whatever channel or address
                text = re.sub(r"\b[0-9A-Fa-f]{8,}\b|\d+", "N", text)
                key = f"[{m.group(1)}] {text}"
                seen[key] = seen.get(key, 0) + 1
        return [f"{n}x {k}" for k, n in sorted(seen.items(), key=lambda kv: -kv[1])]


class Floor(Server):
    def __init__(self, rundir, workers, exe):
        super().__init__("floor", rundir, workers)
        self.exe = exe

    def command(self):
        return [str(self.exe), "--listen", f"127.0.0.1:{self.port}",
                "--workers", str(self.workers), "--pid-file", str(self.dir / "floor.pid")]

    def log_problems(self):
        text = (self.dir / "stderr.log").read_text(errors="replace")
        return [line for line in text.splitlines() if line.strip()][:10]


class RedisServer(Server):
    """A redis-server of its own, without persistence, on a free port."""

    def __init__(self, rundir):
        super().__init__("redis", rundir, 0)

    def command(self):
        return [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1",
                "--save", "", "--appendonly", "no", "--dir", str(self.dir),
                "--maxclients", "10000"]

    def log_problems(self):
        text = (self.dir / "stderr.log").read_text(errors="replace")
        return [line for line in text.splitlines() if "# " in line and "WARNING" in line][:5]


class Cluster:
    """Two nginx nodes sharing channels through one redis-server: the
    module with sse_redis, or nchan in its Redis mode.  CPU is counted over
    both nodes and redis-server."""

    def __init__(self, kind, rundir, workers, module_so):
        self.kind = kind
        self.dir = rundir
        self.redis = RedisServer(rundir / "redis")
        self.nodes = []
        for i in range(2):
            node = Nginx(f"{kind}_redis", rundir / f"node{i}", workers, module_so)
            self.nodes.append(node)

    def start(self):
        self.dir.mkdir(parents=True, exist_ok=True)
        self.redis.start()
        for node in self.nodes:
            node.redis_port = self.redis.port
            node.start()

    def stop(self):
        for node in self.nodes:
            node.stop()
        self.redis.stop()

    def parts(self):
        return self.nodes + [self.redis]

    def cpu_snapshot(self):
        return [part.cpu_snapshot() for part in self.parts()]

    def cpu_since(self, before):
        return sum(part.cpu_since(b) for part, b in zip(self.parts(), before))

    def log_problems(self):
        return [f"{part.dir.name}: {line}" for part in self.parts()
                for line in part.log_problems()]


# ------------------------------------------------------------------ workloads

class Bench:
    """What every workload needs: the tools, the profile, the servers."""

    def __init__(self, args):
        self.profile = PROFILES[args.profile]
        self.build = Path(args.build)
        self.loadgen = self.build / "loadgen"
        self.floor = self.build / "floor"
        self.module_so = Path(args.module)
        self.rundir = self.build / "run"
        self.problems = {}   # "workload/server" -> error.log findings

    def snapshot_module(self):
        """Copies the module into the run directory: a rebuild during the run
        (cp rewrites the file in place) would crash the workers mapping it,
        and every workload should measure the same build."""
        copy = self.rundir / self.module_so.name
        shutil.copy2(self.module_so, copy)
        stat = copy.stat()
        self.module_so = copy
        return {"built": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(stat.st_mtime)),
                "bytes": stat.st_size}

    @contextmanager
    def server(self, kind, workload, workers=None):
        workers = workers or self.profile.workers
        rundir = self.rundir / f"{workload}-{kind}"
        shutil.rmtree(rundir, ignore_errors=True)
        if kind == "floor":
            srv = Floor(rundir, workers, self.floor)
        else:
            srv = Nginx(kind, rundir, workers, self.module_so)
        srv.start()
        try:
            yield srv
        finally:
            srv.stop()
            found = srv.log_problems()
            if found:
                self.problems[f"{workload}/{kind}"] = found

    @contextmanager
    def cluster(self, kind, workload, workers=None):
        """Two nodes of `kind` (module or nchan) on one redis-server."""
        rundir = self.rundir / f"{workload}-{kind}"
        shutil.rmtree(rundir, ignore_errors=True)
        cl = Cluster(kind, rundir, workers or self.profile.workers, self.module_so)
        try:
            cl.start()
            yield cl
        finally:
            cl.stop()
            found = cl.log_problems()
            if found:
                self.problems[f"{workload}/{kind}"] = found

    def subscribe(self, srv, name, conns, channels, expect=0, procs=None, timeout=300,
                  extra=(), what="sub"):
        """Starts subscribers (expect=0: they hold until stopped)."""
        p = self.profile
        procs = procs or max(2, -(-conns // 15000))
        args = ["--url", srv.url(what), "--conns", conns, "--channels", channels,
                "--expect", expect, "--procs", procs, "--src-ips", p.src_ips,
                "--timeout", timeout, *extra]
        return Loadgen(self.loadgen, "subscribe" if expect else "hold", args,
                       srv.dir / f"{name}.log")

    def publish(self, srv, name, channels, publishers, events=0, duration=0, procs=1,
                first_seq=1, rate=0, timeout=120, payload="padded", stream=False,
                size=None, what="pub"):
        """Runs publishers to the end and returns their report."""
        args = ["--url", srv.url(what), "--channels", channels, "--publishers", publishers,
                "--procs", procs, "--size", size or self.profile.event_size,
                "--payload", payload, "--stream", int(stream),
                "--first-seq", first_seq, "--rate", rate, "--timeout", timeout]
        args += ["--events", events] if events else ["--duration", duration]
        gen = Loadgen(self.loadgen, "publish", args, srv.dir / f"{name}.log")
        try:
            report = gen.wait_for("report", timeout + 10)
        finally:
            gen.finish()
        if report["errors"]:
            raise BenchError(f"{report['errors']} publish errors")
        report["non_2xx"] = non_2xx(report)
        return report


def non_2xx(pub):
    """Replies to publishes that were not 2xx (loadgen's status counts)."""
    return sum(n for code, n in pub["status"].items() if not code.startswith("2"))


def established(gen, want, timeout):
    up = gen.wait_for("established", timeout)
    if up["established"] != want:
        raise BenchError(f"{up['established']} of {want} subscribers established "
                         f"({up['failed']} failed)")
    return up


def integrity(rep):
    """Lost, duplicated and reordered events, and streams the server ended."""
    return {"lost": rep["lost"], "duplicates": rep["duplicates"] + rep["stale"],
            "reordered": rep["reordered"], "closed": rep["closed"], "resets": rep["resets"]}


def fanout(bench, srv, conns, channels, events, publishers, rate=0, size=None):
    """Subscribers connect, events are published (back to back, or at a
    rate), every delivery is awaited."""
    subs = bench.subscribe(srv, "subscribers", conns, channels, expect=events)
    try:
        up = established(subs, conns, 120)
        time.sleep(0.5)   # let the server finish the last handshakes
        before = srv.cpu_snapshot()
        busy0, t0 = host_busy_s(), time.monotonic()
        pub = bench.publish(srv, "publisher", channels, publishers, events=events, rate=rate,
                            size=size)
        rep = subs.wait_for("report", 120)
        cpu = srv.cpu_since(before)
        busy = (host_busy_s() - busy0) / ((time.monotonic() - t0) * os.cpu_count())
        flush_p99 = server_flush_p99_ms(srv)
    finally:
        subs.finish()
    lat = rep["latency"]
    return {
        "host_busy_share": busy,
        "server_flush_p99_le_ms": flush_p99,
        "subscribers": up["established"],
        "connect_s": up["seconds"],
        "published": pub["requests"],
        "publish_status": pub["status"],
        "non_2xx": pub["non_2xx"],
        "publish_rps": pub["rps"],
        "publish_p99_ms": pub["latency"]["p99_us"] / 1e3,
        "deliveries": rep["unique"],
        "cpu_s": cpu,
        "deliveries_per_cpu_s": rep["unique"] / cpu if cpu else None,
        "latency_p50_ms": lat["p50_us"] / 1e3,
        "latency_p99_ms": lat["p99_us"] / 1e3,
        "latency_max_ms": lat["max_us"] / 1e3,
        "all_delivered_s": (rep["t_complete_ns"] - pub["t_first_ns"]) / 1e9,
        "latency_cdf": rep["latency_cdf"],
        **integrity(rep),
    }


def server_flush_p99_ms(srv):
    """The module's own publish→flush p99 (its sse_status histogram: the
    time from a publish to the write of the event into the subscriber's
    socket), as the bucket bound it falls in; None for other servers.
    Beside the clients' p99 it tells time spent in the server from time
    spent in socket buffers and in clients waiting for a CPU."""
    if srv.kind != "module":
        return None
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{srv.port}/sse-status", timeout=5) as f:
            zone = json.load(f)["zones"]["bench"]
    except (OSError, ValueError, StopIteration, KeyError):
        return None
    hist = zone["publish_flush_seconds"]
    for bucket in hist["buckets"]:
        if hist["count"] and bucket["count"] >= 0.99 * hist["count"]:
            return float(bucket["le"]) * 1e3 if bucket["le"] != "+Inf" else None
    return None


def w_broadcast(bench, kind):
    p = bench.profile
    with bench.server(kind, "broadcast") as srv:
        return fanout(bench, srv, p.broadcast_subs, 1, p.broadcast_events, 1)


def w_broadcast_paced(bench, kind):
    p = bench.profile
    with bench.server(kind, "broadcast_paced") as srv:
        return fanout(bench, srv, p.broadcast_subs, 1, p.paced_events, 1, rate=p.paced_rate)


def w_broadcast_large(bench, kind):
    """broadcast with 16 KB events: where the module shares one block per
    event among its streams rather than copying it into each (issue 9
    item 5).
    Paced: published back to back, 2,000 x 16 KB per event outran the load
    generator's readers on 2 cores, and the module (sse_max_pending 256 KB)
    rightly dropped those 16 events behind, which is not what this row is
    about; 20 events a second is 640 MB/s of deliveries."""
    p = bench.profile
    with bench.server(kind, "broadcast_large") as srv:
        return fanout(bench, srv, p.large_subs, 1, p.large_events, 1, rate=p.large_rate,
                      size=p.large_event_size)


def w_many_channels(bench, kind):
    p = bench.profile
    with bench.server(kind, "many_channels") as srv:
        return fanout(bench, srv, p.many_channels * p.many_subs_per_channel, p.many_channels,
                      p.many_events, p.many_publishers)


def w_many_channels_paced(bench, kind):
    """many channels at a publish rate every server sustains: the tails
    compared at the same load (unpaced, each server is offered what its
    replies let the publishers send)."""
    p = bench.profile
    with bench.server(kind, "many_channels_paced") as srv:
        return fanout(bench, srv, p.many_channels * p.many_subs_per_channel, p.many_channels,
                      p.many_paced_events, p.many_publishers, rate=p.many_paced_rate)


def publish_rate(bench, kind, workload, subs_per_channel, rate=0):
    """Publishers as fast as they get answers (or at a rate), for a fixed
    time."""
    p = bench.profile
    with bench.server(kind, workload) as srv:
        subs = None
        if subs_per_channel:
            conns = p.rate_channels * subs_per_channel
            subs = bench.subscribe(srv, "subscribers", conns, p.rate_channels)
        try:
            if subs:
                established(subs, p.rate_channels * subs_per_channel, 60)
                time.sleep(0.5)
            before = srv.cpu_snapshot()
            pub = bench.publish(srv, "publishers", p.rate_channels, p.rate_publishers,
                                duration=p.rate_seconds, procs=2, rate=rate)
            cpu = srv.cpu_since(before)
            if subs:
                time.sleep(1)   # the last deliveries
        finally:
            rep = subs.finish() if subs else None
    ok = pub["ok"]   # 2xx replies: a fast error is not a publish
    result = {
        "rps": pub["rps"],
        "requests": pub["requests"],
        "publish_status": pub["status"],
        "non_2xx": pub["non_2xx"],
        "cpu_s": cpu,
        "rps_per_cpu_s": ok / cpu if cpu else None,
        "publish_p99_ms": pub["latency"]["p99_us"] / 1e3,
    }
    if rep:
        result["deliveries"] = rep["unique"]
        result["deliveries_per_s"] = rep["unique"] / pub["seconds"]
        result["missing"] = ok * subs_per_channel - rep["unique"]
        result.update(integrity(rep))
    return result


def w_publish_0(bench, kind):
    return publish_rate(bench, kind, "publish_0", 0)


def w_publish_0_paced(bench, kind):
    """publish_0 at a rate every server sustains: the round trips compared
    at the same load (back to back, a faster server is offered more)."""
    return publish_rate(bench, kind, "publish_0_paced", 0, rate=bench.profile.rate_paced)


def w_publish_10(bench, kind):
    return publish_rate(bench, kind, "publish_10", bench.profile.rate_subs_per_channel)


def w_publish_10_paced(bench, kind):
    """publish_10 at a rate every server sustains (nchan's back-to-back rate
    is about half the module's, and the host's slow hours halve it again):
    the round trips compared at the same load."""
    return publish_rate(bench, kind, "publish_10_paced", bench.profile.rate_subs_per_channel,
                        rate=bench.profile.rate_10_paced)


def tokens_per_channel(profile, channels):
    """Tokens each channel gets: the rate over all channels for the time."""
    return max(1, round(profile.tokens_rate * profile.tokens_seconds / channels))


def tokens(bench, srv, channels, stream):
    """One subscriber per channel; tokens paced over all channels, each
    channel's published by a connection of its own: one POST per token, or
    one chunked text/event-stream POST holding every token of the channel.
    Every token must arrive once and in order."""
    p = bench.profile
    per_channel = tokens_per_channel(p, channels)
    subs = bench.subscribe(srv, "subscribers", channels, channels, expect=per_channel)
    try:
        up = established(subs, channels, 120)
        time.sleep(0.5)   # let the server finish the last handshakes
        before = srv.cpu_snapshot()
        pub = bench.publish(srv, "publishers", channels, channels, events=per_channel,
                            rate=p.tokens_rate, procs=2, payload="token", stream=stream,
                            timeout=p.tokens_seconds * 3 + 60)
        try:   # a lost token never completes a subscriber: give up after a while
            rep = subs.wait_for("report", 15)
        except BenchError:
            rep = None
        cpu = srv.cpu_since(before)
    finally:
        last = subs.finish()   # on a stop, reports what arrived: losses are counted
    rep = rep or last
    if rep is None:
        raise BenchError("the subscribers gave no report")
    lat = rep["latency"]
    return {
        "publishing": "streaming POST per channel" if stream else "one POST per token",
        "subscribers": up["established"],
        "channels": channels,
        "tokens_per_channel": per_channel,
        "published": pub["events"],
        "publish_requests": pub["requests"],
        "publish_status": pub["status"],
        "non_2xx": pub["non_2xx"],
        "tokens_per_s": pub["events_per_s"],
        "deliveries": rep["unique"],
        "cpu_s": cpu,
        "deliveries_per_cpu_s": rep["unique"] / cpu if cpu else None,
        "latency_p50_ms": lat["p50_us"] / 1e3,
        "latency_p99_ms": lat["p99_us"] / 1e3,
        "latency_max_ms": lat["max_us"] / 1e3,
        "latency_cdf": rep["latency_cdf"],
        **integrity(rep),
    }


def w_tokens_post(bench, kind):
    channels = bench.profile.tokens_channels
    with bench.server(kind, "tokens_post") as srv:
        return tokens(bench, srv, channels, stream=False)


def w_tokens_post_many(bench, kind):
    channels = bench.profile.tokens_channels_many
    with bench.server(kind, "tokens_post_many") as srv:
        return tokens(bench, srv, channels, stream=False)


# nchan has no streaming publish: its row of the streaming workloads is its
# closest equivalent, one POST per token, measured again in the same run.
STREAMING_SERVERS = ("module",)


def w_tokens_stream(bench, kind):
    channels = bench.profile.tokens_channels
    with bench.server(kind, "tokens_stream") as srv:
        return tokens(bench, srv, channels, stream=kind in STREAMING_SERVERS)


def w_tokens_stream_many(bench, kind):
    channels = bench.profile.tokens_channels_many
    with bench.server(kind, "tokens_stream_many") as srv:
        return tokens(bench, srv, channels, stream=kind in STREAMING_SERVERS)


def crossnode(bench, publisher, readers, cpu_of):
    """Subscribers on each of `readers` (nodes), every channel's events
    published on `publisher`; every delivery is awaited.  The p99 is the
    larger of the two groups' (each group's loadgen has its own histogram):
    never better than the true p99 of both together."""
    p = bench.profile
    groups = [bench.subscribe(node, f"subscribers{i}", p.crossnode_subs, p.crossnode_channels,
                              expect=p.crossnode_events)
              for i, node in enumerate(readers)]
    try:
        for g in groups:
            established(g, p.crossnode_subs, 120)
        time.sleep(0.5)   # let the servers finish the last handshakes and subscriptions
        before = cpu_of.cpu_snapshot()
        pub = bench.publish(publisher, "publisher", p.crossnode_channels, 10,
                            events=p.crossnode_events)
        reps = [g.wait_for("report", 120) for g in groups]
        cpu = cpu_of.cpu_since(before)
    finally:
        for g in groups:
            g.finish()
    unique = sum(r["unique"] for r in reps)
    sums = {k: sum(integrity(r)[k] for r in reps) for k in integrity(reps[0])}
    return {
        "subscribers": p.crossnode_subs * len(groups),
        "published": pub["requests"],
        "publish_status": pub["status"],
        "non_2xx": pub["non_2xx"],
        "publish_p99_ms": pub["latency"]["p99_us"] / 1e3,
        "deliveries": unique,
        "cpu_s": cpu,
        "deliveries_per_cpu_s": unique / cpu if cpu else None,
        "latency_p50_ms": max(r["latency"]["p50_us"] for r in reps) / 1e3,
        "latency_p99_ms": max(r["latency"]["p99_us"] for r in reps) / 1e3,
        "latency_max_ms": max(r["latency"]["max_us"] for r in reps) / 1e3,
        "latency_cdf": reps[0]["latency_cdf"],
        **sums,
    }


def w_crossnode(bench, kind):
    with bench.cluster(kind, "crossnode") as cl:
        return crossnode(bench, cl.nodes[0], cl.nodes, cl)


def w_crossnode_single(bench, kind):
    """The same subscribers and events on one node without Redis: what the
    cross-node p99 is compared with."""
    with bench.server(kind, "crossnode_single") as srv:
        return crossnode(bench, srv, [srv, srv], srv)


def redis_benchmark_publish(port, clients, requests):
    """redis-benchmark's rate of PUBLISH (one command per round trip, as
    an HTTP publish is) against the redis-server the nodes use."""
    out = subprocess.run([REDIS_BENCHMARK, "-p", str(port), "-c", str(clients),
                          "-n", str(requests), "--csv", "PUBLISH", "bench", "x" * 64],
                         capture_output=True, text=True, timeout=120, check=True).stdout
    row = [line for line in out.splitlines() if line.startswith('"PUBLISH')][-1]
    return float(row.split(",")[1].strip('"'))


def w_redis_publish(bench, kind):
    """Publishes per second through Redis, no subscribers, on one node of
    a two-node cluster; redis-benchmark's PUBLISH rate on the same
    redis-server right after, as the ceiling."""
    p = bench.profile
    with bench.cluster(kind, "redis_publish") as cl:
        before = cl.cpu_snapshot()
        pub = bench.publish(cl.nodes[0], "publishers", p.rate_channels, p.rate_publishers,
                            duration=p.rate_seconds, procs=2)
        cpu = cl.cpu_since(before)
        ceiling = redis_benchmark_publish(cl.redis.port, p.rate_publishers,
                                          max(20000, int(pub["rps"] * p.rate_seconds)))
    return {
        "rps": pub["rps"],
        "requests": pub["requests"],
        "publish_status": pub["status"],
        "non_2xx": pub["non_2xx"],
        "cpu_s": cpu,
        "rps_per_cpu_s": pub["ok"] / cpu if cpu else None,
        "publish_p99_ms": pub["latency"]["p99_us"] / 1e3,
        "redis_benchmark_publish_rps": ceiling,
        "of_redis_benchmark": pub["rps"] / ceiling if ceiling else None,
    }


def w_idle_memory(bench, kind):
    """PSS of the server's processes before and after holding idle subscribers."""
    p = bench.profile
    with bench.server(kind, "idle_memory") as srv:
        time.sleep(0.3)
        before = srv.pss_kib()
        subs = bench.subscribe(srv, "subscribers", p.idle_subs, p.idle_channels)
        try:
            up = established(subs, p.idle_subs, 120)
            time.sleep(1.5)
            after = srv.pss_kib()
        finally:
            rep = subs.finish()
    return {
        "subscribers": up["established"],
        "pss_before_kib": before,
        "pss_after_kib": after,
        "bytes_per_sub": (after - before) * 1024 / up["established"],
        "closed": rep["closed"] if rep else None,
    }


def w_idle_memory_proxied(bench, kind):
    """w_idle_memory with a default nginx reverse proxy in front (HTTP/1.0
    to the module): what the module's server holds per subscriber, and,
    apart, what the proxy holds (not the module's cost)."""
    p = bench.profile
    with bench.server(kind, "idle_memory_proxied") as srv:
        # the proxy holds two connections per subscriber (client and
        # upstream): twice the workers, so that none passes its
        # worker_connections or the ~20000 open files a process may hold
        proxy = Nginx("proxy", bench.rundir / "idle_memory_proxied-proxy",
                      max(4, 2 * p.workers), bench.module_so)
        proxy.upstream = srv.port
        proxy.start()
        try:
            time.sleep(0.3)
            before, proxy_before = srv.pss_kib(), proxy.pss_kib()
            subs = bench.subscribe(proxy, "subscribers", p.idle_subs, p.idle_channels)
            try:
                up = established(subs, p.idle_subs, 120)
                time.sleep(1.5)
                after, proxy_after = srv.pss_kib(), proxy.pss_kib()
            finally:
                rep = subs.finish()
        finally:
            proxy.stop()
            found = proxy.log_problems()
            if found:
                bench.problems["idle_memory_proxied/proxy"] = found
    return {
        "subscribers": up["established"],
        "pss_before_kib": before,
        "pss_after_kib": after,
        "bytes_per_sub": (after - before) * 1024 / up["established"],
        "proxy_bytes_per_sub": (proxy_after - proxy_before) * 1024 / up["established"],
        "closed": rep["closed"] if rep else None,
    }


def w_held(bench, kind):
    """Many subscribers at once, on more workers; one probe event reaches each."""
    p = bench.profile
    with bench.server(kind, "held", workers=p.held_workers) as srv:
        before = srv.pss_kib()
        subs = bench.subscribe(srv, "subscribers", p.held_subs, p.held_channels, expect=1,
                               timeout=400, extra=["--connect-timeout", 30])
        try:
            up = subs.wait_for("established", 240)
            after = srv.pss_kib()
            probe = bench.publish(srv, "probe", p.held_channels, 10, events=1)
            rep = subs.wait_for("report", 60)
        finally:
            subs.finish()
    return {
        "established": up["established"],
        "failed": up["failed"],
        "connect_s": up["seconds"],
        "probe_received": rep["complete"],
        "non_2xx": probe["non_2xx"],
        "bytes_per_sub": (after - before) * 1024 / max(1, up["established"]),
        "closed": rep["closed"],
    }


def w_storm(bench, kind):
    """Clients drop, miss events, and all resume with Last-Event-ID at once."""
    p = bench.profile
    n, channels = p.storm_clients, p.storm_channels
    with bench.server(kind, "storm") as srv:
        ids = srv.dir / "last-event-ids.txt"
        first = bench.subscribe(srv, "before", n, channels, expect=p.storm_before, procs=1,
                                extra=["--save-ids", ids])
        try:
            established(first, n, 60)
            before_pub = bench.publish(srv, "publish-before", channels, 10, events=p.storm_before)
            first.wait_for("report", 60)
        finally:
            first.finish()   # every client disconnects
        missed_pub = bench.publish(srv, "publish-missed", channels, 10, events=p.storm_missed,
                                   first_seq=p.storm_before + 1)
        before = srv.cpu_snapshot()
        second = bench.subscribe(srv, "resume", n, channels, expect=p.storm_missed, procs=1,
                                 extra=["--resume", ids, "--max-inflight", n])
        try:
            rep = second.wait_for("report", 120)
            cpu = srv.cpu_since(before)
        finally:
            second.finish()
    return {
        "clients": n,
        "caught_up": rep["complete"],
        "catch_up_s": (rep["t_complete_ns"] - rep["t_start_ns"]) / 1e9 if rep["complete"] else None,
        "completion_p99_ms": rep["completion"]["p99_us"] / 1e3,
        "cpu_s": cpu,
        "non_2xx": before_pub["non_2xx"] + missed_pub["non_2xx"],
        **integrity(rep),
    }


class RssPeak:
    """Samples the workers' RSS every 20 ms in a thread: its peak."""

    def __init__(self, srv):
        self.srv = srv
        self.peak = srv.workers_rss_kib()
        self.done = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.done.wait(0.02):
            self.peak = max(self.peak, self.srv.workers_rss_kib())

    def stop(self):
        self.done.set()
        self.thread.join()
        return max(self.peak, self.srv.workers_rss_kib())


# what a worker may hold in a replay storm beyond clients × sse_max_pending:
# the history it maps from the zone (1000 × 4 KB), nginx's own connection
# and request memory (a few KB per client) and the allocator's slack
REPLAY_STORM_CONSTANT_KIB = 32 * 1024
REPLAY_STORM_MAX_PENDING_KIB = 64    # sse_max_pending of /rsub in module.conf.in


def w_replay_storm(bench, kind):
    """Issue 9: a reconnect storm with sse_replay all.  One channel's
    history is full (replay_events of replay_size bytes), then
    replay_clients clients join at once asking for all of it.  Every client
    must get every event, in order, once; the workers' RSS must stay under
    clients × sse_max_pending plus a stated constant (each stream pulls its
    replay from history as its socket drains, never more than
    sse_max_pending at a time)."""
    p = bench.profile
    n = p.replay_clients
    with bench.server(kind, "replay_storm") as srv:
        pub = bench.publish(srv, "publish-history", 1, 1, events=p.replay_events,
                            size=p.replay_size, what="rpub")
        time.sleep(0.3)
        base = srv.workers_rss_kib()
        peak = RssPeak(srv)
        before = srv.cpu_snapshot()
        subs = bench.subscribe(srv, "replay", n, 1, expect=p.replay_events, what="rsub",
                               extra=["--max-inflight", n])
        try:
            rep = subs.wait_for("report", 120)
            cpu = srv.cpu_since(before)
        finally:
            subs.finish()
            top = peak.stop()
    grew = top - base
    bound = n * REPLAY_STORM_MAX_PENDING_KIB + REPLAY_STORM_CONSTANT_KIB
    return {
        "clients": n,
        "caught_up": rep["complete"],
        "catch_up_s": (rep["t_complete_ns"] - rep["t_start_ns"]) / 1e9 if rep["complete"] else None,
        "completion_p99_ms": rep["completion"]["p99_us"] / 1e3,
        "rss_growth_mib": grew / 1024,
        "rss_bound_mib": bound / 1024,
        "within_bound": grew <= bound,
        "cpu_s": cpu,
        "non_2xx": pub["non_2xx"],
        **integrity(rep),
    }


# ------------------------------------------------------------------ signed tokens
#
# The cost of sse_auth_jwt (issue 11): the module alone, three times with
# the same config (bench/conf/module.conf.in), once as it is and once with
# an HS256 and an ES256 token required on its subscribe location.  Every
# client carries a token of its own in the cookie sse_token (minted by
# t/tools/jwt-mint.mjs, npm jose), in all three runs, so that the requests
# are the same bytes; without auth the cookie is just not looked at.
# Measured: how fast the clients subscribe (each token's first appearance:
# a signature check), and the reconnect storm of w_storm with those
# cookies (what a worker verified before it may have cached).  The rows
# and the target are ratios to the run without auth.

AUTH_VARIANTS = ("none", "hs256", "es256")
AUTH_ROUNDS = 3            # interleaved: none, hs256, es256, none, ...; medians kept
AUTH_JWT_MINT = ROOT / "t" / "tools" / "jwt-mint.mjs"


def auth_tokens(keydir, n, rounds):
    """n HS256 and n ES256 tokens per round (sub r<round>u<i>, every
    channel), their keys in keydir; returns {(variant, round): path of a
    loadgen --headers file}.  Each round's clients are new: each token is
    seen for the first time when its client first subscribes."""
    req = {
        "dir": str(keydir),
        "keys": [{"name": "hs", "type": "oct", "bytes": 32},
                 {"name": "ec", "type": "EC", "crv": "P-256"}],
        "tokens": {},
    }
    exp = int(time.time()) + 4 * 3600
    for r in range(rounds):
        for i in range(n):
            claims = {"sub": f"r{r}u{i}", "exp": exp, "sse": {"subscribe": ["*"]}}
            req["tokens"][f"hs256-{r}-{i}"] = {"key": "hs", "alg": "HS256", "claims": claims}
            req["tokens"][f"es256-{r}-{i}"] = {"key": "ec", "alg": "ES256", "claims": claims}
    try:
        out = subprocess.run(["node", str(AUTH_JWT_MINT)], input=json.dumps(req).encode(),
                             capture_output=True, timeout=300)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise BenchError(f"jwt-mint: {e}")
    if out.returncode != 0:
        raise BenchError(f"jwt-mint: {out.stderr.decode(errors='replace').strip()[-300:]}")
    tokens = json.loads(out.stdout)["tokens"]
    files = {}
    for r in range(rounds):
        for v in ("hs256", "es256"):
            path = keydir / f"{v}-{r}.headers"
            path.write_text("".join(f"Cookie: sse_token={tokens[f'{v}-{r}-{i}']}\n"
                                    for i in range(n)))
            files[(v, r)] = path
        files[("none", r)] = files[("es256", r)]     # the same cookies, not looked at
    return files


class AuthNginx(Nginx):
    """The module's benchmark config with sse_auth_jwt on its subscribe
    location (nothing added for "none")."""

    def __init__(self, rundir, workers, module_so, auth):
        super().__init__("module", rundir, workers, module_so)
        self.auth = auth

    def command(self):
        cmd = super().command()
        if self.auth:
            conf = self.dir / "nginx.conf"
            text = conf.read_text()
            sub = "sse_subscribe $1 zone=bench;"
            if text.count(sub) != 1:
                raise BenchError(f"module.conf.in: no single '{sub}' to add sse_auth_jwt to")
            conf.write_text(text.replace(sub, f"{sub}\n            {self.auth}"))
        return cmd


def auth_probe(port):
    """The status of a HEAD on a subscribe location, without a cookie."""
    import http.client
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("HEAD", "/sub/c0")
        return conn.getresponse().status
    except OSError as e:
        raise BenchError(f"auth probe: {e}")
    finally:
        conn.close()


@contextmanager
def auth_servers(bench, keydir):
    """The three servers, all running (each idle while another is measured)."""
    auth = {
        "none": "",
        "hs256": f"sse_auth_jwt on; sse_auth_jwt_key_secret {keydir / 'hs.secret'};",
        "es256": f"sse_auth_jwt on; sse_auth_jwt_key_file {keydir / 'ec.pem'};",
    }
    servers = {}
    try:
        for v in AUTH_VARIANTS:
            rundir = bench.rundir / f"auth-{v}"
            shutil.rmtree(rundir, ignore_errors=True)
            servers[v] = AuthNginx(rundir, bench.profile.workers, bench.module_so, auth[v])
            servers[v].start()
            # what is measured is what it claims: a subscribe without a token
            # is refused exactly when auth is on
            status = auth_probe(servers[v].port)
            if status != (401 if auth[v] else 200):
                raise BenchError(f"auth-{v}: a subscribe without a token got {status}")
        yield servers
    finally:
        for v, srv in servers.items():
            srv.stop()
            found = srv.log_problems()
            if found:
                bench.problems[f"auth/module-{v}"] = found


def auth_round(bench, srv, rnd, headers):
    """New clients subscribe (each token new to the server), get some
    events, leave; more events; they all come back at once with their
    Last-Event-ID and cookie."""
    p = bench.profile
    n, channels = p.storm_clients, p.storm_channels
    base = rnd * (p.storm_before + p.storm_missed)     # of every channel's seq
    hdr = ["--headers", headers]
    ids = srv.dir / f"last-event-ids-{rnd}.txt"
    before = srv.cpu_snapshot()
    first = bench.subscribe(srv, f"subscribe-{rnd}", n, channels, expect=p.storm_before,
                            procs=1, extra=["--save-ids", ids, *hdr])
    try:
        up = established(first, n, 60)
        sub_cpu = srv.cpu_since(before)
        bench.publish(srv, f"publish-before-{rnd}", channels, 10, events=p.storm_before,
                      first_seq=base + 1)
        first.wait_for("report", 60)
    finally:
        first.finish()
    bench.publish(srv, f"publish-missed-{rnd}", channels, 10, events=p.storm_missed,
                  first_seq=base + p.storm_before + 1)
    before = srv.cpu_snapshot()
    second = bench.subscribe(srv, f"resume-{rnd}", n, channels, expect=p.storm_missed,
                             procs=1, extra=["--resume", ids, "--max-inflight", n, *hdr])
    try:
        rep = second.wait_for("report", 120)
        storm_cpu = srv.cpu_since(before)
    finally:
        second.finish()
    if rep["complete"] != n:
        raise BenchError(f"{rep['complete']} of {n} clients caught up "
                         f"({rep['non_200']} answers not 200)")
    return {
        "subscribe_per_s": n / up["seconds"] if up["seconds"] else None,
        "subscribe_cpu_ms_per_1000": sub_cpu * 1e3 * 1000 / n,
        "storm_s": (rep["t_complete_ns"] - rep["t_start_ns"]) / 1e9,
        "storm_p99_ms": rep["completion"]["p99_us"] / 1e3,
        "storm_cpu_s": storm_cpu,
        **integrity(rep),
    }


def median(values):
    vals = sorted(v for v in values if isinstance(v, (int, float)))
    return vals[(len(vals) - 1) // 2] if vals else None


def w_auth(bench, kind):
    """No auth, HS256 and ES256: subscribes per second and the reconnect
    storm, AUTH_ROUNDS rounds interleaved over the three servers; the median
    of each metric, and the integrity counts summed."""
    n = bench.profile.storm_clients
    keydir = bench.rundir / "auth-keys"
    shutil.rmtree(keydir, ignore_errors=True)
    keydir.mkdir(parents=True)
    headers = auth_tokens(keydir, n, AUTH_ROUNDS)
    rounds = {v: [] for v in AUTH_VARIANTS}
    with auth_servers(bench, keydir) as servers:
        for rnd in range(AUTH_ROUNDS):
            for v in AUTH_VARIANTS:
                try:
                    rounds[v].append(auth_round(bench, servers[v], rnd, headers[(v, rnd)]))
                except BenchError as e:
                    raise BenchError(f"auth-{v}, round {rnd + 1}: {e}")
    out = {"clients": n, "rounds_each": AUTH_ROUNDS}
    for v in AUTH_VARIANTS:
        for k in rounds[v][0]:
            vals = [r[k] for r in rounds[v]]
            out[f"{k}_{v}"] = sum(vals) if k in ("lost", "duplicates", "reordered", "closed",
                                                   "resets") else median(vals)
        out[f"storm_s_rounds_{v}"] = [r["storm_s"] for r in rounds[v]]
    for v in ("hs256", "es256"):
        out[f"subscribe_ratio_{v}"] = ratio(out[f"subscribe_per_s_{v}"],
                                            out["subscribe_per_s_none"])
        out[f"storm_ratio_{v}"] = ratio(out[f"storm_s_{v}"], out["storm_s_none"])
        out[f"storm_cpu_ratio_{v}"] = ratio(out[f"storm_cpu_s_{v}"], out["storm_cpu_s_none"])
    return out


def auth_triple(key, ratios=False):
    """A row's text: the value without auth / with HS256 / with ES256, or the
    ratios HS256 ÷ none and ES256 ÷ none."""
    def text(r):
        if ratios:
            vals = [fmt_ratio(r.get(f"{key}_{v}")) for v in ("hs256", "es256")]
        else:
            vals = [fmt_num(r.get(f"{key}_{v}")) for v in AUTH_VARIANTS]
        return None if all(v in ("–", None) for v in vals) else " / ".join(vals)
    return text


def auth_storm_rounds(r):
    if f"storm_s_rounds_{AUTH_VARIANTS[0]}" not in r:
        return None
    return " / ".join(", ".join(fmt_num(x) for x in r[f"storm_s_rounds_{v}"])
                      for v in AUTH_VARIANTS)


def auth_integrity(r):
    if f"lost_{AUTH_VARIANTS[0]}" not in r:
        return None
    return " / ".join(str(sum(r.get(f"{k}_{v}", 0) for v in AUTH_VARIANTS))
                      for k in ("lost", "duplicates", "reordered", "closed"))


AUTH_ROWS = [
    ("auth", "subscribes per second: no auth / HS256 / ES256", auth_triple("subscribe_per_s")),
    ("auth", "… HS256 ÷ no auth / ES256 ÷ no auth", auth_triple("subscribe_ratio", ratios=True)),
    ("auth", "server CPU-ms per 1000 subscribes: no auth / HS256 / ES256",
     auth_triple("subscribe_cpu_ms_per_1000")),
    ("auth", "storm: seconds until all caught up: no auth / HS256 / ES256",
     auth_triple("storm_s")),
    ("auth", "… HS256 ÷ no auth / ES256 ÷ no auth", auth_triple("storm_ratio", ratios=True)),
    ("auth", "storm: p99 time to catch up per client (ms): no auth / HS256 / ES256",
     auth_triple("storm_p99_ms")),
    ("auth", "storm: server CPU-seconds: no auth / HS256 / ES256", auth_triple("storm_cpu_s")),
    ("auth", "storm: seconds in each round: no auth / HS256 / ES256", auth_storm_rounds),
    ("auth", "lost / dup / reordered / streams ended (every run)", auth_integrity),
]


def auth_targets(results):
    """The target of issue 11: a storm with ES256 within 1.5× of no auth."""
    label = "reconnect storm with ES256 tokens ≤ 1.5× the time without auth"
    m = value(results, "auth", "module", "storm_ratio_es256")
    if m == "error":
        return [(label, "error", False)]    # a module error is "not met"
    if not isinstance(m, (int, float)):
        m = None
    return [(label, fmt_ratio(m), None if m is None else m <= 1.5)]


AUTH_METHOD = """
- **signed tokens**: the module only, three servers with the same config:
  the subscribe location without auth, with `sse_auth_jwt` and an HS256
  secret, and with an ES256 public key.  {storm_clients:,} clients, each
  with a token of its own in the cookie `sse_token` (the same cookies for
  all three servers; without auth they are not looked at), subscribe to
  {storm_channels} channels (*subscribes per second*: every token seen for
  the first time, one signature check each), get {storm_before} events,
  leave, miss {storm_missed}, and come back at once with `Last-Event-ID`
  and the same cookie (the reconnect storm above).  Three rounds with new
  clients, interleaved over the three servers; the medians are shown and
  the ratios are to the server without auth.
"""


@dataclass
class Workload:
    name: str
    title: str
    run: object            # function(bench, server kind) -> dict of metrics
    servers: tuple
    repeat_key: str = ""   # measured `rounds` times; the median round by this metric is kept


FANOUT = ("module", "nchan", "floor")
WORKLOADS = [
    Workload("broadcast", "broadcast", w_broadcast, FANOUT, "deliveries_per_cpu_s"),
    Workload("broadcast_paced", "broadcast, paced", w_broadcast_paced, FANOUT),
    Workload("many_channels", "many channels", w_many_channels, FANOUT, "deliveries_per_cpu_s"),
    Workload("many_channels_paced", "many channels, paced", w_many_channels_paced, FANOUT),
    Workload("publish_0", "publish, no subscribers", w_publish_0, FANOUT + ("plain",), "rps"),
    Workload("publish_0_paced", "publish, no subscribers, paced", w_publish_0_paced,
             FANOUT + ("plain",)),
    Workload("publish_10", "publish, 10 subscribers per channel", w_publish_10, FANOUT),
    Workload("publish_10_paced", "publish, 10 subscribers per channel, paced",
             w_publish_10_paced, FANOUT),
    Workload("idle_memory", "idle memory", w_idle_memory, FANOUT),
    Workload("idle_memory_proxied", "idle memory behind a default nginx proxy",
             w_idle_memory_proxied, ("module",)),
    Workload("held", "concurrent subscribers held", w_held, FANOUT),
    Workload("storm", "reconnect storm", w_storm, ("module", "nchan")),
    Workload("replay_storm", "reconnect storm with sse_replay all", w_replay_storm, ("module",)),
    Workload("tokens_post", "tokens, {tokens_channels:,} channels, one POST per token",
             w_tokens_post, FANOUT, "latency_p99_ms"),
    Workload("tokens_stream", "tokens, {tokens_channels:,} channels, streaming POST",
             w_tokens_stream, ("module", "nchan"), "latency_p99_ms"),
    Workload("tokens_post_many", "tokens, {tokens_channels_many:,} channels, one POST per token",
             w_tokens_post_many, FANOUT, "latency_p99_ms"),
    Workload("tokens_stream_many", "tokens, {tokens_channels_many:,} channels, streaming POST",
             w_tokens_stream_many, ("module", "nchan"), "latency_p99_ms"),
    Workload("auth", "signed tokens", w_auth, ("module",)),
    Workload("crossnode", "cross-node fan-out through Redis, {crossnode_subs:,} subscribers "
             "on each of two nodes", w_crossnode, ("module", "nchan"), "deliveries_per_cpu_s"),
    Workload("crossnode_single", "the same on one node, without Redis", w_crossnode_single,
             ("module",), "latency_p99_ms"),
    Workload("redis_publish", "publish through Redis, no subscribers", w_redis_publish,
             ("module", "nchan"), "rps"),
    Workload("broadcast_large", "broadcast, {large_event_size:,}-byte events, "
             "{large_subs:,} subscribers, {large_rate:g} events/s", w_broadcast_large, FANOUT, "deliveries_per_cpu_s"),
]


def title_of(w, profile):
    """A workload's title, with the counts of the profile."""
    return w.title.format(**asdict(profile)) if profile else w.title


def measure_one(bench, w, kind):
    t0 = time.monotonic()
    log(f"{title_of(w, bench.profile)}: {kind} ...")
    try:
        r = w.run(bench, kind)
    except BenchError as e:
        r = {"error": str(e)}
    r["wall_s"] = round(time.monotonic() - t0, 1)
    log(f"{title_of(w, bench.profile)}: {kind}: {summary(r)}")
    return r


def run_all(bench, servers, only, measure=None):
    """Every workload on every server, then more rounds of the repeated ones
    while the time budget lasts; returns {workload: {server: metrics}}.
    A later round of a workload runs on all its servers or on none, so that
    every server gets the same number of rounds."""
    measure = measure or measure_one
    chosen = [w for w in WORKLOADS if not only or w.name in only]
    runs = {}   # (workload name, server) -> results of every round
    start = time.monotonic()
    for round_no in range(1, bench.profile.rounds + 1):
        for w in chosen:
            if round_no > 1 and not w.repeat_key:
                continue
            kinds = [k for k in w.servers if k in servers]
            # the round must fit for all servers, judging by their first round
            need = sum(runs[(w.name, k)][0]["wall_s"] for k in kinds if (w.name, k) in runs)
            if time.monotonic() - start + need > bench.profile.budget_s:
                for k in kinds:
                    runs.setdefault((w.name, k), []) or runs[(w.name, k)].append(
                        {"error": "skipped: time budget spent", "wall_s": 0})
                continue
            for kind in kinds:
                runs.setdefault((w.name, kind), []).append(measure(bench, w, kind))
    return {w.name: {kind: pick_round(w, runs[(w.name, kind)])
                     for kind in w.servers if (w.name, kind) in runs}
            for w in chosen}


def median(values):
    """The middle value; of an even number, the mean of the two middle ones."""
    v = sorted(values)
    if not v:
        return None
    mid = len(v) // 2
    return v[mid] if len(v) % 2 else (v[mid - 1] + v[mid]) / 2


# Counts of things that went wrong: the worst round is reported, not the median.
WORST_OF_ROUNDS = ("lost", "duplicates", "reordered", "closed", "resets", "missing",
                   "non_2xx", "failed")


def pick_round(w, results):
    """One result of the rounds: every numeric metric is the median over the
    rounds that did not fail (p99s included: the median p99, not the p99 of
    the median round), counts of failures are the worst round's, and lists
    (latency CDFs) come from the round with the median key metric.  Rounds
    that failed are kept in round_errors (they fail the run: failures())."""
    good = [r for r in results if "error" not in r]
    errors = [r["error"] for r in results if "error" in r]
    if not good:
        return dict(results[0])
    if not w.repeat_key or len(good) == 1:
        chosen = dict(good[0])
        if errors:
            chosen["round_errors"] = errors
        return chosen
    by_key = sorted(good, key=lambda r: r.get(w.repeat_key) or 0)
    chosen = dict(by_key[(len(by_key) - 1) // 2])
    for key, v in chosen.items():
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            continue
        values = [r[key] for r in good if isinstance(r.get(key), (int, float))]
        chosen[key] = max(values) if key in WORST_OF_ROUNDS else median(values)
    chosen["rounds"] = [r.get(w.repeat_key) for r in good]
    if errors:
        chosen["round_errors"] = errors
    return chosen


def summary(r):
    if "error" in r:
        return "ERROR " + r["error"]
    return ", ".join(f"{k}={fmt_num(v)}" for k, v in r.items()
                     if not isinstance(v, (list, dict)))


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ------------------------------------------------------------------ report

def fmt_num(v):
    if v is None:
        return "–"
    if isinstance(v, float):
        if abs(v) >= 1000:
            return f"{v:,.0f}"
        if abs(v) >= 10:
            return f"{v:.1f}"
        return f"{v:.3g}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def rounds_text(r):
    values = r.get("rounds") or []
    if len(values) < 2:
        return None
    return " / ".join(fmt_num(v) for v in values)


def busy_text(r):
    v = r.get("host_busy_share")
    return None if v is None else pct(v)


def integrity_text(r):
    if "lost" not in r:
        return None
    return f"{r['lost']} / {r['duplicates']} / {r['reordered']} / {r['closed']}"


# workload, label, key (or a function of the result)
ROWS = [
    ("broadcast", "deliveries per server CPU-second", "deliveries_per_cpu_s"),
    ("broadcast", "… in each round", rounds_text),
    ("broadcast", "server CPU-seconds", "cpu_s"),
    ("broadcast", "p50 publish→receive (ms)", "latency_p50_ms"),
    ("broadcast", "p99 publish→receive (ms)", "latency_p99_ms"),
    ("broadcast", "first publish → last delivery (s)", "all_delivered_s"),
    ("broadcast", "publishes per second achieved", "publish_rps"),
    ("broadcast", "p99 publish→flush inside the module (ms, ≤ bucket)", "server_flush_p99_le_ms"),
    ("broadcast", "host CPU busy while publishing (all cores)", busy_text),
    ("broadcast", "lost / dup / reordered / streams ended", integrity_text),
    ("broadcast_paced", "p50 publish→receive (ms)", "latency_p50_ms"),
    ("broadcast_paced", "p99 publish→receive (ms)", "latency_p99_ms"),
    ("broadcast_paced", "deliveries per server CPU-second", "deliveries_per_cpu_s"),
    ("broadcast_paced", "lost / dup / reordered / streams ended", integrity_text),
    ("many_channels", "deliveries per server CPU-second", "deliveries_per_cpu_s"),
    ("many_channels", "… in each round", rounds_text),
    ("many_channels", "server CPU-seconds", "cpu_s"),
    ("many_channels", "p50 publish→receive (ms)", "latency_p50_ms"),
    ("many_channels", "p99 publish→receive (ms)", "latency_p99_ms"),
    ("many_channels", "first publish → last delivery (s)", "all_delivered_s"),
    ("many_channels", "publishes per second achieved", "publish_rps"),
    ("many_channels", "p99 publish→flush inside the module (ms, ≤ bucket)", "server_flush_p99_le_ms"),
    ("many_channels", "host CPU busy while publishing (all cores)", busy_text),
    ("many_channels", "lost / dup / reordered / streams ended", integrity_text),
    ("many_channels_paced", "publishes per second achieved", "publish_rps"),
    ("many_channels_paced", "p50 publish→receive (ms)", "latency_p50_ms"),
    ("many_channels_paced", "p99 publish→receive (ms)", "latency_p99_ms"),
    ("many_channels_paced", "p99 publish→flush inside the module (ms, ≤ bucket)",
     "server_flush_p99_le_ms"),
    ("many_channels_paced", "deliveries per server CPU-second", "deliveries_per_cpu_s"),
    ("many_channels_paced", "host CPU busy while publishing (all cores)", busy_text),
    ("many_channels_paced", "lost / dup / reordered / streams ended", integrity_text),
    ("publish_0", "publishes per second", "rps"),
    ("publish_0", "… in each round", rounds_text),
    ("publish_0", "publishes per server CPU-second", "rps_per_cpu_s"),
    ("publish_0", "p99 publish round trip (ms)", "publish_p99_ms"),
    ("publish_0", "non-2xx replies", "non_2xx"),
    ("publish_0_paced", "publishes per second achieved", "rps"),
    ("publish_0_paced", "p99 publish round trip (ms)", "publish_p99_ms"),
    ("publish_0_paced", "non-2xx replies", "non_2xx"),
    ("publish_10", "publishes per second", "rps"),
    ("publish_10", "p99 publish round trip (ms)", "publish_p99_ms"),
    ("publish_10", "non-2xx replies", "non_2xx"),
    ("publish_10", "deliveries per second", "deliveries_per_s"),
    ("publish_10", "deliveries missing", "missing"),
    ("publish_10_paced", "publishes per second achieved", "rps"),
    ("publish_10_paced", "p99 publish round trip (ms)", "publish_p99_ms"),
    ("publish_10_paced", "non-2xx replies", "non_2xx"),
    ("publish_10_paced", "deliveries missing", "missing"),
    ("idle_memory", "PSS per idle subscriber (bytes)", "bytes_per_sub"),
    ("idle_memory_proxied", "PSS per idle subscriber behind a proxy (bytes)", "bytes_per_sub"),
    ("idle_memory_proxied", "… the proxy's own PSS per subscriber (bytes)", "proxy_bytes_per_sub"),
    ("held", "subscribers established", "established"),
    ("held", "of them received the probe event", "probe_received"),
    ("held", "seconds to connect them all", "connect_s"),
    ("held", "PSS per subscriber (bytes)", "bytes_per_sub"),
    ("storm", "clients caught up", "caught_up"),
    ("storm", "seconds until all caught up", "catch_up_s"),
    ("storm", "p99 time to catch up per client (ms)", "completion_p99_ms"),
    ("storm", "server CPU-seconds", "cpu_s"),
    ("storm", "lost / dup / reordered / streams ended", integrity_text),
    ("replay_storm", "clients that got every event", "caught_up"),
    ("replay_storm", "seconds until all had everything", "catch_up_s"),
    ("replay_storm", "p99 time to get everything, per client (ms)", "completion_p99_ms"),
    ("replay_storm", "workers' RSS growth, peak (MiB)", "rss_growth_mib"),
    ("replay_storm", "… bound: clients × sse_max_pending + the constant (MiB)", "rss_bound_mib"),
    ("replay_storm", "server CPU-seconds", "cpu_s"),
    ("replay_storm", "lost / dup / reordered / streams ended", integrity_text),
] + [(w, label, key) for w in ("tokens_post", "tokens_stream", "tokens_post_many",
                               "tokens_stream_many") for label, key in (
    ("how tokens are published", "publishing"),
    ("p50 publish→receive (ms)", "latency_p50_ms"),
    ("p99 publish→receive (ms)", "latency_p99_ms"),
    ("… in each round", rounds_text),
    ("max publish→receive (ms)", "latency_max_ms"),
    ("tokens per second achieved", "tokens_per_s"),
    ("deliveries per server CPU-second", "deliveries_per_cpu_s"),
    ("server CPU-seconds", "cpu_s"),
    ("lost / dup / reordered / streams ended", integrity_text),
)]
ROWS += AUTH_ROWS
ROWS += [
    ("crossnode", "deliveries per CPU-second (both nodes and redis-server)",
     "deliveries_per_cpu_s"),
    ("crossnode", "… in each round", rounds_text),
    ("crossnode", "CPU-seconds (both nodes and redis-server)", "cpu_s"),
    ("crossnode", "p50 publish→receive (ms)", "latency_p50_ms"),
    ("crossnode", "p99 publish→receive (ms)", "latency_p99_ms"),
    ("crossnode", "p99 publish round trip (ms)", "publish_p99_ms"),
    ("crossnode", "lost / dup / reordered / streams ended", integrity_text),
    ("crossnode_single", "p99 publish→receive (ms)", "latency_p99_ms"),
    ("crossnode_single", "deliveries per server CPU-second", "deliveries_per_cpu_s"),
    ("crossnode_single", "lost / dup / reordered / streams ended", integrity_text),
    ("redis_publish", "publishes per second", "rps"),
    ("redis_publish", "publishes per CPU-second (both nodes and redis-server)",
     "rps_per_cpu_s"),
    ("redis_publish", "p99 publish round trip (ms)", "publish_p99_ms"),
    ("redis_publish", "redis-benchmark's PUBLISH per second, same redis-server",
     "redis_benchmark_publish_rps"),
    ("redis_publish", "… publishes per second ÷ redis-benchmark's", "of_redis_benchmark"),
    ("redis_publish", "non-2xx replies", "non_2xx"),
    ("broadcast_large", "deliveries per server CPU-second", "deliveries_per_cpu_s"),
    ("broadcast_large", "… in each round", rounds_text),
    ("broadcast_large", "server CPU-seconds", "cpu_s"),
    ("broadcast_large", "p99 publish→receive (ms)", "latency_p99_ms"),
    ("broadcast_large", "first publish → last delivery (s)", "all_delivered_s"),
    ("broadcast_large", "lost / dup / reordered / streams ended", integrity_text),
]


def value(results, workload, kind, key):
    r = results.get(workload, {}).get(kind)
    if r is None:
        return None
    if "error" in r:
        return "error"
    return key(r) if callable(key) else r.get(key)


def ratio(a, b):
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and b:
        return a / b
    return None


def results_table(results, servers, profile=None):
    titles = {w.name: title_of(w, profile) for w in WORKLOADS}
    others = [k for k in ("nchan", "floor", "plain") if k in servers]
    head = ["workload", "metric"] + servers + [f"module/{k}" for k in others if "module" in servers]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for workload, label, key in ROWS:
        if workload not in results:
            continue
        vals = [value(results, workload, k, key) for k in servers]
        if all(v is None for v in vals):
            continue
        cells = [titles[workload], label] + [fmt_num(v) for v in vals]
        if "module" in servers:
            mod = vals[servers.index("module")]
            cells += [fmt_ratio(ratio(mod, value(results, workload, k, key))) for k in others]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def pct(v):
    return f"{v:.0%}" if isinstance(v, (int, float)) else "–"


def fmt_ratio(r):
    return "–" if r is None else f"{r:.2f}×"


# p99 targets against nchan's (module ÷ nchan ≤ bound): half of nchan's on
# the users' everyday shapes (issue 9), and no worse than nchan's on the
# workloads that have no target of their own for the tail
P99_VS_NCHAN = [
    ("many_channels", "latency_p99_ms", "p99 publish→receive ≤ 0.5× nchan's (many channels)", 0.5),
    ("publish_0", "publish_p99_ms", "p99 publish round trip ≤ nchan's (publish, no subscribers)", 1.0),
    ("publish_10", "publish_p99_ms", "p99 publish round trip ≤ nchan's (publish, 10 subscribers per channel)", 1.0),
    ("storm", "completion_p99_ms", "p99 time to catch up per client ≤ nchan's (reconnect storm)", 1.0),
]
TOKENS = ("tokens_post", "tokens_stream", "tokens_post_many", "tokens_stream_many")


def tokens_label(w, profile):
    """The title of a tokens workload in a target's label; a streaming row
    says what nchan's column is."""
    title = title_of(next(x for x in WORKLOADS if x.name == w), profile)
    return title + ("; nchan: one POST per token" if "stream" in w else "")


def p99_targets(profile):
    """(workload, key, label, bound) of every p99 target against nchan."""
    return P99_VS_NCHAN + [
        (w, "latency_p99_ms", f"p99 publish→receive ≤ 0.5× nchan's ({tokens_label(w, profile)})",
         0.5) for w in TOKENS]


def is_reference(label):
    """Rows shown beside a target to read it by (labels starting with "…"):
    not targets of their own, they never fail the run (see Method)."""
    return label.startswith("…")


def targets(results, profile):
    """(target, measured, met) for every target the project set itself, and
    reference rows (is_reference).
    met: True, False, or None when it was not measured (the module is not in
    the run, or the other server failed).  A failed module run is not met."""
    out = []

    def relative(label, workload, key, other, op, bound, floor_too=False):
        mod = value(results, workload, "module", key)
        if mod == "error":
            out.append((label, "error", False))
            return
        m = ratio(mod, value(results, workload, other, key))
        met = None if m is None else (m >= bound if op == ">=" else m <= bound)
        shown = fmt_ratio(m)
        # the same ratio for the floor server, the least a server can do on
        # this host: above the bound, no server here meets the target
        f = ratio(value(results, workload, "floor", key), value(results, workload, other, key))
        if floor_too and m is not None and f is not None:
            shown += f" (floor: {fmt_ratio(f)})"
        out.append((label, shown, met))

    def absolute(label, workload, key, test, unit=""):
        v = value(results, workload, "module", key)
        if v == "error":
            out.append((label, "error", False))
        elif isinstance(v, (int, float)):
            out.append((label, fmt_num(v) + unit, test(v)))
        else:
            out.append((label, fmt_num(v), None))

    for w, title in (("broadcast", "broadcast"), ("many_channels", "many channels")):
        relative(f"deliveries per CPU-second ≥ 1.5× nchan ({title})",
                 w, "deliveries_per_cpu_s", "nchan", ">=", 1.5)
        relative(f"deliveries per CPU-second ≥ 0.85× floor ({title})",
                 w, "deliveries_per_cpu_s", "floor", ">=", 0.85)
    relative("p99 publish→receive ≤ 1/3 of nchan's (broadcast)",
             "broadcast", "latency_p99_ms", "nchan", "<=", 1 / 3, floor_too=True)
    relative("… p99 publish→receive ≤ 1/3 of nchan's, publishing paced (broadcast, paced)",
             "broadcast_paced", "latency_p99_ms", "nchan", "<=", 1 / 3)
    relative(f"… p99 publish round trip ≤ nchan's, paced at {profile.rate_paced:,.0f}/s "
             f"(publish, no subscribers, paced)",
             "publish_0_paced", "publish_p99_ms", "nchan", "<=", 1.0)
    relative(f"… p99 publish round trip ≤ nchan's, paced at {profile.rate_10_paced:,.0f}/s "
             f"(publish, 10 subscribers per channel, paced)",
             "publish_10_paced", "publish_p99_ms", "nchan", "<=", 1.0)
    relative(f"… p99 publish→receive ≤ 0.5× nchan's, publishing paced at "
             f"{profile.many_paced_rate:,.0f}/s (many channels, paced)",
             "many_channels_paced", "latency_p99_ms", "nchan", "<=", 0.5)
    for workload, key, label, bound in p99_targets(profile):
        relative(label, workload, key, "nchan", "<=", bound, floor_too=True)
    for w in TOKENS:
        relative(f"… deliveries per CPU-second ≥ 1.5× nchan ({tokens_label(w, profile)})",
                 w, "deliveries_per_cpu_s", "nchan", ">=", 1.5)
    absolute("idle memory ≤ 4 KB per subscriber", "idle_memory", "bytes_per_sub",
             lambda v: v <= 4096, " B")
    relative("idle memory ≤ 1/2.5 of nchan's", "idle_memory", "bytes_per_sub", "nchan",
             "<=", 1 / 2.5)
    relative("publishes per second, no subscribers, ≥ 1.4× nchan",
             "publish_0", "rps", "nchan", ">=", 1.4)
    relative("publishes per second, no subscribers, ≥ 0.8× `return 201`",
             "publish_0", "rps", "plain", ">=", 0.8)
    relative("… publishes per server CPU-second, no subscribers, ≥ 0.8× `return 201`",
             "publish_0", "rps_per_cpu_s", "plain", ">=", 0.8)
    absolute(f"{profile.held_subs:,} concurrent subscribers held (and reached)",
             "held", "probe_received", lambda v: v == profile.held_subs)
    absolute(f"reconnect storm with sse_replay all: all {profile.replay_clients:,} clients get "
             f"all {profile.replay_events:,} events of {profile.replay_size:,} B",
             "replay_storm", "caught_up", lambda v: v == profile.replay_clients)
    bound = value(results, "replay_storm", "module", "rss_bound_mib")
    absolute(f"reconnect storm with sse_replay all: the workers' RSS grows less than clients × sse_max_pending + "
             f"{REPLAY_STORM_CONSTANT_KIB // 1024} MiB"
             + (f" ({fmt_num(bound)} MiB)" if isinstance(bound, (int, float)) else ""),
             "replay_storm", "rss_growth_mib",
             lambda v: isinstance(bound, (int, float)) and v <= bound, " MiB")
    out += auth_targets(results)
    out += crossnode_targets(results)
    return out


def crossnode_targets(results):
    """Issue 13: several nodes on one Redis against nchan's Redis mode, and
    against the same load on one node."""
    out = []
    for label, key, op, bound in (
            ("deliveries per CPU-second ≥ 1.5× nchan with Redis (cross-node)",
             "deliveries_per_cpu_s", ">=", 1.5),
            ("p99 publish→receive ≤ 0.5× nchan with Redis (cross-node)",
             "latency_p99_ms", "<=", 0.5)):
        mod = value(results, "crossnode", "module", key)
        if mod == "error":
            out.append((label, "error", False))
            continue
        m = ratio(mod, value(results, "crossnode", "nchan", key))
        out.append((label, fmt_ratio(m),
                    None if m is None else (m >= bound if op == ">=" else m <= bound)))
    cross = value(results, "crossnode", "module", "latency_p99_ms")
    single = value(results, "crossnode_single", "module", "latency_p99_ms")
    label = "p99 publish→receive cross-node ≤ 2× the same on one node"
    if "error" in (cross, single):
        out.append((label, "error", False))
    else:
        m = ratio(cross, single)
        out.append((label, fmt_ratio(m), None if m is None else m <= 2))
    return out


def failures(results, rows):
    """Why the run fails, one line each: targets not met, measurements that
    failed (a whole run, or some of its rounds), non-2xx publish replies."""
    out = [f"target not met: {label} (measured {measured})"
           for label, measured, met in rows if met is False and not is_reference(label)]
    for w, row in results.items():
        for k, r in row.items():
            if "error" in r:
                out.append(f"{w}/{k}: failed: {r['error']}")
            for e in r.get("round_errors", []):
                out.append(f"{w}/{k}: a round failed: {e}")
            if r.get("non_2xx"):
                out.append(f"{w}/{k}: {r['non_2xx']} publishes answered other than 2xx "
                           f"({r.get('publish_status')})")
            broken = {what: r.get(key) for key, what in INTEGRITY_FAILS if r.get(key)}
            if broken:
                out.append(f"{w}/{k}: " + ", ".join(f"{n} {what}" for what, n in broken.items()))
    return out


# Counts of events that did not arrive exactly once and in order: any fails
# the run, whatever the server (its other numbers would not be comparable).
INTEGRITY_FAILS = (("lost", "events lost"), ("duplicates", "events duplicated"),
                   ("reordered", "events reordered"))


def unmet_reasons(results, rows, info, profile):
    """What this run measured that bears on each missed target: numbers of
    the run only."""
    missed = [label for label, _, met in rows if met is False and not is_reference(label)]
    if not missed:
        return []

    def num(w, k, key, unit=""):
        v = value(results, w, k, key)
        return fmt_num(v) + unit if isinstance(v, (int, float)) else "–"

    def rel(w, key, other):
        return fmt_ratio(ratio(value(results, w, "module", key), value(results, w, other, key)))

    out = ["### What the run measured around the targets marked not met", ""]
    for label in missed:
        if label.startswith("p99 publish→receive ≤ 1/3"):
            w = "broadcast"
            out.append(
                f"- **{label}**: p99 of the module {num(w, 'module', 'latency_p99_ms', ' ms')}, "
                f"nchan {num(w, 'nchan', 'latency_p99_ms', ' ms')}, the floor server "
                f"{num(w, 'floor', 'latency_p99_ms', ' ms')} (module ÷ floor "
                f"{rel(w, 'latency_p99_ms', 'floor')}, floor ÷ nchan "
                f"{fmt_ratio(ratio(value(results, w, 'floor', 'latency_p99_ms'), value(results, w, 'nchan', 'latency_p99_ms')))}"
                f"); inside the module, publish→flush had a p99 of at most "
                f"{num(w, 'module', 'server_flush_p99_le_ms', ' ms')}; the host's CPU was busy "
                f"{pct(value(results, w, 'module', 'host_busy_share'))} while the module's "
                f"publisher ran.  First publish → last delivery: module "
                f"{num(w, 'module', 'all_delivered_s', ' s')}, nchan "
                f"{num(w, 'nchan', 'all_delivered_s', ' s')} (module ÷ nchan "
                f"{rel(w, 'all_delivered_s', 'nchan')}); publishes per second achieved: module "
                f"{num(w, 'module', 'publish_rps')}, nchan {num(w, 'nchan', 'publish_rps')}.  "
                f"Clients and servers shared {info['nproc']} cores; other processes used "
                f"{info['background_cpu_share']:.0%} of the host's CPU during the run.")
        elif any(label == p[2] for p in p99_targets(profile) if p[0] in TOKENS):
            w = next(p[0] for p in p99_targets(profile) if p[2] == label)
            wpost = w.replace("tokens_stream", "tokens_post")   # the same subscribers
            nchan_how = value(results, w, "nchan", "publishing")
            out.append(
                f"- **{label}**: p99 of the module {num(w, 'module', 'latency_p99_ms', ' ms')} "
                f"(p50 {num(w, 'module', 'latency_p50_ms', ' ms')}), nchan "
                f"{num(w, 'nchan', 'latency_p99_ms', ' ms')} (p50 "
                f"{num(w, 'nchan', 'latency_p50_ms', ' ms')}, publishing "
                f"{nchan_how if isinstance(nchan_how, str) else '–'})"
                + (f", the floor server {num(w, 'floor', 'latency_p99_ms', ' ms')} (floor ÷ "
                   f"nchan {fmt_ratio(ratio(value(results, w, 'floor', 'latency_p99_ms'), value(results, w, 'nchan', 'latency_p99_ms')))})"
                   if value(results, w, "floor", "latency_p99_ms") is not None else "")
                + (f", the floor server on the same subscribers with one POST per token "
                   f"{num(wpost, 'floor', 'latency_p99_ms', ' ms')} (÷ nchan's here "
                   f"{fmt_ratio(ratio(value(results, wpost, 'floor', 'latency_p99_ms'), value(results, w, 'nchan', 'latency_p99_ms')))})"
                   if value(results, w, "floor", "latency_p99_ms") is None
                   and value(results, wpost, "floor", "latency_p99_ms") is not None else "")
                + f".  Tokens per second achieved (asked: {profile.tokens_rate:g}): module "
                f"{num(w, 'module', 'tokens_per_s')}, nchan {num(w, 'nchan', 'tokens_per_s')}; "
                f"deliveries per server CPU-second: module "
                f"{num(w, 'module', 'deliveries_per_cpu_s')}, nchan "
                f"{num(w, 'nchan', 'deliveries_per_cpu_s')}.  Clients and servers shared "
                f"{info['nproc']} cores; other processes used "
                f"{info['background_cpu_share']:.0%} of the host's CPU during the run.")
        elif label == P99_VS_NCHAN[0][2]:
            w, wp = "many_channels", "many_channels_paced"
            floor_vs = ratio(value(results, w, "floor", "latency_p99_ms"),
                             value(results, w, "nchan", "latency_p99_ms"))
            out.append(
                f"- **{label}**: p99 of the module {num(w, 'module', 'latency_p99_ms', ' ms')} "
                f"(p50 {num(w, 'module', 'latency_p50_ms', ' ms')}), nchan "
                f"{num(w, 'nchan', 'latency_p99_ms', ' ms')} (p50 "
                f"{num(w, 'nchan', 'latency_p50_ms', ' ms')}), the floor server "
                f"{num(w, 'floor', 'latency_p99_ms', ' ms')} (floor ÷ nchan "
                f"{fmt_ratio(floor_vs)}).  Publishers post back to back, so each server is "
                f"offered what its replies let through: publishes per second achieved: module "
                f"{num(w, 'module', 'publish_rps')}, nchan {num(w, 'nchan', 'publish_rps')}, "
                f"floor {num(w, 'floor', 'publish_rps')}; the host's CPU was busy "
                f"{pct(value(results, w, 'module', 'host_busy_share'))} (module), "
                f"{pct(value(results, w, 'nchan', 'host_busy_share'))} (nchan) and "
                f"{pct(value(results, w, 'floor', 'host_busy_share'))} (floor) while they "
                f"published.  Inside the module, publish→flush (the event written into the "
                f"subscriber's socket, its own sse_status histogram) had a p99 of at most "
                f"{num(w, 'module', 'server_flush_p99_le_ms', ' ms')}: the rest of the "
                f"clients' p99 is time in socket buffers and clients waiting for a CPU.  "
                f"Paced at {profile.many_paced_rate:,.0f} publishes/s, the same for all "
                f"(many channels, paced): p99 module "
                f"{num(wp, 'module', 'latency_p99_ms', ' ms')}, nchan "
                f"{num(wp, 'nchan', 'latency_p99_ms', ' ms')}, floor "
                f"{num(wp, 'floor', 'latency_p99_ms', ' ms')} (module ÷ nchan "
                f"{rel(wp, 'latency_p99_ms', 'nchan')}).")
        elif any(label == p[2] for p in P99_VS_NCHAN):
            w, key, _, _ = next(p for p in P99_VS_NCHAN if p[2] == label)
            extra = ""
            if w in ("publish_0", "publish_10"):
                extra = (f"  Publishers post back to back: publishes per second module "
                         f"{num(w, 'module', 'rps')}, nchan {num(w, 'nchan', 'rps')}, floor "
                         f"{num(w, 'floor', 'rps')}; floor ÷ nchan on this p99 "
                         f"{fmt_ratio(ratio(value(results, w, 'floor', key), value(results, w, 'nchan', key)))}.")
            if w == "publish_0":
                extra += (f"  nginx's own `return 201` (plain): {num(w, 'plain', 'rps')} per "
                          f"second, p99 {num(w, 'plain', key, ' ms')} (plain ÷ nchan "
                          f"{fmt_ratio(ratio(value(results, w, 'plain', key), value(results, w, 'nchan', key)))}).")
            paced = {"publish_0": ("publish_0_paced", profile.rate_paced,
                                   ("module", "nchan", "floor", "plain")),
                     "publish_10": ("publish_10_paced", profile.rate_10_paced,
                                    ("module", "nchan", "floor"))}
            if w in paced:
                wp, rate, kinds = paced[w]
                shown = ", ".join(f"{k} {num(wp, k, key, ' ms')}" for k in kinds)
                # a server that cannot keep the pace compares an unequal load
                short = [f"{k} reached {num(wp, k, 'rps')}" for k in kinds
                         if isinstance(value(results, wp, k, "rps"), (int, float))
                         and value(results, wp, k, "rps") < 0.95 * rate]
                extra += (f"  Paced at {rate:,.0f} publishes/s, the same for all: p99 {shown} "
                          f"(module ÷ nchan {rel(wp, key, 'nchan')})"
                          + (f"; not kept up with: {', '.join(short)}" if short else "") + ".")
            out.append(
                f"- **{label}**: module {num(w, 'module', key, ' ms')}, nchan "
                f"{num(w, 'nchan', key, ' ms')}, floor {num(w, 'floor', key, ' ms')}.{extra}")
        elif label.startswith("publishes per second, no subscribers"):
            w = "publish_0"
            out.append(
                f"- **{label}**: publishes per second module {num(w, 'module', 'rps')}, nchan "
                f"{num(w, 'nchan', 'rps')}, floor {num(w, 'floor', 'rps')}, nginx's own "
                f"`return 201` (plain) {num(w, 'plain', 'rps')}: plain ÷ nchan "
                f"{fmt_ratio(ratio(value(results, w, 'plain', 'rps'), value(results, w, 'nchan', 'rps')))}"
                f", module ÷ plain {rel(w, 'rps', 'plain')} (per server CPU-second: module "
                f"{num(w, 'module', 'rps_per_cpu_s')}, nchan {num(w, 'nchan', 'rps_per_cpu_s')}, "
                f"plain {num(w, 'plain', 'rps_per_cpu_s')}).")
        else:
            out.append(f"- **{label}**: see the results below.")
    return out + [""]


def targets_table(rows):
    lines = ["| target | measured | met |", "|---|---|---|"]
    for label, measured, met in rows:
        verdict = {True: "met", False: "**not met**", None: "not measured"}[met]
        if is_reference(label) and met is not None:
            verdict = "for reference: " + ("met" if met else "not met")
        lines.append(f"| {label} | {measured} | {verdict} |")
    return "\n".join(lines)


def machine():
    model = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem_kib = int(f.readline().split()[1])
    nginx_v = subprocess.run([NGINX, "-v"], capture_output=True, text=True).stderr.strip()
    nchan_v = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", "libnginx-mod-nchan"],
                             capture_output=True, text=True).stdout.strip()
    return {
        "nproc": os.cpu_count(),
        "cpu": model,
        "kernel": platform.release(),
        "memory_gib": round(mem_kib / 2**20, 1),
        "open_files": resource.getrlimit(resource.RLIMIT_NOFILE)[1],
        "nginx": nginx_v.replace("nginx version: ", ""),
        "nchan": nchan_v,
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
    }


HOW_TO_RUN = """\
## How to run

    make bench                   # all of it, under 10 minutes: rewrites this page
                                 # and docs/bench/*.png
    make bench-quick             # small counts, for development: build/bench/quick/
    make bench-quick BENCH_SERVERS=nchan,floor      # without the module
    make bench-quick BENCH_ONLY=broadcast,storm     # some workloads only

Each server runs in `build/bench/run/<workload>-<server>/` (its config,
error.log and the clients' logs stay there for inspection) and is stopped at
the end, also when the run fails or is interrupted.  Files: `bench/bench.py`
(this driver), `bench/loadgen.cpp` (clients), `bench/floor.cpp` (floor
server), `bench/conf/*.conf.in` (nginx configs), `bench/plots.gp`.
"""


METHOD = """\
## Method

Every workload runs on each server in turn (this module, nchan, the floor
server; plain nginx for the publish ceiling), each started fresh from
`bench/conf/*.conf.in` or `build/bench/floor` in its own directory under
`build/bench/run/`, on a free port of 127.0.0.1, and stopped afterwards.
All nginx configs share the main and events settings: {workers} workers
(8 for the concurrent-subscribers workload), `worker_rlimit_nofile 20000`,
`worker_connections 19000`, `listen ... reuseport backlog=4096` (the kernel
spreads connections evenly over the workers), `access_log off`,
`keepalive_requests 1000000`.  The module keeps 100 events per channel
(`sse_zone ... history=100`), nchan likewise (`nchan_message_buffer_length
100`, `nchan_subscriber_first_message newest`).

**Clients.**  `bench/loadgen` (C++, epoll, non-blocking) opens the
subscriber connections from several processes (a process may hold at most
~20000 descriptors) and from source addresses 127.0.0.1–127.0.0.{src_ips}, so that
ephemeral ports never run short.  It parses the HTTP/1.1 response, chunked
coding and the event stream incrementally.  Each event's data is
`<seq> <CLOCK_MONOTONIC ns> <padding>` ({event_size} bytes): per connection
the client counts events, detects loss, duplicates and reordering from the
sequence number, and takes the publish→receive latency from the timestamp
(publishers and subscribers share the host's monotonic clock; the timestamp
is taken just before the POST is written).  Publishers are keep-alive
connections that each own a set of channels and post one event at a time
(`Content-Type: text/plain`, the body is the event's data), so events of a
channel leave in order.  Publishers connect first and then start together;
paced publishers spread their first events evenly over one interval.

**CPU.**  utime + stime from `/proc/<pid>/stat` of the server's processes
(nginx master and workers; the floor's processes), read after all
subscribers are connected and again after the last expected delivery, so
connection set-up and teardown are not counted; publish handling is.
Deliveries are events counted by the clients.

**Memory.**  PSS from `/proc/<pid>/smaps_rollup`, summed over master and
workers (PSS shares the shared-memory zone's pages out among the processes
that map it, so the sum counts them once), before and after the subscribers
connect, divided by their number.  Kernel socket buffers are not included:
they are the same for every server.

**Rounds.**  broadcast, many channels, publish-with-no-subscribers and the
tokens workloads run up to {rounds} times, interleaved (module, nchan, floor, then again), as long
as the time budget allows; a round runs on every server or on none, so all
servers have the same number of rounds.  Every number shown is the median
over the rounds (of an even number, the mean of the two middle ones; p99s
too: the median p99, not the p99 of one chosen round); counts of lost,
duplicated, reordered events, ended streams and non-2xx replies are the
worst round's; the latency plots come from the round with the median key
metric.  The rows *… in each round* list every round's key metric.
Beside each p99 target against nchan, the target table gives the floor
server's ratio too, `(floor: …)`: the least a fan-out server can do, on the
same host and clients; where it is above the target's bound, no server
measured here meets that target.

**Failing.**  A publish answered other than 2xx is not counted as a publish
(publishes per second count 2xx replies only), is listed, and fails the run,
as does an event lost, duplicated or reordered on any server, a target not
met or a measurement that failed (for the module, a failed measurement
counts as a target not met): `make bench` then exits non-zero and the
report's *Verdict* says why.  Rows starting with "…" are shown to read a
target by and never fail the run.

**The machine is shared.**  Clients and servers run on the same
{nproc} cores: client CPU limits throughput and adds to latency alike for
every server, so compare columns, not absolute numbers with other machines.
The report states how much CPU other processes took during the run.

### Workloads
- **broadcast**: {broadcast_subs:,} subscribers of one channel; {broadcast_events}
  events published back to back by one publisher (each POST after the reply
  to the previous one); ends when every subscriber has every event.
- **broadcast, paced**: the same {broadcast_subs:,} subscribers, {paced_events}
  events at {paced_rate:g} per second, so that each event's fan-out ends before
  the next publish: the latency of a delivery itself.  Back to back, an
  event's latency is mostly the time it waits behind the earlier ones, which
  depends on how fast the server lets the publisher go on.
- **many channels**: {many_channels:,} channels × {many_subs_per_channel}
  subscribers; {many_events} events per channel from {many_publishers}
  concurrent publishers, back to back.  Each server is then offered as many
  publishes as its replies let through, so its tail is mostly queueing:
  the report adds the module's own publish→flush p99 (its `sse_status`
  histogram, read at the end of the run: the time until the event is written
  into the subscriber's socket; a bucket bound, so "at most") and how busy the
  host's CPU was while publishing (all cores, clients included).
- **many channels, paced**: the same subscribers, {many_paced_events} events
  per channel published at {many_paced_rate:g} per second in all, a rate every
  server sustains: the tails compared at the same load.
- **publish, no subscribers / 10 subscribers per channel**: {rate_publishers}
  keep-alive publishers (2 client processes) over {rate_channels} channels as
  fast as replies come, for {rate_seconds:g} s.  `plain` is nginx answering
  `return 201` on the same location: the ceiling of HTTP handling alone.
- **publish, no subscribers, paced**: the same publishers at {rate_paced:g}
  publishes per second in all, a rate every server sustains: back to back, a
  server that answers faster is offered more and queues more, so the round
  trips are compared at the same load here.
- **publish, 10 subscribers per channel, paced**: the same with its
  subscribers, at {rate_10_paced:g} publishes per second in all (about a third
  of nchan's back-to-back rate on this machine in a quiet hour; 8,000 was
  more than nchan sustained in a slow one).
- **idle memory**: {idle_subs:,} subscribers over {idle_channels:,} channels,
  held idle.
- **idle memory behind a default nginx proxy**: the same, through an nginx
  reverse proxy with its default settings (HTTP/1.0 to the module,
  bench/conf/proxy.conf.in); the module's server is measured, the proxy's
  own memory is shown apart.
- **concurrent subscribers held**: {held_subs:,} subscribers over
  {held_channels:,} channels, {held_workers} workers, several client
  processes; then one event per channel, which must reach every subscriber.
- **reconnect storm**: {storm_clients:,} clients over {storm_channels}
  channels receive {storm_before} events each and disconnect; {storm_missed}
  more events per channel are published; then all clients reconnect at once
  with `Last-Event-ID`.  Measured: from the first reconnect until every client
  has all {storm_missed} missed events (each client's own time: p99).  The
  floor keeps no history, so it is not in this row.
- **reconnect storm with sse_replay all** (the module alone: the bound is its
  own): one channel holds {replay_events:,} events of {replay_size:,} bytes;
  {replay_clients:,} clients join at once with `sse_replay all` and
  `sse_max_pending 64k`, each asking for the whole history.  Every client must
  get every event, in order, once; the workers' `VmRSS` (summed, sampled every
  20 ms from before the first join until the last client is done) must grow
  less than clients × `sse_max_pending` plus a constant of 32 MiB: the
  history each worker maps from the zone, nginx's connection and request
  memory, and the allocator's slack.  Each stream pulls its replay from
  history as its socket drains, never holding more than `sse_max_pending`.
- **tokens** (the users' everyday shape: one channel per chat answer or job,
  one reader, tokens trickling in): {tokens_channels:,} channels, and in the
  *many* rows {tokens_channels_many:,}, each with one subscriber;
  {tokens_rate:g} tokens per second in all, spread evenly over the channels
  and over time, for {tokens_seconds:g} s (so each channel gets
  rate × seconds ÷ channels tokens).  A token's data is short JSON text,
  `{{"i":<seq>,"t":<CLOCK_MONOTONIC ns>,"tok":" model"}}`, 35–50 bytes.  Each
  channel has a publishing connection of its own (2 client processes), as
  each answer has its producer:
  - *one POST per token*: a keep-alive connection per channel posts each
    token (`Content-Type: text/plain`) when it is due, after the reply to
    the previous one;
  - *streaming POST*: the connection holds one chunked
    `Content-Type: text/event-stream` POST open for the whole answer and
    writes each token into it as one `data:` event (one chunk) when it is
    due; the body ends after the last token and the reply comes then.  nchan
    has no streaming publish (a POST is one message), so **nchan's column
    in the streaming rows is its closest equivalent, one POST per token**,
    measured again in that row's run; the floor server reads no chunked
    bodies and is not in the streaming rows.

  Measured per token: publish→receive latency (p50, p99; the timestamp is
  taken just before the token is written, so a token waiting for the reply
  to the previous POST is not counted: *tokens per second achieved* shows
  whether a server kept up with the pace); deliveries per server
  CPU-second, the server's CPU read from just before the publishers connect
  until the last token arrived (publish connections and handling included);
  every token must arrive exactly once and in order (per channel), or the
  run fails.  A subscriber still missing tokens 15 s after the publishers
  finished is stopped and its missing tokens counted as lost.  The target is
  issue 9's: p99 ≤ 0.5× nchan's; deliveries per CPU-second ≥ 1.5× nchan's
  is shown for reference (the issue asks it of the fan-out workloads).
- **cross-node fan-out through Redis** (issue 13): one redis-server
  (no persistence, started for the workload on a free loopback port) and two
  nginx nodes on it, each with {workers} workers: the module with `sse_redis`
  (bench/conf/module_redis.conf.in), or nchan in its Redis mode
  (`nchan_redis_server` + `nchan_redis_pass`, bench/conf/nchan_redis.conf.in).
  {crossnode_subs:,} subscribers on each node over {crossnode_channels}
  channels; 10 publishers post {crossnode_events} events per channel back to
  back, all on the first node, so half the deliveries cross from one node
  to the other through Redis.  CPU is that of both nodes and redis-server.
  Each node's subscribers are a loadgen of their own, so the p99 shown is
  the larger of the two groups' p99s (never below the p99 of both
  together).  Targets: deliveries per CPU-second ≥ 1.5× nchan's, p99 ≤ 0.5×
  nchan's, and p99 within 2× of **the same on one node** (the same
  subscribers, channels and events on one module node without Redis, in
  the same run).
- **publish through Redis, no subscribers**: {rate_publishers} publishers
  for {rate_seconds:g} s on one node of the two, as *publish, no
  subscribers*; then `redis-benchmark` sends PUBLISH (64-byte message, one
  command per round trip, {rate_publishers} clients) to the same
  redis-server, as the ceiling a publish through Redis is read against
  (each of the module's publishes is one EVALSHA of its publish script, which
  appends to a stream and PUBLISHes).  Shown for reference; the issue sets
  no target on it.

### Reading the numbers
- **Back-to-back latency rewards a slow publish reply.**  The publisher sends
  the next event when the reply to the previous one arrives.  A server that
  replies only after its own fan-out holds the publisher back, so fewer events
  wait inside it and each one's latency is lower, while the whole broadcast
  takes longer (compare *first publish → last delivery*).  A server that
  replies at once takes events faster than it can deliver them and their
  latency grows with the queue.  The paced broadcast row compares delivery
  latency at the same event rate for every server.
- **Publish rates include the clients' cost.**  The publishing clients run
  on the same {nproc} cores as the server and take CPU from it, so the rate
  of plain `return 201` is not a true ceiling.  Publishes per server
  CPU-second compare the servers' own cost.
- **Latency includes the clients.**  The {broadcast_subs:,} subscribers are
  read by client processes on the same cores as the server: the floor
  server's latency is what a server doing the least possible gets here.

### The floor server
`bench/floor.cpp`: the least an SSE fan-out server can do.  It answers
`GET /sub/<ch>` with chunked `text/event-stream` headers (the wire format
nginx produces, so clients do the same work for every server) and takes
`POST /pub/<ch>`: the body becomes one `data:` frame, built once and written
with one `write()` per subscriber.  No history, ids or heartbeats.  Like
nginx it runs {workers} worker processes on one port with `SO_REUSEPORT`; a
publish taken by one worker is passed to the others over a `SOCK_SEQPACKET`
socket, one message per event and worker, so each delivers to its own
subscribers.
"""
METHOD = METHOD.replace("\n### Reading the numbers", AUTH_METHOD + "\n### Reading the numbers", 1)


def write_report(path, results, servers, profile, profile_name, info, plots, elapsed,
                 problems, raw):
    t = targets(results, profile)
    p = asdict(profile)
    parts = [
        "# Benchmarks",
        "",
        f"Generated by `make bench{'' if profile_name == 'full' else '-quick'}` "
        f"({info['date']}, {elapsed:.0f} s); do not edit by hand.  Raw numbers: "
        f"`{raw}`.",
        "",
        "## Targets",
        "",
        targets_table(t),
        "",
    ] + unmet_reasons(results, t, info, profile) + [
        "## Results",
        "",
        "Ratios are module ÷ other server: above 1 is better for rates, below 1 for",
        "times and memory.  *lost / dup / reordered / streams ended* are counted by",
        "the clients (an ended stream is one the server closed before the last",
        "expected event).",
        "",
        results_table(results, servers, profile),
        "",
    ]
    if plots:
        parts += ["## Plots", ""] + [f"![{name}]({rel})" for name, rel in plots] + [""]
    parts += [HOW_TO_RUN, "## Machine",
        "",
        f"- {info['nproc']} cores: {info['cpu']}; {info['memory_gib']} GiB",
        f"- Linux {info['kernel']}; open files limit {info['open_files']}",
        f"- {info['nginx']} (Debian), nchan {info['nchan']}",
        f"- module build: {info['module_build']['built']}" if info.get("module_build")
        else "- module: not measured",
        f"- other processes used {info['background_cpu_share']:.0%} of the host's CPU during "
        "the run" + ("" if info["background_cpu_share"] < 0.1 else
                     " — **the machine was not quiet: rates and latencies are pessimistic "
                     "and noisy; CPU-second and memory ratios hold up better**"),
        "",
        METHOD.format(**p, nproc=info["nproc"]),
    ]
    clean = [k for k in servers if not any(where.endswith("/" + k) for where in problems)]
    parts += ["## error.log findings", ""]
    if clean:
        parts += [f"Nothing at [warn] or worse in any log of: {', '.join(clean)}.", ""]
    if problems:
        parts += ["Lines at [warn] or worse, by workload/server (numbers replaced by N):", ""]
        parts += [f"- {where}: `{line}`" for where, lines in problems.items()
                  for line in lines[:6]] + [""]
    failed = failures(results, t)
    parts += ["## Verdict", ""]
    if failed:
        parts += ["The run **fails** (`make bench` exits non-zero):", ""]
        parts += [f"- {line}" for line in failed] + [""]
    else:
        parts += ["Every target met, every measurement done, every publish answered 2xx.", ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(parts))
    return t


PLOTS = [  # name, title, workloads it draws on
    ("fanout", "deliveries per CPU-second", ("broadcast", "many_channels")),
    ("latency", "broadcast latency", ("broadcast", "broadcast_paced")),
    ("publish", "publish rate", ("publish_0", "publish_10")),
    ("memory", "memory per subscriber", ("idle_memory", "held")),
]


def write_plots(results, servers, datadir, outdir, docs_dir):
    """gnuplot PNGs from bench/plots.gp; returns (title, path relative to the report)."""
    if not shutil.which("gnuplot"):
        log("gnuplot not found: no plots")
        return []
    datadir.mkdir(parents=True, exist_ok=True)
    outdir.mkdir(parents=True, exist_ok=True)

    def num(workload, kind, key, scale=1.0):
        v = value(results, workload, kind, key)
        return f"{v * scale:.3f}" if isinstance(v, (int, float)) else "-"

    def table(name, workloads, keys, scale=1.0):
        with open(datadir / f"{name}.dat", "w") as f:
            for k in servers:
                cells = [num(w, k, key, scale) for w, key in zip(workloads, keys)]
                if any(c != "-" for c in cells):
                    f.write(f"{k} {' '.join(cells)}\n")

    table("fanout", ("broadcast", "many_channels"), ("deliveries_per_cpu_s",) * 2, 1e-3)
    table("publish", ("publish_0", "publish_10"), ("rps", "rps"), 1e-3)
    table("memory", ("idle_memory", "held"), ("bytes_per_sub",) * 2)
    def cdf_files(workload, prefix):
        written = []
        for k in servers:
            cdf = value(results, workload, k, "latency_cdf")
            if isinstance(cdf, list) and cdf:
                (datadir / f"{prefix}-{k}.dat").write_text(
                    "".join(f"{us / 1e3} {frac}\n" for us, frac in cdf))
                written.append(k)
        return written

    latency = cdf_files("broadcast", "latency")
    paced = cdf_files("broadcast_paced", "paced")

    def has_data(workloads):
        return any(isinstance(r, dict) and "error" not in r
                   for w in workloads for r in results.get(w, {}).values())

    wanted = [p for p in PLOTS if has_data(p[2]) and (p[0] != "latency" or (latency and paced))]
    if not wanted:
        return []
    names = " ".join(p[0] for p in wanted)
    cmd = ["gnuplot", "-e",
           f"datadir='{datadir}'; outdir='{outdir}'; plots='{names}'; "
           f"latency='{' '.join(latency)}'; paced='{' '.join(paced)}'",
           str(ROOT / "bench" / "plots.gp")]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        log("gnuplot failed: " + res.stderr.strip())
        return []
    return [(title, os.path.relpath(outdir / f"{name}.png", docs_dir))
            for name, title, _ in wanted if (outdir / f"{name}.png").exists()]


# ------------------------------------------------------------------ main

def check_prerequisites(bench, servers):
    missing = [str(p) for p in (bench.loadgen, bench.floor) if not p.exists()]
    if "nchan" in servers and not NCHAN_SO.exists():
        missing.append(f"{NCHAN_SO} (apt-get install libnginx-mod-nchan)")
    if "module" in servers and not bench.module_so.exists():
        missing.append(f"{bench.module_so} (make build)")
    if missing:
        sys.exit("bench: missing " + ", ".join(missing))


def on_signal(signum, _frame):
    raise SystemExit(f"bench: stopped by signal {signum}")


def measure_all(args):
    """Runs the workloads; returns what results.json holds."""
    bench = Bench(args)
    wanted = {s for s in args.servers.split(",") if s} | {"plain"}
    servers = [s for s in SERVER_ORDER if s in wanted]
    check_prerequisites(bench, servers)
    only = {w for w in args.only.split(",") if w}

    atexit.register(stop_everything)
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, on_signal)
    shutil.rmtree(bench.rundir, ignore_errors=True)
    bench.rundir.mkdir(parents=True)
    module_build = bench.snapshot_module() if "module" in servers else None

    started = time.monotonic()
    busy0, own0 = host_busy_s(), own_cpu_s()
    try:
        results = run_all(bench, servers, only)
    finally:
        stop_everything()
    elapsed = time.monotonic() - started
    others = (host_busy_s() - busy0) - (own_cpu_s() - own0)

    info = machine()
    info["module_build"] = module_build
    # what other processes took of the host while the benchmark ran
    info["background_cpu_share"] = max(0.0, others / (elapsed * os.cpu_count()))
    return {"profile": args.profile, "servers": servers, "machine": info, "results": results,
            "log_problems": bench.problems, "seconds": elapsed}


def report(out, results_json, args):
    """Prints the tables; writes the markdown report and plots if asked to."""
    results, profile = out["results"], PROFILES[out["profile"]]
    shown = [s for s in out["servers"] if any(s in row for row in results.values())]
    path = Path(args.report) if args.report else None
    if path:
        plots = []
        if args.plots:
            plots = write_plots(results, shown, Path(args.build) / "plotdata", Path(args.plots),
                                path.parent)
        t = write_report(path, results, shown, profile, out["profile"], out["machine"], plots,
                         out["seconds"], out["log_problems"],
                         os.path.relpath(results_json, ROOT))
    else:
        t = targets(results, profile)

    print()
    print(results_table(results, shown, profile))
    print()
    print(targets_table(t))
    for where, lines in out["log_problems"].items():
        for line in lines[:8]:
            print(f"  error.log {where}: {line}")
    print(f"\nbench: {out['seconds']:.0f} s; results in {results_json}"
          + (f", report {path}" if path else ""))
    failed = failures(results, t)
    for line in failed:
        print(f"bench: FAIL: {line}")
    if not failed:
        print("bench: every target met, every measurement done")
    return 1 if failed else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--profile", choices=PROFILES, default="quick")
    ap.add_argument("--build", default=str(ROOT / "build" / "bench"))
    ap.add_argument("--module", default=str(ROOT / "build" / "ngx_http_sse_module.so"))
    ap.add_argument("--servers", default="module,nchan,floor",
                    help="comma-separated: module, nchan, floor (plain always runs)")
    ap.add_argument("--only", default="", help="comma-separated workloads: "
                    + ", ".join(w.name for w in WORKLOADS))
    ap.add_argument("--report", default=None, help="markdown report to write")
    ap.add_argument("--plots", default=None, help="directory for the PNG plots")
    ap.add_argument("--from-json", default=None,
                    help="measure nothing: report the results.json of an earlier run")
    args = ap.parse_args()

    if args.from_json:
        results_json = Path(args.from_json)
        out = json.loads(results_json.read_text())
    else:
        out = measure_all(args)
        name = "results.json" if args.profile == "full" else f"results-{args.profile}.json"
        results_json = Path(args.build) / name
        results_json.write_text(json.dumps(out, indent=1))
    return report(out, results_json, args)


if __name__ == "__main__":
    sys.exit(main())
