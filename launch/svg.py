"""Line and bar charts as SVG, written by hand with the standard library: axes with units,
linear or logarithmic scales, ticks and grid, a legend, several panels per figure."""
import math
from xml.sax.saxutils import escape

PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#17becf", "#7f7f7f"]
FONT = 'font-family="DejaVu Sans, Helvetica, Arial, sans-serif"'


class Scale:
    """Data to pixels along one axis, linear or logarithmic (base 2 or 10)."""

    def __init__(self, low, high, start, end, log=None):
        self.log, self.start, self.end = log, start, end
        if log:
            low, high = math.log(low, log), math.log(high, log)
        if high == low:
            low, high = low - 1, high + 1
        self.low, self.high = low, high

    def __call__(self, value):
        v = math.log(value, self.log) if self.log else value
        return self.start + (v - self.low) / (self.high - self.low) * (self.end - self.start)

    def ticks(self, label):
        """(value, text) pairs: every power of the base on log axes, about six round steps on linear ones."""
        if self.log:
            first, last = math.ceil(self.low - 1e-9), math.floor(self.high + 1e-9)
            step = max(1, math.ceil((last - first + 1) / 9))
            return [(self.log ** e, label(self.log ** e)) for e in range(first, last + 1, step)]
        raw = (self.high - self.low) / 6
        step = min((m * 10 ** math.floor(math.log10(raw)) for m in (1, 2, 2.5, 5, 10)), key=lambda s: abs(s - raw))
        value = math.ceil(self.low / step - 1e-9) * step
        out = []
        while value <= self.high + 1e-9 * step:
            out.append((value, label(value)))
            value += step
        return out


def nice_range(values, log=None, include_zero=False, pad=0.06):
    """A data range a little wider than the values, snapped to powers on log axes."""
    low, high = min(values), max(values)
    if log:
        return log ** math.floor(math.log(low, log)), log ** math.ceil(math.log(high, log))
    if include_zero:
        low = min(0, low)
    span = (high - low) or abs(high) or 1
    return low - (0 if include_zero and low == 0 else pad * span), high + pad * span


class Panel:
    """One plot area in a figure: axes, grid, series and legend."""

    def __init__(self, figure, x, y, width, height, title):
        self.figure, self.box, self.title = figure, (x, y, width, height), title
        self.items, self.legend = [], []

    def axes(self, xrange, yrange, xlabel, ylabel, xlog=None, ylog=None, xticks=None, xtick_label=str,
             ytick_label=str):
        x, y, w, h = self.box
        self.x = Scale(*xrange, x, x + w, xlog)
        self.y = Scale(*yrange, y + h, y, ylog)
        out = self.figure.parts
        out.append(f'<rect x="{x}" y="{y}" width="{w}" height="{h}" fill="white" stroke="#444"/>')
        for value, text in self.y.ticks(ytick_label):
            py = self.y(value)
            out.append(f'<line x1="{x}" y1="{py:.1f}" x2="{x + w}" y2="{py:.1f}" stroke="#e3e3e3"/>')
            out.append(f'<text x="{x - 6}" y="{py + 4:.1f}" text-anchor="end" font-size="12" {FONT}>{escape(text)}</text>')
        for value, text in (xticks or self.x.ticks(xtick_label)):
            px = self.x(value)
            out.append(f'<line x1="{px:.1f}" y1="{y}" x2="{px:.1f}" y2="{y + h}" stroke="#e3e3e3"/>')
            out.append(f'<text x="{px:.1f}" y="{y + h + 17}" text-anchor="middle" font-size="12" {FONT}>{escape(text)}</text>')
        out.append(f'<text x="{x + w / 2}" y="{y + h + 38}" text-anchor="middle" font-size="13" {FONT}>{escape(xlabel)}</text>')
        out.append(f'<text transform="translate({x - 52},{y + h / 2}) rotate(-90)" text-anchor="middle" font-size="13" '
                   f'{FONT}>{escape(ylabel)}</text>')
        out.append(f'<text x="{x + w / 2}" y="{y - 12}" text-anchor="middle" font-size="14" font-weight="bold" '
                   f'{FONT}>{escape(self.title)}</text>')

    def right_axis(self, factor, label, tick_label):
        """A second y scale on the right: the left values times `factor` (e.g. GFLOP/s → % of peak)."""
        x, y, w, h = self.box
        low, high = self.y.low * factor, self.y.high * factor
        right = Scale(low, high, y + h, y)
        for value, text in right.ticks(tick_label):
            py = right(value)
            self.figure.parts.append(f'<text x="{x + w + 6}" y="{py + 4:.1f}" font-size="12" fill="#555" {FONT}>{escape(text)}</text>')
        self.figure.parts.append(f'<text transform="translate({x + w + 48},{y + h / 2}) rotate(90)" text-anchor="middle" '
                                 f'font-size="13" fill="#555" {FONT}>{escape(label)}</text>')

    def line(self, points, label, color, dash=None, markers=True, labels=None):
        """A series through (x, y) points, sorted by x; `labels` writes a text beside each point."""
        points = sorted(points)
        path = " ".join(f"{self.x(px):.1f},{self.y(py):.1f}" for px, py in points)
        style = f' stroke-dasharray="{dash}"' if dash else ""
        self.figure.parts.append(f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="2"{style}/>')
        for i, (px, py) in enumerate(points):
            if markers:
                self.figure.parts.append(f'<circle cx="{self.x(px):.1f}" cy="{self.y(py):.1f}" r="3.5" fill="{color}"/>')
            if labels:
                self.figure.parts.append(f'<text x="{self.x(px) + 6:.1f}" y="{self.y(py) - 7:.1f}" font-size="11" '
                                         f'fill="{color}" {FONT}>{escape(labels[i])}</text>')
        self.legend.append((label, color, dash, markers))

    def bars(self, groups, stack_labels, colors, value_text):
        """Horizontal stacked bars: groups of (name, [value per stack]), one bar per group."""
        x, y, w, h = self.box
        slot = h / len(groups)
        for i, (name, values) in enumerate(groups):
            top, left = y + i * slot + slot * 0.2, 0
            for value, color in zip(values, colors):
                self.figure.parts.append(f'<rect x="{self.x(left):.1f}" y="{top:.1f}" width="{self.x(left + value) - self.x(left):.1f}" '
                                         f'height="{slot * 0.6:.1f}" fill="{color}"/>')
                left += value
            self.figure.parts.append(f'<text x="{x - 6}" y="{top + slot * 0.35:.1f}" text-anchor="end" font-size="12" '
                                     f'{FONT}>{escape(name)}</text>')
            self.figure.parts.append(f'<text x="{self.x(left) + 6:.1f}" y="{top + slot * 0.35:.1f}" font-size="12" '
                                     f'{FONT}>{escape(value_text(values))}</text>')
        self.legend += [(label, color, None, None) for label, color in zip(stack_labels, colors)]

    def draw_legend(self, corner="top-left", at=None):
        """The legend inside a corner of the panel, or with its top left at `at`."""
        x, y, w, h = self.box
        width = 16 + max(7 * len(label) for label, *_ in self.legend) + 34
        height = 8 + 18 * len(self.legend)
        left = x + 10 if corner.endswith("left") else x + w - width - 10
        top = y + 10 if corner.startswith("top") else y + h - height - 10
        if at:
            left, top = at
        out = self.figure.parts
        out.append(f'<rect x="{left}" y="{top}" width="{width}" height="{height}" fill="white" fill-opacity="0.9" stroke="#bbb"/>')
        for i, (label, color, dash, markers) in enumerate(self.legend):
            ly = top + 16 + 18 * i
            if markers is None:
                out.append(f'<rect x="{left + 8}" y="{ly - 9}" width="24" height="11" fill="{color}"/>')
            else:
                style = f' stroke-dasharray="{dash}"' if dash else ""
                out.append(f'<line x1="{left + 8}" y1="{ly - 4}" x2="{left + 32}" y2="{ly - 4}" stroke="{color}" stroke-width="2"{style}/>')
                if markers:
                    out.append(f'<circle cx="{left + 20}" cy="{ly - 4}" r="3.5" fill="{color}"/>')
            out.append(f'<text x="{left + 40}" y="{ly}" font-size="12" {FONT}>{escape(label)}</text>')


class Figure:
    def __init__(self, width, height, title, note=""):
        self.width, self.height = width, height
        self.parts = [f'<rect width="{width}" height="{height}" fill="white"/>',
                      f'<text x="{width / 2}" y="24" text-anchor="middle" font-size="16" font-weight="bold" {FONT}>{escape(title)}</text>']
        if note:
            self.parts.append(f'<text x="{width / 2}" y="{height - 10}" text-anchor="middle" font-size="11" fill="#555" '
                              f'{FONT}>{escape(note)}</text>')

    def panel(self, x, y, width, height, title=""):
        return Panel(self, x, y, width, height, title)

    def save(self, path):
        with open(path, "w", encoding="utf-8") as f:
            f.write(f'<svg xmlns="http://www.w3.org/2000/svg" width="{self.width}" height="{self.height}" '
                    f'viewBox="0 0 {self.width} {self.height}">\n' + "\n".join(self.parts) + "\n</svg>\n")
