"""A pytest plugin: one line per skip reason, with its count, instead of one line per skipped test.

Without a GPU every CuPy case is skipped for the same reason; listing them one
by one (``-rs``) buries the lines that matter.
"""

from __future__ import annotations

from collections import Counter


def skip_reasons(reports) -> Counter:
    """Count skipped test reports by their reason."""
    reasons: Counter = Counter()
    for report in reports:
        longrepr = report.longrepr
        reason = longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)
        reasons[reason.removeprefix("Skipped: ")] += 1
    return reasons


def pytest_terminal_summary(terminalreporter) -> None:
    reasons = skip_reasons(terminalreporter.stats.get("skipped", []))
    if not reasons:
        return
    terminalreporter.section("skipped, by reason", sep="-")
    for reason, count in sorted(reasons.items(), key=lambda item: (-item[1], item[0])):
        terminalreporter.line(f"{count:5d}  {reason}")
