"""Start-up time and peak memory of the client, measured black-box under a pseudo-terminal.

Three programs, each run ``--runs`` times (interleaved, after one unmeasured warm-up):

* ``bare``: a tiny Textual app showing one Static "hello" (same interpreter), the baseline;
* ``epay-tui`` with no server configured (the embedded sandbox backend starts after the
  first frame);
* ``epay-tui --server URL`` against ``epay-tui serve --demo-data --port P``, started once.

Each program runs on the slave side of a pty (80x24, TERM=xterm-256color, LANG=C.UTF-8).
The harness reads the master side and stamps the arrival of the byte chunk in which the
marker first shows, ANSI escape sequences stripped:

* first frame: the login title 学生缴费登录 (``hello`` for the bare app);
* captcha: a screen row with 64 consecutive ▀ (the 64x12-cell captcha).

VmHWM is read from /proc/PID/status at the first frame and again once the markers are
on screen; then ctrl+q (0x11) is sent and the exit is awaited
(killed after ``--timeout``). Anything written outside the alternate screen is reported:
the app must never print to stdout or stderr. Config, data, state and cache dirs (and
HOME) point into a temporary directory, so no user file is read or written.

What is imported and styled before the first frame is reported too, by package: one
more run of the bare app and of ``epay-tui --server URL`` under ``-X importtime`` with
stderr into a file (Textual draws on stderr too, so the import lines before the first
frame's marker in that one stream are the imports before it), and the style sheets a
headless run of the same client holds at its first frame, each parsed alone to time it.

    python benchmarks/startup.py [--runs 5] [--timeout 20] [--no-report]
"""

from __future__ import annotations

import argparse
import codecs
import contextlib
import fcntl
import os
import platform
import re
import select
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

TITLE = "学生缴费登录"
HALF_BLOCK = "▀"
CAPTCHA_ROW = re.compile(HALF_BLOCK + "{64}")
ROWS, COLS = 24, 80
CTRL_Q = b"\x11"
ALT_ON, ALT_OFF = "\x1b[?1049h", "\x1b[?1049l"

BARE_APP = """\
from textual.app import App
from textual.widgets import Static


class Hello(App):
    def compose(self):
        yield Static("hello")


Hello().run()
"""

# Cursor positioning (CUP/HVP) starts a new screen row; every other escape is dropped.
_CURSOR_MOVE = re.compile(r"\x1b\[[0-9;]*[Hf]")
_CSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]")
_OSC = re.compile(r"\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)")
_DCS = re.compile(r"\x1bP.*?\x1b\\", re.DOTALL)
_ESC = re.compile(r"\x1b[ -/]*[0-~]")


def strip_escapes(text: str, rows: bool = False) -> str:
    """``text`` without escape sequences; with ``rows``, cursor moves become newlines."""
    text = _OSC.sub("", _DCS.sub("", text))
    if rows:
        text = _CURSOR_MOVE.sub("\n", text)
    return _ESC.sub("", _CSI.sub("", text))


@dataclass
class Program:
    name: str
    argv: list[str]
    first_marker: str
    captcha: bool


@dataclass
class Run:
    first_frame: float | None = None
    hwm_first_kib: int | None = None
    captcha: float | None = None
    hwm_kib: int | None = None
    exit_after: float | None = None
    exit_code: int | None = None
    problems: list[str] = field(default_factory=list)


def vm_hwm_kib(pid: int) -> int | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    match = re.search(r"^VmHWM:\s+(\d+)\s+kB", status, re.MULTILINE)
    return int(match.group(1)) if match else None


def _controlling_tty() -> None:  # in the child, after setsid: the pty becomes its terminal
    with contextlib.suppress(OSError):
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def _spawn(argv: list[str], env: dict[str, str], slave: int, stderr) -> subprocess.Popen:
    """The program on the pty's slave side, in a session of its own whose terminal it
    is; the parent's copy of the slave is closed."""
    proc = subprocess.Popen(
        argv,
        stdin=slave,
        stdout=slave,
        stderr=stderr,
        env=env,
        start_new_session=True,
        preexec_fn=_controlling_tty,
        close_fds=True,
    )
    os.close(slave)
    return proc


def _read(master: int, timeout: float) -> bytes | None:
    """One chunk from the pty; b"" when nothing came in ``timeout``; None at EOF."""
    ready, _, _ = select.select([master], [], [], max(0.0, timeout))
    if not ready:
        return b""
    try:
        return os.read(master, 65536) or None
    except OSError:  # EIO: every slave fd closed, the child is gone
        return None


def stray_output(screen: str) -> str:
    """Visible text written outside the alternate screen (before entering or after leaving)."""
    start, end = screen.find(ALT_ON), screen.rfind(ALT_OFF)
    outside = screen if start < 0 else screen[:start]
    if end >= 0 and end > start:
        outside += screen[end + len(ALT_OFF) :]
    return strip_escapes(outside).strip()


class Screen:
    """The decoded output, escapes stripped incrementally (constant work per chunk).

    Only text before the last ESC of the stream is committed; the rest may be an escape
    sequence cut by the chunk boundary and is searched provisionally, so a marker is
    attributed to the chunk that completes it.
    """

    def __init__(self) -> None:
        self.raw: list[str] = []
        self._pending = ""
        self._visible = ""  # committed, escapes stripped
        self._row = ""  # committed text of the current screen row

    def feed(self, text: str) -> tuple[str, str]:
        """Add ``text``; return (visible tail, current rows) to search for markers."""
        self.raw.append(text)
        combined = self._pending + text
        cut = combined.rfind("\x1b")
        cut = len(combined) if cut < 0 else cut
        done, self._pending = combined[:cut], combined[cut:]
        visible_new = strip_escapes(done)
        rows_new = strip_escapes(done, rows=True)
        keep = len(visible_new) + len(TITLE)
        self._visible = (self._visible + visible_new)[-keep:]
        rows = self._row + rows_new
        self._row = rows[rows.rfind("\n") + 1 :]
        return (
            self._visible + strip_escapes(self._pending),
            rows + strip_escapes(self._pending, rows=True),
        )


def run_once(program: Program, env: dict[str, str], timeout: float, trace: bool) -> Run:
    run = Run()
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLS, 0, 0))
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    screen = Screen()
    start = time.perf_counter()
    proc = _spawn(program.argv, env, slave, slave)
    eof = False
    try:
        deadline = start + timeout
        while True:
            now = time.perf_counter()
            if now >= deadline:
                missing = "first frame" if run.first_frame is None else "captcha"
                run.problems.append(f"no {missing} within {timeout:g} s")
                break
            chunk = _read(master, deadline - now)
            arrived = time.perf_counter() - start
            if chunk is None:
                eof = True
                run.problems.append(f"exited before the markers (code {proc.wait()})")
                break
            if not chunk:
                continue
            visible, rows = screen.feed(decoder.decode(chunk))
            if trace:
                print(
                    f"  {arrived * 1000:8.1f} ms {len(chunk):5d} B  title={TITLE in visible}"
                    f" ▀={visible.count(HALF_BLOCK)}",
                    file=sys.stderr,
                )
            if run.first_frame is None and program.first_marker in visible:
                run.first_frame = arrived
                run.hwm_first_kib = vm_hwm_kib(proc.pid)
            if run.first_frame is not None and program.captcha and CAPTCHA_ROW.search(rows):
                run.captcha = arrived
            if run.first_frame is not None and (run.captcha is not None or not program.captcha):
                break
        run.hwm_kib = vm_hwm_kib(proc.pid)
        if not eof:
            quit_at = time.perf_counter()
            with contextlib.suppress(OSError):
                os.write(master, CTRL_Q)
            deadline = quit_at + timeout
            while time.perf_counter() < deadline:
                if run.exit_after is None and proc.poll() is not None:
                    run.exit_after = time.perf_counter() - quit_at
                if run.exit_after is not None and eof:
                    break
                chunk = _read(master, 0.005)  # keep draining: a full pty blocks the app
                if chunk is None:
                    eof = True
                elif chunk:
                    screen.feed(decoder.decode(chunk))
            if proc.poll() is None:
                run.problems.append(f"still running {timeout:g} s after ctrl+q: killed")
    finally:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)
        os.close(master)
    screen.feed(decoder.decode(b"", final=True))
    run.exit_code = proc.returncode
    if run.exit_code not in (0, None) and run.exit_after is not None:
        run.problems.append(f"exit code {run.exit_code}")
    stray = stray_output("".join(screen.raw))
    if stray:
        run.problems.append(f"wrote outside the alternate screen: {stray[:120]!r}")
    return run


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_backend(cli: str, env: dict[str, str], log: Path, timeout: float):
    """``epay-tui serve --demo-data --port P``; returns (process, URL) once /healthz answers."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [cli, "serve", "--demo-data", "--port", str(port)],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=1) as response:
                if response.status == 200:
                    return proc, url
        except OSError:
            time.sleep(0.05)
    stop(proc, timeout)
    raise SystemExit(f"the backend did not start; its output:\n{log.read_text()}")


def stop(proc: subprocess.Popen, timeout: float) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def isolated_env(root: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("EPAY_", "TEXTUAL", "XDG_", "LC_"))
        and k not in ("COLUMNS", "LINES", "LANGUAGE")
    }
    for name in ("CONFIG", "DATA", "STATE", "CACHE"):
        folder = root / name.lower()
        folder.mkdir(parents=True)
        env[f"XDG_{name}_HOME"] = str(folder)
    env["HOME"] = str(root)
    env.pop("PYTHON_KEYRING_BACKEND", None)  # the app's own keyring choice is start-up too
    env.update(TERM="xterm-256color", LANG="C.UTF-8")
    return env


def ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.0f}"


def summary(values: list[float | None]) -> tuple[float | None, float | None]:
    got = [v for v in values if v is not None]
    return (statistics.median(got), min(got)) if got else (None, None)


# ------------------------------------------------------------------------- the report
_IMPORT_LINE = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)")


def imports_by_package(text: str) -> dict[str, tuple[int, float]]:
    """``-X importtime`` lines -> {top-level package: (modules, self time in ms)}."""
    found: dict[str, tuple[int, float]] = {}
    for line in text.splitlines():
        match = _IMPORT_LINE.match(line)
        if match:
            package = match.group(4).split(".")[0]
            count, spent = found.get(package, (0, 0.0))
            found[package] = (count + 1, spent + int(match.group(1)) / 1000)
    return found


def imports_before_first_frame(
    argv: list[str], marker: str, env: dict[str, str], root: Path, timeout: float
) -> str:
    """The ``-X importtime`` lines a program writes before the first frame's marker: its
    stderr (where Textual draws too) into a file, read until the marker shows."""
    out = root / "imports.txt"
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLS, 0, 0))
    with out.open("wb") as err:
        proc = _spawn(argv, env, slave, err)
    deadline = time.monotonic() + timeout
    text = ""
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            _read(master, 0.02)  # drain the pty
            text = out.read_text(errors="replace")
            if marker in text:
                break
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        os.close(master)
    cut = text.find(marker)
    return text[: cut if cut >= 0 else len(text)]


def import_report(bare: str, client: str, top: int = 14) -> list[str]:
    """The client's imports before its first frame by package, beside the bare app's."""
    ours, base = imports_by_package(client), imports_by_package(bare)
    lines = [
        "| package | modules | self time, ms | in the bare app | modules | ms |",
        "|---|---:|---:|---|---:|---:|",
    ]
    ranked = sorted(ours.items(), key=lambda kv: -kv[1][1])
    for package, (count, spent) in ranked[:top]:
        b_count, b_spent = base.get(package, (0, 0.0))
        also = "yes" if package in base else "no"
        lines.append(f"| {package} | {count} | {spent:.1f} | {also} | {b_count} | {b_spent:.1f} |")
    rest = ranked[top:]
    lines.append(
        f"| {len(rest)} others | {sum(c for _, (c, _) in rest)} | "
        f"{sum(t for _, (_, t) in rest):.1f} | | | |"
    )
    total = (sum(c for c, _ in ours.values()), sum(t for _, t in ours.values()))
    bare_total = (sum(c for c, _ in base.values()), sum(t for _, t in base.values()))
    lines.append(
        f"| **all** | {total[0]} | {total[1]:.1f} | | {bare_total[0]} | {bare_total[1]:.1f} |"
    )
    return lines


def styles_at_first_frame(url: str) -> list[tuple[str, int, float]]:
    """The style sheets the client holds at its first frame (a headless run to the login
    screen): (where from, rules, ms to parse it alone, median of 5)."""
    import asyncio

    from textual.css.stylesheet import Stylesheet

    from epay_tui.app import make_app
    from epay_tui.config import load_settings

    async def first_frame() -> list[tuple[str, int, float]]:
        app = make_app(load_settings({"server": url}, env={}, config_path=None))
        async with app.run_test(size=(COLS, ROWS)) as pilot:
            await pilot.pause()
            variables = app.get_css_variables()
            sources = list(app.stylesheet.source.items())
        timed = []
        for (path, name), source in sources:
            spent, rules = [], 0
            for _ in range(5):
                sheet = Stylesheet(variables=variables)
                began = time.perf_counter()
                sheet.add_source(
                    source.content,
                    read_from=(path, name),
                    is_default_css=source.is_defaults,
                    tie_breaker=source.tie_breaker,
                    scope=source.scope,
                )
                sheet.parse()
                spent.append((time.perf_counter() - began) * 1000)
                rules = len(sheet.rules)
            where = name or Path(path).name
            if not name and "site-packages" not in path:
                where = Path(path).name
            timed.append((where, rules, statistics.median(spent)))
        return timed

    return asyncio.run(first_frame())


def style_report(styles: list[tuple[str, int, float]]) -> list[str]:
    lines = ["| style sheet | rules | ms to parse |", "|---|---:|---:|"]
    for where, rules, spent in sorted(styles, key=lambda s: -s[2]):
        lines.append(f"| {where} | {rules} | {spent:.2f} |")
    lines.append(
        f"| **all {len(styles)}** | {sum(r for _, r, _ in styles)} | "
        f"{sum(t for _, _, t in styles):.1f} |"
    )
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="measured runs per program")
    parser.add_argument("--timeout", type=float, default=20.0, help="bound on every wait, s")
    parser.add_argument("--warmup", type=int, default=1, help="unmeasured runs per program")
    parser.add_argument("--trace", action="store_true", help="log every pty chunk to stderr")
    parser.add_argument(
        "--no-report", action="store_true", help="skip the imports and styles before the frame"
    )
    args = parser.parse_args()
    if args.runs < 1 or args.warmup < 0 or args.timeout <= 0:
        parser.error("--runs must be >= 1, --warmup >= 0, --timeout > 0")

    bindir = Path(sys.executable).parent
    cli = shutil.which("epay-tui", path=str(bindir)) or shutil.which("epay-tui")
    if cli is None:
        raise SystemExit("epay-tui is not installed next to this interpreter")

    with tempfile.TemporaryDirectory(prefix="epay-startup-") as tmp:
        root = Path(tmp)
        env = isolated_env(root / "home")  # the same isolated dirs for every program
        backend, url = start_backend(cli, env, root / "backend.log", args.timeout)
        try:
            programs = [
                Program("bare Textual app", [sys.executable, "-c", BARE_APP], "hello", False),
                Program("epay-tui (embedded sandbox)", [cli], TITLE, True),
                Program("epay-tui --server URL", [cli, "--server", url], TITLE, True),
            ]
            results: dict[str, list[Run]] = {p.name: [] for p in programs}
            for i in range(args.warmup + args.runs):
                for program in programs:  # interleaved, so drift hits every program alike
                    if args.trace:
                        print(f"{program.name}, run {i + 1}:", file=sys.stderr)
                    run = run_once(program, env, args.timeout, args.trace)
                    if i >= args.warmup:
                        results[program.name].append(run)
                    for problem in run.problems:
                        print(f"! {program.name}, run {i + 1}: {problem}", file=sys.stderr)
            report: list[str] = []
            if not args.no_report:
                traced = [
                    imports_before_first_frame(argv, marker, env, root, args.timeout)
                    for argv, marker in (
                        ([sys.executable, "-X", "importtime", "-c", BARE_APP], "hello"),
                        (
                            [sys.executable, "-X", "importtime", "-m", "epay_tui", "--server", url],
                            TITLE,
                        ),
                    )
                ]
                report += ["Imported before the first frame (`-X importtime`, one run each):", ""]
                report += import_report(*traced)
                report += ["", "Styled at the first frame (headless, each sheet parsed alone):", ""]
                report += style_report(styles_at_first_frame(url))
        finally:
            stop(backend, args.timeout)

    print(
        f"Machine: {platform.platform()}, {platform.machine()}, {os.cpu_count()} cores "
        f"({len(os.sched_getaffinity(0))} usable), Python {platform.python_version()} "
        f"({platform.python_implementation()})"
    )
    print(
        f"{args.runs} runs each after {args.warmup} warm-up, pty {COLS}x{ROWS}; times from "
        "process start in ms, median (min); ratio = median / bare app's first frame"
    )
    print()
    bare_first, _ = summary([r.first_frame for r in results[programs[0].name]])
    print(
        "| program | first frame | ratio | captcha shown | ratio | "
        "memory at the first frame | ratio | peak memory (VmHWM) | exit after ctrl+q | ok runs |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    bare_hwm, _ = summary([r.hwm_first_kib for r in results[programs[0].name]])
    for program in programs:
        runs = results[program.name]
        cells = [program.name]
        for attr in ("first_frame", "captcha"):
            med, low = summary([getattr(r, attr) for r in runs])
            if attr == "captcha" and not program.captcha:
                cells += ["n/a", ""]
                continue
            cells.append(f"{ms(med)} ({ms(low)})")
            ratio = med / bare_first if med is not None and bare_first else None
            cells.append("-" if ratio is None else f"{ratio:.2f}x")
        first_med, first_low = summary([r.hwm_first_kib for r in runs])
        cells.append(
            "-" if first_med is None else f"{first_med / 1024:.1f} MiB ({first_low / 1024:.1f})"
        )
        cells.append(f"{first_med / bare_hwm:.2f}x" if first_med and bare_hwm else "-")
        hwm_med, hwm_low = summary([r.hwm_kib for r in runs])
        cells.append("-" if hwm_med is None else f"{hwm_med / 1024:.1f} MiB ({hwm_low / 1024:.1f})")
        exit_med, _ = summary([r.exit_after for r in runs])
        cells.append(ms(exit_med))
        ok = sum(1 for r in runs if not r.problems)
        cells.append(f"{ok}/{len(runs)}")
        print("| " + " | ".join(cells) + " |")

    if report:
        print()
        print("\n".join(report))
    problems = [(name, p) for name, runs in results.items() for r in runs for p in r.problems]
    if problems:
        print()
        print("Problems:")
        for name, problem in problems:
            print(f"- {name}: {problem}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
