#!/usr/bin/env python3
"""poke.py PID OLD NEW: in process PID's shared mappings, replace the one occurrence of the
bytes OLD (the ring's magic and layout version, hex) by NEW (hex).  Run as root; the
mapping is the server's shared memory, so every backend sees the change.  Exits 1 unless
exactly one occurrence was found."""
import sys

pid, old, new = sys.argv[1], bytes.fromhex(sys.argv[2]), bytes.fromhex(sys.argv[3])
assert len(old) == len(new)
hits = []
with open(f"/proc/{pid}/maps") as maps, open(f"/proc/{pid}/mem", "rb+", buffering=0) as mem:
    for line in maps:
        fields = line.split()
        lo, hi = (int(x, 16) for x in fields[0].split("-"))
        # Shared, writable mappings only (the main segment and the SysV header).
        if fields[1][3] != "s" or fields[1][1] != "w":
            continue
        step = 16 << 20
        for start in range(lo, hi, step):
            mem.seek(start)
            try:
                chunk = mem.read(min(step + len(old), hi - start))
            except OSError:
                continue
            i = chunk.find(old)
            while i >= 0:
                if start + i not in hits:
                    hits.append(start + i)
                i = chunk.find(old, i + 1)
    if len(hits) != 1:
        print(f"found {len(hits)} occurrences, expected 1")
        sys.exit(1)
    mem.seek(hits[0])
    mem.write(new)
print(f"replaced at 0x{hits[0]:x}")
