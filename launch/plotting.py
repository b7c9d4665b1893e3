"""matplotlib for every plot of launch/: installed from PyPI when missing, drawn without a display,
saved as SVG whose text stays text (searchable, and checked by Tests/scaling), and the few helpers
the plotting scripts share."""
import importlib, subprocess, sys


def _matplotlib():
    try:
        return importlib.import_module("matplotlib")
    except ImportError:
        print("plot: installing matplotlib from PyPI", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "matplotlib"], check=True)
        importlib.invalidate_caches()
        return importlib.import_module("matplotlib")


matplotlib = _matplotlib()
matplotlib.use("Agg")
matplotlib.rcParams.update({"svg.fonttype": "none", "svg.hashsalt": "flashdist", "font.size": 10,
                            "axes.grid": True, "figure.constrained_layout.use": True, "grid.alpha": 0.3, "legend.fontsize": 8, "figure.dpi": 100})
import matplotlib.pyplot as plt  # noqa: E402  (after the back end is chosen)
from matplotlib.ticker import FuncFormatter  # noqa: E402


def save(figure, path, note=None):
    """Writes `figure` to `path` (its format from the extension) with `note` (machine, shape) at
    its foot, and closes it; the date is left out so that re-plotting the same records gives the
    same file."""
    if note:
        figure.text(0.5, -0.01, note, ha="center", va="top", fontsize=8, color="#555")
    figure.savefig(path, bbox_inches="tight", metadata={"Date": None} if path.endswith(".svg") else None)
    plt.close(figure)


def log2_axis(axis, which, label):
    """A base-2 log axis labelled with sizes (512, 1K, 2K …) or bytes."""
    (axis.set_xscale if which == "x" else axis.set_yscale)("log", base=2)
    target = axis.xaxis if which == "x" else axis.yaxis
    target.set_major_formatter(FuncFormatter(lambda v, _: label(v)))


def size_text(n):
    n = round(n)
    if n >= 1 << 20 and n % (1 << 20) == 0:
        return f"{n >> 20}M"
    return f"{n // 1024}K" if n >= 1024 and n % 1024 == 0 else str(n)


def bytes_text(b):
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if b >= size:
            return f"{b / size:.3g} {unit}"
    return f"{b:.0f} B"
