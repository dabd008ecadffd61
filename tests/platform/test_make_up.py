"""Issue 2: `make up` brings all five services up; Ctrl-C leaves no process behind.

This runs the same supervisor `make up` runs (``cpu up``) on free ports, so it never clashes
with a developer's running stack, and delivers Ctrl-C the way a terminal does: SIGINT to the
whole foreground process group.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from cpu_platform.devstack.kafka import free_port
from cpu_platform.devstack.up import SERVICES


def children_of(pid: int) -> set[int]:
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        if int(fields[1]) == pid:
            found.add(int(stat.parent.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def run_platform_once(var_dir: Path, ports: dict[str, int], log: Path) -> set[int]:
    env = {k: v for k, v in os.environ.items() if k != "KAFKA_BOOTSTRAP_SERVERS"}
    env |= {f"{name.upper()}_PORT": str(port) for name, port in ports.items()}
    with log.open("wb") as out:
        supervisor = subprocess.Popen(
            [sys.executable, "-m", "cpu_platform.cli", "up", "--var-dir", str(var_dir)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 240
        pending = {s.name for s in SERVICES}
        while pending:
            assert supervisor.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, "services not healthy:\n" + log.read_text()[-3000:]
            for name in list(pending):
                try:
                    url = f"http://127.0.0.1:{ports[name]}/health"
                    if httpx.get(url, timeout=1).status_code == 200:
                        pending.discard(name)
                except httpx.HTTPError:
                    pass
            time.sleep(0.3)
        for name in ports:
            ready = httpx.get(f"http://127.0.0.1:{ports[name]}/ready", timeout=10)
            assert ready.status_code == 200, (name, ready.text)
        children = children_of(supervisor.pid)
        assert len(children) == 6, f"five services and a broker, got {children}"
        os.killpg(supervisor.pid, signal.SIGINT)  # what Ctrl-C in the terminal does
        assert supervisor.wait(timeout=120) == 0, log.read_text()[-3000:]
        return children
    finally:
        if supervisor.poll() is None:
            supervisor.kill()


def test_make_up_runs_everything_and_ctrl_c_stops_everything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    var_dir = tmp_path / "var"
    ports = {s.name: free_port() for s in SERVICES}
    monkeypatch.setenv("CPU_KAFKA_PORT", str(free_port()))
    monkeypatch.setenv("CPU_KAFKA_CONTROLLER_PORT", str(free_port()))
    children = run_platform_once(var_dir, ports, tmp_path / "first.log")
    time.sleep(0.5)
    assert not [pid for pid in children if alive(pid)], "processes left behind"
    output = (tmp_path / "first.log").read_text()
    for name, port in ports.items():
        assert f"http://127.0.0.1:{port}" in output, f"{name}'s URL is not printed"
    for spec in SERVICES:
        assert (var_dir / f"{spec.name}.db").is_file()

    # A marker in a store must survive a second run over the same ./var.
    with sqlite3.connect(var_dir / "intake.db") as db:
        db.execute("INSERT INTO inbox VALUES ('marker', 'kept', 't', '2026-01-01')")
    children = run_platform_once(var_dir, ports, tmp_path / "second.log")
    time.sleep(0.5)
    assert not [pid for pid in children if alive(pid)], "processes left behind"
    with sqlite3.connect(var_dir / "intake.db") as db:
        kept = db.execute("SELECT count(*) FROM inbox WHERE event_id = 'kept'").fetchone()
    assert kept == (1,)
