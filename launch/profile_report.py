#!/usr/bin/env python3
"""Where the kernels' instructions and cache misses go, from cachegrind runs of `flashdist bench`.

usage: python3 launch/profile_report.py FORWARD.out FORWARD_BACKWARD.out [--title TEXT] [--functions N]

FORWARD.out is cachegrind's output for `bench` without --backward, FORWARD_BACKWARD.out for the
same command with it (launch/profile.sh makes both); the backward is their difference, so the
input drawing and start-up cancel out. Prints one markdown table per phase: instructions (Ir),
L1 data misses and last-level misses (cachegrind's LL, which profile.sh sets to the size of this
CPU's L2) of the kernels, split into the parts the FlashAttention papers talk about.

The kernels are compiled with everything inlined into a few functions, so the split is by source
line, not by symbol: cachegrind attributes each instruction to the line it came from, and each
line belongs to the `func` of its source file that encloses it (exp is its own function in
VectorMath.swift even when inlined into the softmax pass); every line of BlockProducts.swift counts
as products and of Packing.swift as packing. Code outside the kernel modules (the seeded inputs,
libm, the runtime) is left out and its total reported below the tables.
"""
import argparse, collections, os, re, sys

# Part → (source functions, kernel files all of whose lines belong to it). Lines of other functions
# of the kernel files count as "other"; the report's list of source functions shows what they are.
PARTS = [
    ("products (S = Q·Kᵀ, O += P·V, dP, dV, dK, dQ)",
     {"multiply", "panels", "multiplyPanels", "accumulateQueryGradient"}, {"BlockProducts.swift"}),
    ("exp", {"exp"}, set()),
    ("max / sum pass (online softmax, rescale, masks; backward: P, dS, D)",
     {"mergePanel", "larger", "scaleRow", "maskScores", "recompute", "rowDotProducts", "finish", "addBlock"}, set()),
    ("packing (Qᵀ, K, V; backward: Q, dO rows, Kᵀ, Vᵀ, K)",
     {"packRowBlock", "packRowStats", "packKeyBlock", "begin"}, {"Packing.swift"}),
]
OTHER = "tile loops, stores, and code inlined into them without a source line"
KERNEL_FILES = re.compile(r"/Sources/(FlashKernels|FlashKernelsAVX512|FlashAttentionCore)/")
KERNEL_SYMBOL = re.compile(r"FlashKernels(AVX2|AVX512)")
LENGTH = re.compile(r"(\d+)")
FUNC = re.compile(r"\bfunc\s+([A-Za-z_]\w*)|^\s*(?:(?:package|public|private|fileprivate|static)\s+)*(init)\s*[(<]")


def enclosing_functions(path, cache={}):
    """For each line of a Swift file, the name of the func (or init) declared last at or above it."""
    if path not in cache:
        names, current = [None], None
        try:
            with open(path, encoding="utf-8") as f:
                for line in f:
                    m = FUNC.search(line)
                    if m:
                        current = m.group(1) or m.group(2)
                    names.append(current)
        except OSError:
            names = []
        cache[path] = names
    return cache[path]


def read_cachegrind(path):
    """{(file, symbol, line): [counts]} and the event names."""
    events, counts = None, collections.defaultdict(lambda: None)
    file = symbol = None
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            if line.startswith("events:"):
                events = line.split()[1:]
            elif line.startswith("fl="):
                file = line[3:].strip()
            elif line.startswith("fn="):
                symbol = line[3:].strip()
            elif line[:1].isdigit():
                fields = line.split()
                values = [int(x) for x in fields[1:]] + [0] * (len(events) - len(fields) + 1)
                key = (file, symbol, int(fields[0]))
                old = counts[key]
                counts[key] = values if old is None else [a + b for a, b in zip(old, values)]
    if events is None:
        sys.exit(f"profile_report: {path}: not a cachegrind output file")
    return events, counts


def symbol_function(symbol):
    """The function a Swift symbol names: the first length-prefixed identifier after the module
    that is not a type (a type's name is followed by V, C or O), e.g. recompute in
    $s16FlashKernelsAVX213BackwardTilesV9recompute…"""
    m = re.match(r"\$s(\d+)", symbol)
    if not m:
        return None
    position = m.end() + int(m.group(1))  # past the module's name
    while (m := LENGTH.match(symbol, position)):
        name, position = symbol[m.end():m.end() + int(m.group(1))], m.end() + int(m.group(1))
        if position < len(symbol) and symbol[position] in "VCO":
            position += 1
            continue
        return name
    return None


def function_of(file, symbol, line):
    """(the source function a line belongs to, whether it is kernel code)."""
    in_kernel_file = bool(KERNEL_FILES.search(file))
    kernel = bool(KERNEL_SYMBOL.search(symbol)) or (in_kernel_file and "FlashAttentionCore" not in file)
    names = enclosing_functions(file) if in_kernel_file else []
    name = names[line] if 0 < line < len(names) else None
    # No line (0), compiler-generated or inlined library code: the function its symbol names.
    return (name or symbol_function(symbol) or "?"), kernel


def part_of(function, file):
    name = os.path.basename(file)
    return next((part for part, functions, files in PARTS if function in functions or name in files), OTHER)


def totals(path):
    """Per part: [Ir, D1 misses, LL misses], per source function the same, and the rest's Ir."""
    events, counts = read_cachegrind(path)
    index = {e: i for i, e in enumerate(events)}

    def pick(values, *names):
        return sum(values[index[n]] for n in names if n in index)

    parts, functions, outside = collections.defaultdict(lambda: [0, 0, 0]), collections.defaultdict(lambda: [0, 0, 0]), 0
    for (file, symbol, line), values in counts.items():
        cost = [pick(values, "Ir"), pick(values, "D1mr", "D1mw"), pick(values, "DLmr", "DLmw")]
        function, kernel = function_of(file, symbol, line)
        if not kernel:
            outside += cost[0]
            continue
        for table, key in ((parts, part_of(function, file)), (functions, function)):
            table[key] = [a + b for a, b in zip(table[key], cost)]
    return parts, functions, outside


def difference(a, b):
    return {k: [x - y for x, y in zip(a.get(k, [0, 0, 0]), b.get(k, [0, 0, 0]))] for k in set(a) | set(b)}


def table(title, parts, functions, top):
    total = [sum(v[i] for v in parts.values()) for i in range(3)]
    share = lambda value, whole: f"{100 * value / whole:.1f} %" if whole else "–"
    lines = [f"**{title}**", "",
             "| part | instructions | share | L1d misses | share | LL (L2-sized) misses | share |",
             "|---|---|---|---|---|---|---|"]
    for part in [p for p, _, _ in PARTS] + [OTHER]:
        ir, d1, ll = parts.get(part, [0, 0, 0])
        lines.append(f"| {part} | {ir:,} | {share(ir, total[0])} | {d1:,} | {share(d1, total[1])} | {ll:,} | {share(ll, total[2])} |")
    lines.append(f"| total | {total[0]:,} | | {total[1]:,} | | {total[2]:,} | |")
    if top:
        lines += ["", "| source function | instructions | L1d misses | LL misses |", "|---|---|---|---|"]
        for name, (ir, d1, ll) in sorted(functions.items(), key=lambda kv: -kv[1][0])[:top]:
            lines.append(f"| {name} | {share(ir, total[0])} | {share(d1, total[1])} | {share(ll, total[2])} |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("forward")
    parser.add_argument("forward_backward")
    parser.add_argument("--title", default="", help="prefix of each table's title (CPU, ISA, shape)")
    parser.add_argument("--functions", type=int, default=0, help="also list the N costliest source functions")
    args = parser.parse_args()
    fwd_parts, fwd_functions, fwd_outside = totals(args.forward)
    all_parts, all_functions, all_outside = totals(args.forward_backward)
    prefix = f"{args.title}: " if args.title else ""
    print(table(prefix + "forward", fwd_parts, fwd_functions, args.functions))
    print()
    print(table(prefix + "backward", difference(all_parts, fwd_parts), difference(all_functions, fwd_functions), args.functions))
    print(f"\nOutside the kernels (inputs, start-up, runtime): {fwd_outside:,} instructions in the forward run, "
          f"{all_outside:,} in the forward + backward run.")


if __name__ == "__main__":
    main()
