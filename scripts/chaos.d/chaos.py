#!/usr/bin/env python3
"""The driver behind scripts/chaos (python3 standard library only).

Starts booking-server, logs in as an admin, and runs writer threads that POST /booking with
one Idempotency-Key per logical booking, retrying the same key and body on 503, connection
errors and timeouts until 201 (created) or 200 (the retry found the first attempt's booking).
Meanwhile PostgreSQL is restarted every ~3 s (PG_STOP_MODE alternating fast and immediate) and
stopped once for ~5 s; after each, the time from PostgreSQL accepting connections to the first
2xx of GET /booking?limit=1 (polled every 50 ms) is the recovery time. At the end PostgreSQL is
asked whether every acknowledged booking exists and whether any logical booking exists twice.
"""

import argparse
import http.client
import json
import os
import random
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse

HOST = "127.0.0.1"
POLL_INTERVAL = 0.05      # recovery probe period
RESTART_INTERVAL = 3.0    # from one PostgreSQL restart to the next
STOP_SECONDS = 5.0        # the one stop
WARMUP = 2.0              # load before the first restart
CALM_TAIL = 4.0           # no restart in the last seconds of the load
RESOLVE_GRACE = 20.0      # after the load: time for writers to settle their last booking
RECOVERY_GIVE_UP = 30.0   # a probe loop never runs longer than this
RETRY_BACKOFF = (0.05, 0.15)


def log(message):
    print(f"chaos: {message}", file=sys.stderr, flush=True)


def percentile(values, q):
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, int(round(q * (len(ordered) - 1)))))
    return ordered[index]


class Client:
    """One keep-alive HTTP/1.1 connection; reconnects after any failure."""

    def __init__(self, port, timeout):
        self.port = port
        self.timeout = timeout
        self.conn = None

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def request(self, method, path, body=None, headers=None):
        """Returns (status or None, body bytes, error kind or None, seconds)."""
        if self.conn is None:
            self.conn = http.client.HTTPConnection(HOST, self.port, timeout=self.timeout)
        started = time.monotonic()
        try:
            self.conn.request(method, path, body=body, headers=headers or {})
            response = self.conn.getresponse()
            data = response.read()
            elapsed = time.monotonic() - started
            if response.will_close:
                self.close()
            return response.status, data, None, elapsed
        except (socket.timeout, TimeoutError):
            kind = "timeout"
        except (OSError, http.client.HTTPException):
            kind = "connection"
        self.close()
        return None, b"", kind, time.monotonic() - started


class Run:
    def __init__(self, args):
        self.args = args
        self.port = args.port
        self.client_timeout = args.deadline + 3
        self.slow_limit = args.deadline + 1
        self.run_id = secrets.token_hex(4)
        self.start = None
        self.load_end = None
        self.token = None
        self.server = None
        self.lock = threading.Lock()
        self.requests = []          # (status or error kind, seconds, request id)
        self.acknowledged = {}      # booking id -> topic
        self.created = 0            # 201
        self.found_on_retry = 0     # 200
        self.unresolved = []        # logical bookings never acknowledged
        self.anomalies = []         # answers that make no sense for this client
        self.events = []            # (label, pg_ctl seconds, recovery seconds)
        self.chaos_errors = []
        self.stop_load = threading.Event()

    # -- the server ---------------------------------------------------------------------

    def start_server(self):
        env = dict(os.environ)
        env.update({
            "APP_ENV": "test", "HOST": HOST, "PORT": str(self.port),
            "DATABASE_TIMEOUT_SECONDS": str(self.args.deadline),
            "LOG_LEVEL": os.environ.get("CHAOS_LOG_LEVEL", "warning"),
        })
        env.pop("CHAOS_ADMIN_PASSWORD", None)
        self.server_log = open(os.path.join(self.args.work, "server.log"), "wb")
        self.server = subprocess.Popen([self.args.server], env=env, stdin=subprocess.DEVNULL,
                                       stdout=self.server_log, stderr=subprocess.STDOUT)
        with open(os.path.join(self.args.work, "server.pid"), "w") as f:
            f.write(str(self.server.pid))
        client = Client(self.port, 2)
        give_up = time.monotonic() + 60
        while time.monotonic() < give_up:
            if self.server.poll() is not None:
                raise SystemExit(f"chaos: booking-server exited at start-up ({self.server.returncode})")
            status, _, _, _ = client.request("GET", "/ping")
            if status == 200:
                return
            time.sleep(0.2)
        raise SystemExit("chaos: booking-server did not become ready within 60 s")

    def stop_server(self):
        """SIGTERM, then the time it took to exit; SIGKILL past the grace period."""
        if self.server is None or self.server.poll() is not None:
            return None
        started = time.monotonic()
        self.server.send_signal(signal.SIGTERM)
        try:
            self.server.wait(timeout=15)
            return time.monotonic() - started
        except subprocess.TimeoutExpired:
            self.server.kill()
            self.server.wait()
            return float("inf")

    def login(self):
        form = urllib.parse.urlencode({"username": "chaos-admin", "password": os.environ["CHAOS_ADMIN_PASSWORD"],
                                       "grant_type": "password"})
        status, data, error, _ = Client(self.port, 30).request(
            "POST", "/token", form, {"Content-Type": "application/x-www-form-urlencoded"})
        if status != 200:
            raise SystemExit(f"chaos: login failed: {status or error} {data[:200]!r}")
        self.token = json.loads(data)["access_token"]

    # -- the load -----------------------------------------------------------------------

    def booking_body(self, topic):
        when = time.time() + 30 * 86400 + random.randint(0, 300 * 86400)
        return json.dumps({
            "topic": topic,
            "event_time": time.strftime("%Y-%m-%dT%H:%M:00Z", time.gmtime(when)),
            "duration_minutes": 30,
            "address": {"street": "1 Chaos Road", "city": "Restartville", "country": "JP"},
            "requested_by": "chaos@example.com",
        }).encode()

    def writer(self, number):
        client = Client(self.port, self.client_timeout)
        records = []
        sequence = 0
        hard_end = self.load_end + RESOLVE_GRACE
        while not self.stop_load.is_set() and time.monotonic() < self.load_end:
            sequence += 1
            key = f"chaos-{self.run_id}-w{number}-n{sequence}"
            topic = f"chaos {self.run_id} w{number} n{sequence}"
            body = self.booking_body(topic)
            attempt = 0
            while True:
                if attempt:
                    time.sleep(random.uniform(*RETRY_BACKOFF))
                if time.monotonic() > hard_end:
                    with self.lock:
                        self.unresolved.append(key)
                    break
                attempt += 1
                request_id = f"{key}-a{attempt}"
                sent_at = time.monotonic() - self.start
                status, data, error, elapsed = client.request("POST", "/booking", body, {
                    "Authorization": f"Bearer {self.token}",
                    "Content-Type": "application/json",
                    "Idempotency-Key": key,
                    "X-Request-ID": request_id,
                })
                records.append((status if status is not None else error, elapsed, f"{request_id} (sent at t={sent_at:.2f}s)"))
                if status in (200, 201):
                    try:
                        booking = json.loads(data)
                        booking_id, answered_topic = booking["id"], booking["topic"]
                    except (ValueError, KeyError, TypeError):
                        booking_id, answered_topic = None, None
                    with self.lock:
                        if answered_topic != topic:
                            self.anomalies.append(f"{request_id}: {status} with a body that is not this booking: {data[:200]!r}")
                        elif status == 200 and attempt == 1:
                            self.anomalies.append(f"{request_id}: 200 on a first attempt (key reused?)")
                        else:
                            if status == 201:
                                self.created += 1
                            else:
                                self.found_on_retry += 1
                            if booking_id in self.acknowledged:
                                self.anomalies.append(f"{request_id}: id {booking_id} acknowledged for two keys")
                            self.acknowledged[booking_id] = topic
                    break
                if status == 503 or error is not None:
                    continue
                with self.lock:
                    self.anomalies.append(f"{request_id}: unexpected {status}: {data[:200]!r}")
                break
        client.close()
        with self.lock:
            self.requests.extend(records)

    # -- the faults ---------------------------------------------------------------------

    def pg_cluster(self, command, mode):
        env = dict(os.environ, PG_STOP_MODE=mode)
        started = time.monotonic()
        result = subprocess.run([self.args.pg_cluster, command, os.path.join(self.args.work, "pg")],
                                env=env, stdin=subprocess.DEVNULL, capture_output=True, timeout=90)
        if result.returncode != 0 and command == "restart" and mode != "immediate":
            # A fast shutdown waits for every backend and a checkpoint; on a starved CI machine it
            # once outlasted pg_ctl's 30 s. That is PostgreSQL's time, not the service's: say so,
            # with the cluster's log, and finish the restart as a crash.
            log(f"warning: {mode} restart did not finish, restarting immediately; PostgreSQL log tail:\n"
                + self.pg_log_tail())
            for step, step_mode in (("stop", "immediate"), ("start", mode)):
                retry = subprocess.run([self.args.pg_cluster, step, os.path.join(self.args.work, "pg")],
                                       env=dict(os.environ, PG_STOP_MODE=step_mode), stdin=subprocess.DEVNULL,
                                       capture_output=True, timeout=90)
                if retry.returncode != 0:
                    self.chaos_errors.append(f"pg-cluster {step} exited {retry.returncode}: "
                                             f"{retry.stderr.decode(errors='replace').strip()[:300]}")
        elif result.returncode != 0:
            self.chaos_errors.append(f"pg-cluster {command} ({mode}) exited {result.returncode}: "
                                     f"{result.stderr.decode(errors='replace').strip()[:300]}")
        return time.monotonic() - started

    def pg_log_tail(self, lines=30):
        try:
            with open(os.path.join(self.args.work, "pg", "log"), errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError as error:
            return f"(no log: {error})"

    def recovery(self, since):
        """Seconds from `since` (PostgreSQL accepting connections) to the first 2xx of the probe."""
        client = Client(self.port, self.client_timeout)
        headers = {"Authorization": f"Bearer {self.token}", "Connection": "close"}
        while True:
            status, _, _, _ = client.request("GET", "/booking?limit=1", None, headers)
            client.close()
            now = time.monotonic()
            if status is not None and 200 <= status < 300:
                return now - since
            if now - since > RECOVERY_GIVE_UP:
                return float("inf")
            time.sleep(POLL_INTERVAL)

    def chaos(self):
        modes = ["fast", "immediate"]
        turn = 0
        stopped_once = False
        next_at = self.start + WARMUP
        chaos_end = self.load_end - CALM_TAIL
        while True:
            now = time.monotonic()
            if now < next_at:
                time.sleep(next_at - now)
                now = time.monotonic()
            if now > chaos_end or self.stop_load.is_set():
                break
            mode = modes[turn % 2]
            turn += 1
            begun = time.monotonic()
            if not stopped_once and now >= self.start + self.args.seconds / 2:
                stopped_once = True
                self.pg_cluster("stop", mode)
                time.sleep(STOP_SECONDS)
                took = self.pg_cluster("start", mode)
                label = f"stop ({mode}) {STOP_SECONDS:.0f} s, start"
            else:
                took = self.pg_cluster("restart", mode)
                label = f"restart ({mode})"
            recovered = self.recovery(time.monotonic())
            self.events.append((label, took, recovered))
            log(f"t={begun - self.start:5.1f}s {label}: pg_ctl {took:.2f} s, recovered in {recovered:.2f} s")
            next_at = begun + RESTART_INTERVAL
        if not stopped_once:
            self.chaos_errors.append("the run was too short for the stop")

    # -- the checks ---------------------------------------------------------------------

    def stored_bookings(self):
        """id -> topic for this run's bookings, read by the superuser over the socket."""
        for _ in range(20):
            result = subprocess.run(
                [self.args.pg_cluster, "psql", os.path.join(self.args.work, "pg"), "-d", "chaos", "-At", "-F", "\t",
                 "-c", f"SELECT id, topic FROM bookings WHERE topic LIKE 'chaos {self.run_id} %'"],
                stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
            if result.returncode == 0:
                rows = {}
                counts = {}
                for line in result.stdout.decode().splitlines():
                    booking_id, topic = line.split("\t", 1)
                    rows[int(booking_id)] = topic
                    counts[topic] = counts.get(topic, 0) + 1
                return rows, counts
            time.sleep(1)
        raise SystemExit(f"chaos: could not read the bookings back: {result.stderr.decode(errors='replace')[:300]}")

    def idle_leases(self):
        """db_pool_connections_in_use from /metrics once the load is over: leases still held
        (or still waited for) by requests that never finished. Informational."""
        status, data, _, _ = Client(self.port, 5).request("GET", "/metrics")
        if status != 200:
            return None
        for line in data.decode(errors="replace").splitlines():
            if line.startswith("db_pool_connections_in_use"):
                try:
                    return int(float(line.split()[-1]))
                except ValueError:
                    return None
        return None

    def bad_log_lines(self):
        self.server_log.flush()
        bad, errors = [], []
        with open(os.path.join(self.args.work, "server.log"), "rb") as f:
            for line in f:
                text = line.decode(errors="replace").rstrip()
                if "unhandled error" in text or "Fatal error" in text:
                    bad.append(text)
                elif " error " in text or " critical " in text:
                    errors.append(text)
        return bad, errors

    def main(self):
        self.start_server()
        self.login()
        self.start = time.monotonic()
        self.load_end = self.start + self.args.seconds
        log(f"run {self.run_id}: {self.args.writers} writers for {self.args.seconds} s, "
            f"DATABASE_TIMEOUT_SECONDS={self.args.deadline}, {self.args.build} build")
        writers = [threading.Thread(target=self.writer, args=(n,), daemon=True) for n in range(self.args.writers)]
        for thread in writers:
            thread.start()
        chaos = threading.Thread(target=self.chaos, daemon=True)
        chaos.start()
        chaos.join(timeout=self.args.seconds + 120)
        if chaos.is_alive():
            self.chaos_errors.append("the restart loop did not finish")
        for thread in writers:
            thread.join(timeout=max(1, self.load_end + RESOLVE_GRACE + self.client_timeout + 5 - time.monotonic()))
        self.stop_load.set()
        stuck_writers = sum(thread.is_alive() for thread in writers)
        elapsed = time.monotonic() - self.start

        alive = self.server.poll() is None
        exit_code = self.server.returncode
        self.leases_when_idle = self.idle_leases() if alive else None
        stored, counts = self.stored_bookings()
        shutdown = self.stop_server() if alive else None
        bad_lines, error_lines = self.bad_log_lines()   # after the shutdown: a crash while stopping counts
        return self.report(elapsed, alive, exit_code, stored, counts, bad_lines, error_lines, shutdown, stuck_writers)

    def report(self, elapsed, alive, exit_code, stored, counts, bad_lines, error_lines, shutdown, stuck_writers):
        statuses = {}
        for outcome, _, _ in self.requests:
            statuses[outcome] = statuses.get(outcome, 0) + 1
        latencies = [seconds for _, seconds, _ in self.requests]
        slow = [(rid, outcome, seconds) for outcome, seconds, rid in self.requests if seconds > self.slow_limit]
        five_hundreds = [(rid, outcome) for outcome, _, rid in self.requests
                         if isinstance(outcome, int) and outcome >= 500 and outcome != 503]
        lost = sorted(booking_id for booking_id, topic in self.acknowledged.items() if stored.get(booking_id) != topic)
        duplicates = sorted(topic for topic, count in counts.items() if count > 1)
        acknowledged_topics = set(self.acknowledged.values())
        unacknowledged_stored = sum(1 for topic in counts if topic not in acknowledged_topics)
        recoveries = [recovered for _, _, recovered in self.events]
        restarts = [label for label, _, _ in self.events if label.startswith("restart")]
        crashes = 0 if alive else 1
        max_recovery = max(recoveries) if recoveries else float("inf")
        status_text = ", ".join(f"{k}: {v}" for k, v in sorted(statuses.items(), key=lambda kv: str(kv[0])))

        failures = []
        def must_be_zero(name, value):
            if value:
                failures.append(f"{name} = {value}")
        must_be_zero("lost", len(lost))
        must_be_zero("duplicates", len(duplicates))
        must_be_zero("500s", len(five_hundreds))
        must_be_zero("slow answers", len(slow))
        must_be_zero("server crashes", crashes)
        must_be_zero("unhandled/fatal log lines", len(bad_lines))
        must_be_zero("unresolved bookings", len(self.unresolved))
        must_be_zero("unexpected answers", len(self.anomalies))
        must_be_zero("harness errors", len(self.chaos_errors))
        must_be_zero("stuck writers", stuck_writers)
        if not max_recovery < 2:
            failures.append(f"max recovery {max_recovery:.2f} s (limit < 2 s)")
        if not self.acknowledged:
            failures.append("nothing was acknowledged")
        if shutdown == float("inf"):
            failures.append("SIGTERM did not end the server within 15 s")

        fmt = lambda s: "never" if s == float("inf") else f"{s:.2f} s"
        lines = [
            f"chaos summary — {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {self.args.build} build, "
            f"{self.args.writers} writers, {self.args.seconds} s load ({elapsed:.0f} s in all), "
            f"DATABASE_TIMEOUT_SECONDS={self.args.deadline}",
            f"  requests               {len(self.requests)}  ({status_text})",
            f"  acknowledged           {len(self.acknowledged)}  (201: {self.created}, 200 on retry: {self.found_on_retry})",
            f"  lost                   {len(lost)}",
            f"  duplicates             {len(duplicates)}",
            f"  500s                   {len(five_hundreds)}",
            f"  slower than {self.slow_limit:.0f} s       {len(slow)}  (client timeouts at {self.client_timeout:.0f} s: {statuses.get('timeout', 0)})",
            f"  server crashes         {crashes}" + ("" if alive else f"  (exit {exit_code})"),
            f"  unhandled/fatal lines  {len(bad_lines)}  (other error-level lines: {len(error_lines)})",
            f"  recovery p50 / max     {fmt(percentile(recoveries, 0.5))} / {fmt(max_recovery)}  "
            f"over {len(restarts)} restarts + {len(self.events) - len(restarts)} stop (limit < 2 s)",
            f"  503s                   {statuses.get(503, 0)}",
            f"  connection errors      {statuses.get('connection', 0)}",
            f"  latency p50/p99/max    {percentile(latencies, 0.5) * 1000:.0f} / {percentile(latencies, 0.99) * 1000:.0f} / "
            f"{max(latencies, default=0) * 1000:.0f} ms",
            f"  leases held when idle  {'—' if self.leases_when_idle is None else self.leases_when_idle}  (db_pool_connections_in_use after the load)",
            f"  unresolved at the end  {len(self.unresolved)}  (stored but never acknowledged: {unacknowledged_stored})",
            f"  unexpected answers     {len(self.anomalies)}",
            f"  SIGTERM to exit        {'—' if shutdown is None else fmt(shutdown)}",
            f"  result                 {'PASS' if not failures else 'FAIL: ' + '; '.join(failures)}",
        ]
        print("\n".join(lines), flush=True)
        details = []
        details += [f"lost: booking {booking_id} ({self.acknowledged[booking_id]})" for booking_id in lost[:10]]
        details += [f"duplicate: {topic} x{counts[topic]}" for topic in duplicates[:10]]
        details += [f"5xx: {rid} -> {outcome}" for rid, outcome in five_hundreds[:10]]
        details += [f"slow: {rid} -> {outcome} after {seconds:.2f} s" for rid, outcome, seconds in slow[:10]]
        details += [f"log: {line[:400]}" for line in bad_lines[:10]]
        details += [f"log: {line[:400]}" for line in error_lines[:5]]
        details += [f"unexpected: {text}" for text in self.anomalies[:10]]
        details += [f"unresolved: {key}" for key in self.unresolved[:10]]
        details += [f"harness: {text}" for text in self.chaos_errors]
        for line in details:
            log(line)
        return 0 if not failures else 1


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--server", required=True)
    parser.add_argument("--work", required=True)
    parser.add_argument("--pg-cluster", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--writers", type=int, default=8)
    parser.add_argument("--deadline", type=int, default=2)
    parser.add_argument("--build", default="debug")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    run = Run(args)
    try:
        code = run.main()
    finally:
        run.stop_load.set()
        if run.server is not None and run.server.poll() is None:
            run.server.kill()
            run.server.wait()
    sys.exit(code)


if __name__ == "__main__":
    main()
