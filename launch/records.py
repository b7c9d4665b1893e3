"""Reading the files `flashdist bench --record FILE` appends to (.csv or .jsonl), for the sweeps
(which configurations are recorded already) and the plots.

What a long history of runs leaves behind is read with care: an empty file, a last line cut short
by an interrupted run, columns this version does not know, rows from other flashdist versions.
Each problem is one message naming the file; every readable row is still returned.
"""
import csv, io, json, os

# The columns of `flashdist bench --record`, in order (BenchReport.columns in the Swift source;
# Tests/scaling checks that the two agree).
COLUMNS = [
    "date", "version", "impl", "experiment", "cpu", "cores", "target_cpu", "hosts", "hostnames",
    "ranks", "threads", "partition", "batch", "heads", "kv_heads", "seqlen_q", "seqlen_k", "head_dim",
    "head_dim_v", "causal", "window_left", "window_right", "warmup", "repeats",
    "fwd_s", "fwd_gflops", "fwd_peak_fraction", "bwd_s", "bwd_gflops", "bwd_peak_fraction",
    "peak_gflops", "peak_rss_bytes", "tensor_bytes", "scores_bytes", "comm_bytes", "comm_s",
    "rank_fwd_s", "rank_bwd_s", "rank_rss_bytes", "rank_sent_bytes", "rank_comm_s",
]
INTEGERS = {"cores", "hosts", "ranks", "threads", "batch", "heads", "kv_heads", "seqlen_q", "seqlen_k",
            "head_dim", "head_dim_v", "window_left", "window_right", "warmup", "repeats", "peak_rss_bytes",
            "tensor_bytes", "scores_bytes", "comm_bytes"}
REALS = {"fwd_s", "fwd_gflops", "fwd_peak_fraction", "bwd_s", "bwd_gflops", "bwd_peak_fraction",
         "peak_gflops", "comm_s"}
LISTS = {"hostnames", "rank_fwd_s", "rank_bwd_s", "rank_rss_bytes", "rank_sent_bytes", "rank_comm_s"}


def read(path):
    """(rows, messages): the rows of one record file as dicts of typed values (None where a
    cell is empty), and one message per problem found."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        return [], [f"{path}: cannot be read ({e.strerror})"]
    if not text.strip():
        return [], [f"{path}: empty, no rows to plot"]
    rows, messages = (_read_jsonl if path.endswith(".jsonl") else _read_csv)(path, text)
    unknown = sorted({key for row in rows for key in row} - set(COLUMNS))
    if unknown:
        messages.append(f"{path}: unknown column{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} ignored")
    rows = [{key: value for key, value in row.items() if key in COLUMNS} for row in rows]
    return rows, messages


def read_all(paths):
    """(rows, messages) of several files. Rows of different flashdist versions are not compared:
    only the newest version's rows are kept, and a message says how many were left out."""
    rows, messages = [], []
    for path in paths:
        more, problems = read(path)
        rows += more
        messages += problems
    ours = [row for row in rows if row.get("impl") == "flashdist"]
    versions = sorted({row.get("version") or "?" for row in ours}, key=_version_key)
    if len(versions) > 1:
        newest = versions[-1]
        counts = ", ".join(f"{v} ({sum((r.get('version') or '?') == v for r in ours)} rows)" for v in versions)
        messages.append(f"records of several flashdist versions: {counts}; plotting {newest} only")
        rows = [row for row in rows if row.get("impl") != "flashdist" or (row.get("version") or "?") == newest]
    return rows, messages


def append(path, row):
    """Appends one row (a dict of the COLUMNS) as flashdist itself would, flushed at once."""
    if path.endswith(".jsonl"):
        line = json.dumps({key: row.get(key) for key in COLUMNS}) + "\n"
    else:
        cells = [";".join(map(str, v)) if isinstance(v, list) else "" if v is None else
                 str(v).lower() if isinstance(v, bool) else str(v) for v in (row.get(key) for key in COLUMNS)]
        new = not os.path.exists(path) or os.path.getsize(path) == 0
        line = (",".join(COLUMNS) + "\n" if new else "") + _csv_line(cells)
    with open(path, "a", encoding="utf-8") as f:
        f.write(line)
        f.flush()
        os.fsync(f.fileno())


def _csv_line(cells):
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow(cells)
    return out.getvalue()


def _read_csv(path, text):
    lines = list(csv.reader(text.splitlines()))
    header, rows, messages = lines[0], [], []
    if not text.endswith("\n") and len(lines) > 1:
        messages.append(f"{path}: line {len(lines)} has no line end (the run writing it was interrupted?); skipped")
        lines = lines[:-1]
    for number, cells in enumerate(lines[1:], start=2):
        if len(cells) != len(header):
            messages.append(f"{path}: line {number} has {len(cells)} of {len(header)} columns (truncated?); skipped")
            continue
        rows.append({key: _typed(key, cell) for key, cell in zip(header, cells)})
    if not rows and not messages:
        messages.append(f"{path}: a header and no rows")
    return rows, messages


def _read_jsonl(path, text):
    rows, messages = [], []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            if not isinstance(row, dict):
                raise ValueError
        except ValueError:
            messages.append(f"{path}: line {number} is not a complete JSON object (truncated?); skipped")
            continue
        rows.append(row)
    return rows, messages


def _typed(key, cell):
    """A CSV cell as the JSON line would hold it."""
    if key in LISTS:
        return [_typed(key[5:] if key.startswith("rank_") else "", c) for c in cell.split(";")] if cell else []
    if cell == "":
        return None
    try:
        if key in INTEGERS or key.endswith("_bytes"):
            return int(cell)
        if key in REALS or key.endswith("_s"):
            return float(cell)
    except ValueError:
        return None
    if key == "causal":
        return cell == "true"
    return cell


def _version_key(version):
    return tuple(int(p) if p.isdigit() else -1 for p in version.split("."))
