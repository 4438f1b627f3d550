"""Several verifier processes on one PostgreSQL: each envelope approved exactly once, across
processes, restarts and a kill -9 under load.

The servers are real ``pyimgenc serve verifier --db postgresql://...`` processes with the
shipped VAE first factor; the envelopes are real faces sealed by a real Terminal.
"""
from __future__ import annotations

import os
import signal
import subprocess
import threading
import time

from pyimgenc import factor
from pyimgenc.factor.service import VerifierClient, spawn as _start


def _stop(proc: subprocess.Popen, sig=signal.SIGTERM) -> None:
    proc.send_signal(sig)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _post(url: str, env: bytes) -> str:
    with VerifierClient(url, timeout_s=30) as c:
        try:
            return "ok:%d" % c.verify(env)["counter"]
        except factor.VerificationError as exc:
            return exc.reason


def test_two_processes_one_postgres_approve_each_envelope_once(pg_dsn, faces, tmp_path):
    srv = factor.Verifier.create(pg_dsn)
    term = factor.Terminal("kiosk-1", srv.public_key, state_path=tmp_path / "kiosk.json")
    srv.register_device("kiosk-1", term.public_key)
    (a, url_a), (b, url_b) = _start(pg_dsn), _start(pg_dsn)
    approved = []
    try:
        for i in range(100):                       # the same envelope to both processes at once
            env = term.seal(faces[i % len(faces)])
            out = [None, None]
            ts = [threading.Thread(target=lambda k, u: out.__setitem__(k, _post(u, env)), args=(k, u))
                  for k, u in enumerate((url_a, url_b))]
            for t in ts:
                t.start()
            for t in ts:
                t.join(60)
            assert sorted(o.split(":")[0] for o in out) == ["ok", "replayed_counter"], (i, out)
            approved.append(env)
    finally:
        _stop(a)
        _stop(b)
    assert len(srv.records("kiosk-1")) == 100 and srv.last_counter("kiosk-1") == 100
    (a, url_a), (b, url_b) = _start(pg_dsn), _start(pg_dsn)       # both restarted: replays still refused
    try:
        for env in (approved[0], approved[57], approved[-1]):
            assert _post(url_a, env) == "replayed_counter" and _post(url_b, env) == "replayed_counter"
    finally:
        _stop(a)
        _stop(b)
    srv.close()


def test_kill_9_under_load_loses_no_approval_and_accepts_no_replay(pg_dsn, faces, tmp_path):
    srv = factor.Verifier.create(pg_dsn)
    terms = [factor.Terminal(f"kiosk-{k}", srv.public_key, state_path=tmp_path / f"k{k}.json") for k in range(4)]
    for t in terms:
        srv.register_device(t.device_id, t.public_key)
    (a, url_a), (b, url_b) = _start(pg_dsn), _start(pg_dsn)
    answered: list[tuple[bytes, str]] = []
    lock = threading.Lock()
    stop = threading.Event()

    def load(t, url):
        i = 0
        while not stop.is_set():
            env = t.seal(faces[i % len(faces)])
            i += 1
            try:
                r = _post(url, env)
            except ConnectionError:
                r = "no_answer"          # the process died under this request
            with lock:
                answered.append((env, r))

    threads = [threading.Thread(target=load, args=(t, (url_a, url_b)[k % 2])) for k, t in enumerate(terms)]
    def until(what, cond, limit_s=120):            # progress by count, not by the clock
        deadline = time.monotonic() + limit_s
        while not cond():
            assert time.monotonic() < deadline, f"no {what} within {limit_s} s"
            time.sleep(0.05)

    def count(pred):
        with lock:
            return sum(1 for _, r in answered if pred(r))

    for th in threads:
        th.start()
    until("8 approvals", lambda: count(lambda r: r.startswith("ok")) >= 8)
    os.kill(a.pid, signal.SIGKILL)                 # no shutdown, no flush: mid-transaction for some requests
    a.wait()
    after = len(answered)
    until("answers after the kill", lambda: count(lambda r: True) >= after + 8)   # both servers' clients again
    stop.set()
    for th in threads:
        th.join(60)
    _stop(b)
    ok = [(e, r) for e, r in answered if r.startswith("ok")]
    assert len(ok) >= 8 and any(r == "no_answer" for _, r in answered)
    recorded = {(r["device_id"], r["counter"]) for r in srv.records()}
    for env, r in ok:                              # every approval a client saw is on record
        sf = factor.parse_header(env)[0]["second"]
        assert (sf.device_info, sf.counter) in recorded and int(r.split(":")[1]) == sf.counter
    (a, url_a), (b, url_b) = _start(pg_dsn), _start(pg_dsn)
    late = 0
    try:
        for k, (env, _) in enumerate(answered):    # every envelope again, after the restart
            sf = factor.parse_header(env)[0]["second"]
            if _post((url_a, url_b)[k % 2], env).startswith("ok"):
                late += 1                          # only one never approved before (lost in flight) may pass
                assert (sf.device_info, sf.counter) not in recorded
    finally:
        _stop(a)
        _stop(b)
    rows = srv.records()
    assert len(rows) == len(recorded) + late == len({(r["device_id"], r["counter"]) for r in rows})
    print(f"\nkill -9 under load: {len(answered)} envelopes sent, {len(ok)} approvals seen, "
          f"{sum(r == 'no_answer' for _, r in answered)} without an answer, {len(recorded)} on record after the kill, "
          f"all {len(answered)} replayed after restart: {late} approved (never approved before), "
          f"{len(answered) - late} refused")
    srv.close()
