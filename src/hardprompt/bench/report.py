"""Benchmark reports: a Markdown table per task × method, and a PNG of best score against wall-clock time."""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont

PALETTE = {
    "pez": (31, 119, 180),
    "autoprompt": (255, 127, 14),
    "autoprompt-sgd": (140, 86, 75),
    "fluentprompt": (148, 103, 189),
    "gcg": (214, 39, 40),
    "random": (127, 127, 127),
    "soft": (44, 160, 44),
    "nanogcg": (0, 0, 0),
}
EXTRA_COLORS = [(23, 190, 207), (188, 189, 34), (227, 119, 194), (255, 187, 120)]


def _groups(rows: list[dict[str, Any]]) -> dict[tuple[str, str], list[dict[str, Any]]]:
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[row["task"], row["method"]].append(row)
    return groups


def _mean_sd(values: list[float]) -> str:
    if len(values) < 2:
        return f"{values[0]:.3f}"
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"


RUN_FIELDS = {"prompt_len", "score", "projected_score", "steps", "seconds", "forward_passes", "seed", "hard"}
"""Numeric fields every row has; any other numeric field is a task's own metric (recovered, target_nll, ...)."""


def task_metrics(group: list[dict[str, Any]]) -> str:
    """Means of a group's task-specific numeric metrics (booleans as fractions), e.g. "recovered 0.50"."""
    names = [
        key
        for key, value in group[0].items()
        if key not in RUN_FIELDS and isinstance(value, (int, float)) and all(key in row for row in group)
    ]
    return ", ".join(f"{name} {statistics.mean(float(row[name]) for row in group):.2f}" for name in names) or "—"


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """One line per task × method: runs, round-trip score (mean ± sd), task metrics, steps, forward passes, seconds."""
    lines = [
        "| task | method | runs | score (mean ± sd) | task metrics (mean) | steps | forward passes | seconds |",
        "|---|---|---:|---:|---|---:|---:|---:|",
    ]
    for (task, method), group in _groups(rows).items():
        label = method if all(row["hard"] for row in group) else f"{method} (not hard: upper bound)"
        lines.append(
            f"| {task} | {label} | {len(group)} | {_mean_sd([row['score'] for row in group])} | "
            f"{task_metrics(group)} | "
            f"{statistics.mean(row['steps'] for row in group):.0f} | "
            f"{statistics.mean(row['forward_passes'] for row in group):.0f} | "
            f"{statistics.mean(row['seconds'] for row in group):.1f} |"
        )
    return "\n".join(lines) + "\n"


def mean_curve(curves: list[list[list[float]]], grid: list[float]) -> list[float | None]:
    """The mean over runs of each run's best score at each grid time (None before every run has a point)."""
    means: list[float | None] = []
    for time in grid:
        values = []
        for points in curves:
            seen = [score for t, score in points if t <= time]
            if not seen:
                break
            values.append(seen[-1])
        means.append(statistics.mean(values) if len(values) == len(curves) else None)
    return means


@dataclass
class Panel:
    """A plotting area in pixels and the data range it shows."""

    x0: float
    y0: float
    x1: float
    y1: float
    horizon: float
    low: float
    high: float

    def to_xy(self, t: float, value: float) -> tuple[float, float]:
        x = self.x0 + (self.x1 - self.x0) * t / self.horizon
        return x, self.y1 - (self.y1 - self.y0) * (value - self.low) / (self.high - self.low)


def plot(rows: list[dict[str, Any]], path: str | Path, width: int = 560, height: int = 380) -> None:
    """One panel per task: mean best score (projected, over seeds and instances) against wall-clock seconds."""
    tasks = list(dict.fromkeys(row["task"] for row in rows))
    groups = _groups(rows)
    methods = list(dict.fromkeys(row["method"] for row in rows))
    colors = {m: PALETTE.get(m, EXTRA_COLORS[i % len(EXTRA_COLORS)]) for i, m in enumerate(methods)}
    font = ImageFont.load_default()
    image = Image.new("RGB", (width * len(tasks), height + 24 + 16 * ((len(methods) + 3) // 4)), "white")
    draw = ImageDraw.Draw(image)
    for index, task in enumerate(tasks):
        horizon = max(point[0] for row in rows if row["task"] == task for point in row["curve"]) or 1.0
        grid = [horizon * i / 200 for i in range(201)]
        series = {
            m: mean_curve([row["curve"] for row in groups[task, m]], grid) for m in methods if (task, m) in groups
        }
        values = [v for means in series.values() for v in means if v is not None]
        low, high = min(values), max(values)
        margin = max(0.03 * (high - low), 0.01)
        low, high = low - margin, high + margin
        panel = Panel(index * width + 56, 28, (index + 1) * width - 16, height - 40, horizon, low, high)
        draw.rectangle([panel.x0, panel.y0, panel.x1, panel.y1], outline="black")
        title = f"{task}: mean best score (before round trip) vs wall-clock seconds"
        draw.text((panel.x0, 8), title, fill="black", font=font)
        for tick in range(5):
            value = low + (high - low) * tick / 4
            y = panel.to_xy(0, value)[1]
            draw.line([panel.x0 - 4, y, panel.x0, y], fill="black")
            draw.text((panel.x0 - 50, y - 6), f"{value:.3f}", fill="black", font=font)
            t = horizon * tick / 4
            x = panel.to_xy(t, low)[0]
            draw.line([x, panel.y1, x, panel.y1 + 4], fill="black")
            draw.text((x - 10, panel.y1 + 8), f"{t:.0f}s" if horizon >= 10 else f"{t:.1f}s", fill="black", font=font)
        for method, means in series.items():
            points = [panel.to_xy(t, v) for t, v in zip(grid, means, strict=True) if v is not None]
            if len(points) > 1:
                draw.line(points, fill=colors[method], width=2)
    for index, method in enumerate(methods):
        x = 12 + (index % 4) * 150
        y = height + 8 + 16 * (index // 4)
        draw.line([x, y + 6, x + 20, y + 6], fill=colors[method], width=3)
        draw.text((x + 26, y), method, fill="black", font=font)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
