#!/usr/bin/env python3
"""Import graph of src/: which top-level modules each one uses (crate::x, shoal::x), its cycles, and imports that climb the layer order below. Usage: scripts/import-graph.py [src] [-v]"""
import os, re, sys, collections
root = sys.argv[1] if len(sys.argv) > 1 else 'src'
edges = collections.defaultdict(lambda: collections.defaultdict(list))
pat = re.compile(r'(?:crate|shoal)::([a-z_]+)')
grp = re.compile(r'(?:crate|shoal)::\{([^}]*)\}', re.S)
for dp, dn, fn in os.walk(root):
    for f in fn:
        if not f.endswith('.rs'): continue
        p = os.path.join(dp, f)
        rel = os.path.relpath(p, root)
        top = rel.split('/')[0]
        if top.endswith('.rs'): top = top[:-3]
        if top in ('main', 'lib'): continue
        src = open(p).read()
        # strip comments
        src = re.sub(r'//[^\n]*', '', src)
        names = set(pat.findall(src))
        for g in grp.findall(src):
            for part in g.split(','):
                part = part.strip()
                if part: names.add(re.split(r'[:\s{]', part)[0])
        for n in names:
            if n != top and n not in ('self',):
                edges[top][n].append(rel)
mods = sorted(set(edges) | {n for v in edges.values() for n in v})
for m in mods:
    print(f"{m:14} -> {', '.join(sorted(edges[m]))}")
# cycles via Tarjan
idx = {}; low = {}; st = []; on = set(); sccs = []; c = [0]
sys.setrecursionlimit(10000)
def sc(v):
    idx[v] = low[v] = c[0]; c[0] += 1; st.append(v); on.add(v)
    for w in edges[v]:
        if w not in idx: sc(w); low[v] = min(low[v], low[w])
        elif w in on: low[v] = min(low[v], idx[w])
    if low[v] == idx[v]:
        comp = []
        while True:
            w = st.pop(); on.discard(w); comp.append(w)
            if w == v: break
        if len(comp) > 1: sccs.append(comp)
for m in mods:
    if m not in idx: sc(m)
print("cycles:", sccs if sccs else "none")
if '-v' in sys.argv:
    for m in mods:
        for n, fs in sorted(edges[m].items()):
            print(f"  {m} -> {n}: {sorted(set(fs))}")
# Layer check: each module may import only modules listed before it.
ORDER = ['model', 'docker_cli', 'source', 'image', 'secrets', 'compose', 'convert',
         'diff', 'policy', 'engine', 'pipeline', 'render', 'apply', 'agent', 'cli']
bad = [(m, n) for m in edges for n in edges[m]
       if m in ORDER and n in ORDER and ORDER.index(n) >= ORDER.index(m)]
unknown = [m for m in mods if m not in ORDER]
print("layers:", " < ".join(ORDER))
print("upward imports:", bad if bad else "none", "| modules outside the order:", unknown or "none")
sys.exit(1 if (sccs or bad or unknown) else 0)
