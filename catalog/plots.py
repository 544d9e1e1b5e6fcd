"""Server-rendered SVG plots of the population views (matplotlib, no JavaScript, printable).

Figures are built with `matplotlib.figure.Figure` rather than pyplot: pyplot keeps global state, which is
not safe in a threaded web server."""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import io
from collections.abc import Callable, Sequence
from typing import Any

from django.core.cache import cache
from matplotlib import dates as mdates
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

ACCENT = "#2f6f4e"
SIZE = (6.4, 3.0)


def cached(plot: Callable[..., str]) -> Callable[..., str]:
    """A plot is a function of its data alone: the SVG is kept in Django's cache (shared by the web processes
    where RESIGHT_CACHE_URL is set), since drawing it takes matplotlib ~0.1-0.3 s of CPU per page view."""

    @functools.wraps(plot)
    def drawn(*args: Any) -> str:
        digest = hashlib.sha256(repr(args).encode()).hexdigest()
        return str(cache.get_or_set(f"plot:{plot.__name__}:{digest}", lambda: plot(*args), timeout=24 * 3600))

    return drawn


def svg(figure: Figure) -> str:
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    text = buffer.getvalue()
    # Inline in the page: drop the XML prolog and DOCTYPE that precede <svg>.
    return text[text.index("<svg") :]


def axes(title: str, xlabel: str, ylabel: str) -> tuple[Figure, Axes]:
    figure = Figure(figsize=SIZE)
    ax = figure.add_subplot()
    ax.set_title(title, fontsize=10, loc="left")
    ax.set_xlabel(xlabel, fontsize=9)
    ax.set_ylabel(ylabel, fontsize=9)
    ax.spines[["top", "right"]].set_visible(False)
    ax.tick_params(labelsize=8)
    return figure, ax


@cached
def discovery_curve(curve: Sequence[tuple[int, int]]) -> str:
    figure, ax = axes("Discovery curve", "Sightings (cumulative effort)", "Individuals identified")
    if curve:
        xs, ys = zip(*curve, strict=True)
        ax.step([0, *xs], [0, *ys], where="post", color=ACCENT)
        ax.plot([0, xs[-1]], [0, xs[-1]], ls=":", color="#999", lw=1, label="every sighting a new animal")
        ax.set_ylim(0, max(ys) * 1.15 + 1)
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend(fontsize=8, frameon=False, loc="upper left")
    return svg(figure)


@cached
def sightings_histogram(counts: Sequence[int]) -> str:
    figure, ax = axes("Sightings per individual", "Sightings", "Individuals")
    if counts:
        top = max(counts)
        ax.hist(counts, bins=[b - 0.5 for b in range(1, top + 2)], color=ACCENT, rwidth=0.85)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    return svg(figure)


@cached
def encounter_history(dates: Sequence[dt.datetime]) -> str:
    """One mark per sighting on a time axis: gaps and seasons show at a glance."""
    figure, ax = axes("Encounter history", "", "")
    figure.set_size_inches(6.4, 1.4)
    if dates:
        ax.plot(mdates.date2num(dates), [1] * len(dates), "|", markersize=22, mew=2, color=ACCENT)
        ax.xaxis_date()
        if len({d.date() for d in dates}) == 1:
            day = mdates.date2num(dates[0])
            ax.set_xlim(day - 15, day + 15)
    ax.set_yticks([])
    ax.spines[["left"]].set_visible(False)
    figure.autofmt_xdate()
    return svg(figure)
