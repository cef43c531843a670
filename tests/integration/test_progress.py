"""Live progress as a person at a terminal meets it (a pseudo-terminal), and its absence on a pipe (cron,
Dagster, CI): plain log lines there, no escape codes."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import struct
import subprocess
import sys
import termios
from pathlib import Path

from tests.support import M, Warehouse, cli_env

ESCAPES = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def in_a_terminal(args: list[str], env: dict[str, str], width: int = 140) -> tuple[int, str]:
    """Run a command with a pseudo-terminal as its stdin, stdout and stderr; returns (exit code, output)."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 50, width, 0, 0))
    process = subprocess.Popen(args, stdin=follower, stdout=follower, stderr=follower, env=env, close_fds=True)
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the terminal closed with the process
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    return process.wait(timeout=240), b"".join(chunks).decode("utf-8", "replace")


def command(*args: str) -> list[str]:
    return [sys.executable, "-m", "pipelines", *args]


def test_a_load_shows_live_progress_on_a_terminal_and_plain_lines_on_a_pipe(tmp_path, sandbox, rootfi):
    sandbox.settings.delay_seconds = 0.03  # long enough to be drawn a few times
    # Rootfi's total shows while a table's scan is past its first page: two rows a page and 0.1 s a request
    # keep its payments and invoices there for a second or more, several frames (4 a second) even on a busy
    # machine, where a 15-row page left a few milliseconds and the check hung on the machine's speed
    rootfi.settings.delay_seconds = 0.1
    terminal = Warehouse(tmp_path / "terminal", sandbox)
    env = {**cli_env(sandbox, terminal.path, tmp_path, rootfi), "TERM": "xterm-256color", "COLUMNS": "140",
           "SOURCES__ROOTFI__PAGE_SIZE": "2"}  # fmt: skip
    code, output = in_a_terminal(command("load", "--no-transform", "--pipelines-dir", str(terminal.pipelines_dir)), env)
    assert code == 0, output
    assert ESCAPES.search(output), "a terminal gets a live display"
    plain = ESCAPES.sub("", output)
    assert "loading panora" in plain and "loading rootfi" in plain
    for alias in ("acme-eu", "acme-us", "globex-jp", "northwind-uk", "initech-us"):
        assert alias in plain
    # Rootfi says how many records a scan will see (`total_count`): the row shows it as the total
    kinds = {"payments": "invoice_payments", "invoices": "invoices", "tracking_categories": "tracking_categories"}
    shown = [[cell.strip() for cell in line.split("│")[1:-1]] for line in plain.splitlines() if "initech-us" in line]
    totals = {(cells[1], cells[5]) for cells in shown if len(cells) == 8 and cells[1] in kinds and cells[5] != "-"}
    assert totals and all(total == str(len(rootfi.store.all("initech-us", kinds[t]))) for t, total in totals)
    assert re.search(r"\d+ requests, \d+ retries, \d+ throttled", plain)
    assert "load ok" in plain  # the summary still ends the run

    piped = Warehouse(tmp_path / "piped", sandbox)
    env = cli_env(sandbox, piped.path, tmp_path, rootfi)
    result = subprocess.run(command("load", "--no-transform", "--pipelines-dir", str(piped.pipelines_dir)), env=env,
                            capture_output=True, text=True, timeout=240)  # fmt: skip
    assert result.returncode == 0, result.stderr
    everything = result.stdout + result.stderr
    assert "\x1b[" not in everything and "│" not in everything  # no escape codes, no live table
    assert re.search(r"^\d\d:\d\d:\d\d INFO    payments \[acme-eu\]: \d+ records", result.stderr, re.MULTILINE)


def test_a_push_shows_live_progress_on_a_terminal(tmp_path, sandbox, loaded_warehouses):
    warehouse = loaded_warehouses.copy_into(Warehouse(tmp_path, sandbox), "panora")
    invoices = warehouse.query(
        f"SELECT connection, invoice_id, currency FROM {M}.accounting__invoice_settlement "
        "WHERE status IN ('unpaid', 'partially_paid') AND open_minor >= 100 ORDER BY 1, 2 LIMIT 4"
    )
    path = Path(tmp_path / "payments.csv")
    rows = "".join(f"live-{i},{c},{inv},{cur},100,2026-11-20\n" for i, (c, inv, cur) in enumerate(invoices))
    path.write_text("external_id,connection,invoice_id,currency,total_amount,transaction_date\n" + rows)
    sandbox.settings.delay_seconds = 0.3
    env = {**cli_env(sandbox, warehouse.path, tmp_path), "TERM": "xterm-256color"}
    code, output = in_a_terminal(command("push", "--from-csv", str(path), "--database", str(warehouse.path),
                                         "--concurrency", "1"), env)  # fmt: skip
    assert code == 0, output
    plain = ESCAPES.sub("", output)
    assert ESCAPES.search(output) and "pushing" in plain
    assert re.search(r"panora\s+│?\s*4\s+│?\s*4", plain), plain[-3000:]
    assert "push: created 4" in plain
