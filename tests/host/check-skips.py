#!/usr/bin/env python3
"""Every skipped test in the runners' result files, checked against tests/known-skips.txt.

    check-skips.py [--list FILE] RESULT_FILE_OR_DIRECTORY...

Reads xunit's TRX files (a skip is a UnitTestResult with outcome NotExecuted, its reason in
ErrorInfo/Message) and pytest's JUnit XML (a testcase with <skipped message=...>). A skip is
known when every line of its reason contains one line of the list. With CI=true or
COMPUTE_AGENT_STRICT_SKIPS=1 an unknown skip is a failure (exit 1): a host that cannot run
QEMU, D-Bus or the install test must not end green. Otherwise the unknown skips are printed
as a warning and the exit status is 0.
"""
import os
import sys
import xml.etree.ElementTree as ET
from pathlib import Path


def local(tag):
    return tag.rsplit("}", 1)[-1]


def trx_skips(root):
    for result in root.iter():
        if local(result.tag) != "UnitTestResult" or result.get("outcome") != "NotExecuted":
            continue
        messages = [e.text or "" for e in result.iter() if local(e.tag) == "Message"]
        yield result.get("testName", "?"), "\n".join(messages)


def junit_skips(root):
    for case in root.iter():
        if local(case.tag) != "testcase":
            continue
        for skipped in case:
            if local(skipped.tag) == "skipped":
                name = ".".join(p for p in (case.get("classname"), case.get("name")) if p)
                yield name or "?", skipped.get("message") or skipped.text or ""


def skips(path):
    root = ET.parse(path).getroot()
    return trx_skips(root) if local(root.tag) == "TestRun" else junit_skips(root)


def known(reason, entries):
    lines = [line.strip() for line in reason.splitlines() if line.strip()]
    return bool(lines) and all(any(entry in line for entry in entries) for line in lines)


def main(argv):
    repo = Path(__file__).resolve().parents[2]
    list_path = repo / "tests" / "known-skips.txt"
    if len(argv) > 1 and argv[0] == "--list":
        list_path, argv = Path(argv[1]), argv[2:]
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    entries = [
        line.strip()
        for line in list_path.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    files = []
    for arg in map(Path, argv):
        files += sorted(p for p in arg.iterdir() if p.suffix in (".trx", ".xml")) if arg.is_dir() else [arg]

    unknown = []
    for path in files:
        for name, reason in skips(path):
            flat = " / ".join(line.strip() for line in reason.splitlines() if line.strip()) or "(no reason given)"
            if known(reason, entries):
                print(f"known skip: {name}: {flat}")
            else:
                unknown.append(f"  {name}: {flat}")

    strict = os.environ.get("CI", "").lower() in ("true", "1") or os.environ.get("COMPUTE_AGENT_STRICT_SKIPS") == "1"
    if not unknown:
        return 0
    heading = (
        f"{len(unknown)} skipped test(s) whose reason is not a known limit of these machines ({list_path}):"
    )
    if strict:
        print(f"FAIL: {heading}", file=sys.stderr)
        print("\n".join(unknown), file=sys.stderr)
        print("CI=true (or COMPUTE_AGENT_STRICT_SKIPS=1) fails on them: fix the host or the test; "
              "list a reason only when no machine of this kind can run the test.", file=sys.stderr)
        return 1
    print(f"warning: {heading}", file=sys.stderr)
    print("\n".join(unknown), file=sys.stderr)
    print("(CI=true or COMPUTE_AGENT_STRICT_SKIPS=1 would fail on them)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
