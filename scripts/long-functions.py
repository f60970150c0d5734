#!/usr/bin/env python3
"""Functions of a Rust source tree longer than N lines (default 80), longest
first: the ones that likely mix deciding and doing. Test modules (from
`#[cfg(test)]` on) and tests.rs files are skipped. Exits 0; a report, not a
gate.

Usage: scripts/long-functions.py [DIR=src] [N=80]"""
import pathlib, re, signal, sys
signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # `| head` ends quietly
limit = int(sys.argv[2]) if len(sys.argv) > 2 else 80
root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "src")
found = []
pat = re.compile(r'^(\s*)(pub(\([^)]*\))?\s+)?(const\s+)?(async\s+)?(unsafe\s+)?fn\s+(\w+)')
for f in sorted(root.rglob("*.rs")):
    if f.name == "tests.rs": continue
    lines = f.read_text().splitlines()
    for i, l in enumerate(lines):
        if l.strip() == "#[cfg(test)]":
            break
        m = pat.match(l)
        if not m: continue
        ind = m.group(1)
        for j in range(i, len(lines)):
            if lines[j] == ind + "}" or (j == i and l.rstrip().endswith(";")):
                break
        n = j - i + 1
        if n > limit:
            found.append((n, f"{f}:{i+1} {m.group(7)}"))
for n, where in sorted(found, reverse=True):
    print(f"{n:4d} {where}")
