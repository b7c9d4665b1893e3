#!/usr/bin/env python3
"""Checks the all-or-nothing rule on an output directory, as any reader can: the manifest
DIR/flashdist-manifest.json names every file of the current set with its size and zlib CRC-32,
each file DIR/NAME matches, and no other output (.npy, .safetensors) is visible beside them.
With REF, every file must also equal REF's file of that name byte for byte.

usage: check_set.py DIR [REF]
Prints the set's file names (sorted, space-separated), or "no set" when DIR has no manifest and
no outputs; exits 1 with the reason when DIR holds an incomplete set or a mix.
"""
import json, os, sys, zlib

def current_set(d):
    manifest = os.path.join(d, "flashdist-manifest.json")
    visible = sorted(n for n in os.listdir(d) if n.endswith((".npy", ".safetensors")) and os.path.isfile(os.path.join(d, n)))
    if not os.path.exists(manifest):
        if visible:
            raise SystemExit(f"outputs without a manifest: {visible}")
        return []
    names = []
    for entry in json.load(open(manifest))["files"]:
        data = open(os.path.join(d, entry["name"]), "rb").read()
        if len(data) != entry["bytes"] or zlib.crc32(data) != entry["crc32"]:
            raise SystemExit(f"{entry['name']} differs from the manifest")
        names.append(entry["name"])
    stray = [n for n in visible if n not in names]
    if stray:
        raise SystemExit(f"outputs of no set: {stray}")
    return sorted(names)

names = current_set(sys.argv[1])
if len(sys.argv) > 2:
    for n in names:
        if open(os.path.join(sys.argv[1], n), "rb").read() != open(os.path.join(sys.argv[2], n), "rb").read():
            raise SystemExit(f"{n} differs from {sys.argv[2]}")
print(" ".join(names) if names else "no set")
