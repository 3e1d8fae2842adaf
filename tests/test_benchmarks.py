"""The load benchmark's smoke run, so the script the README's figures come from keeps
working: a small fleet and two levels against a backend process, no call failing, the
invariants holding in the database afterwards. Timings are printed, never asserted."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def benchmark(script: str, *flags: str, cwd: Path) -> str:
    """Run ``benchmarks/<script>`` with ``flags``; its report, once it ended well."""
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), *flags],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return done.stdout


def test_load_benchmark_quick_run_has_no_errors_and_the_invariants_hold(tmp_path):
    report = benchmark("load.py", "--quick", cwd=tmp_path)
    assert "| payers | req/s |" in report  # the table the README quotes
    assert "\nerrors: 0\n" in report
    assert "\ninvariants: hold" in report
    assert "0 unfinished" in report


def test_the_startup_benchmark_reports_what_comes_before_the_first_frame(tmp_path):
    """One run of each program: no problem reported, the first frame found, and the
    imports and style sheets before it listed (our own package among the imports)."""
    report = benchmark("startup.py", "--runs", "1", "--warmup", "0", cwd=tmp_path)
    assert "| epay-tui --server URL |" in report and "Problems:" not in report
    imports = report[report.index("Imported before the first frame") :]
    assert "| epay_tui |" in imports and "| textual |" in imports
    assert "| app.tcss |" in report[report.index("Styled at the first frame") :]
