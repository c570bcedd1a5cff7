"""Values as a notebook displays them, in the shape E2B's code interpreter streams them.

A result is one value's representations: ``text`` (IPython's text/plain layout), and whichever of
``html``, ``markdown``, ``svg``, ``png``, ``jpeg``, ``pdf``, ``latex``, ``json`` and ``javascript``
the value offers through the ``_repr_*_`` methods notebooks call; plus E2B's own two: ``data``, a
pandas DataFrame as its columns, and ``chart``, the elements of a matplotlib figure (line, scatter,
bar and pie charts; a figure of several axes as a ``superchart`` of them). Everything returned is
plain JSON: numpy scalars become numbers, times ISO 8601 text, and NaN or infinity null.

Standard library only; pandas, numpy, matplotlib and PIL are used when the user's code loaded them.
"""

import base64
import datetime
import io
import math
import sys

#: The `_repr_*_` methods a value may offer, by the result field each fills (IPython's names).
REPR_METHODS = (
    ("html", "_repr_html_"),
    ("markdown", "_repr_markdown_"),
    ("svg", "_repr_svg_"),
    ("png", "_repr_png_"),
    ("jpeg", "_repr_jpeg_"),
    ("pdf", "_repr_pdf_"),
    ("latex", "_repr_latex_"),
    ("json", "_repr_json_"),
    ("javascript", "_repr_javascript_"),
)
BINARY_FIELDS = ("png", "jpeg", "pdf")


def jsonable(value, depth=0):
    """`value` as JSON can carry it (json.dumps would write NaN, which no JSON parser reads)."""
    if depth > 32:
        return None
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(key): jsonable(item, depth + 1) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(item, depth + 1) for item in value]
    item = getattr(value, "item", None)  # numpy scalars
    if callable(item) and getattr(value, "ndim", None) == 0:
        return jsonable(item(), depth + 1)
    isoformat = getattr(value, "isoformat", None)  # pandas Timestamps
    if callable(isoformat):
        return isoformat()
    tolist = getattr(value, "tolist", None)  # numpy arrays
    if callable(tolist):
        return jsonable(tolist(), depth + 1)
    return str(value)


def png_of_pil(value):
    """A PIL image's PNG, base64; None for anything else (PIL is looked at only if the code loaded it)."""
    pil = sys.modules.get("PIL.Image")
    if pil is None or not isinstance(value, pil.Image):
        return None
    buffer = io.BytesIO()
    value.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def png_of_figure(figure):
    """A matplotlib figure's PNG as it is shown (tight bounding box), base64."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", bbox_inches="tight")
    return base64.b64encode(buffer.getvalue()).decode()


def _is_figure(value):
    figure = sys.modules.get("matplotlib.figure")
    return figure is not None and isinstance(value, figure.Figure)


def _is_dataframe(value):
    pandas = sys.modules.get("pandas")
    return pandas is not None and isinstance(value, pandas.DataFrame)


def result(value, main, plain_text):
    """The result a value is: `main` for a cell's last expression, else a display."""
    if _is_figure(value):
        return figure_result(value, main)
    out = {"type": "result", "is_main_result": main}
    try:
        text = plain_text(value)
    except Exception:  # noqa: BLE001 - a repr that fails still leaves a result
        text = object.__repr__(value)
    # E2B's server shows a string without the quotes of its repr.
    if isinstance(value, str) and len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        text = text[1:-1]
    out["text"] = text
    if not isinstance(value, type):
        for field, method in REPR_METHODS:
            represent = getattr(value, method, None)
            if not callable(represent):
                continue
            try:
                data = represent()
            except Exception:  # noqa: BLE001 - a representation that fails is left out, as IPython does
                continue
            if isinstance(data, tuple):  # (data, metadata)
                data = data[0] if data else None
            if data is None:
                continue
            if field in BINARY_FIELDS and isinstance(data, (bytes, bytearray)):
                data = base64.b64encode(data).decode()
            out[field] = jsonable(data)
    png = png_of_pil(value)
    if png is not None:
        out["png"] = png
    if _is_dataframe(value):
        try:
            out["data"] = jsonable(value.to_dict(orient="list"))
        except Exception:  # noqa: BLE001 - the other representations still travel
            pass
    return out


def figure_result(figure, main=False):
    """A matplotlib figure as shown: its PNG, its repr and its chart."""
    png = png_of_figure(figure)
    width, height = figure.get_size_inches() * figure.dpi
    axes = len(figure.get_axes())
    out = {
        "type": "result",
        "is_main_result": main,
        "text": f"<Figure size {width:g}x{height:g} with {axes} Axes>",
        "png": png,
    }
    try:
        chart = chart_of(figure)
    except Exception:  # noqa: BLE001 - a figure the reader does not follow still has its PNG
        chart = None
    if chart is not None:
        out["chart"] = chart
    return out


def chart_of(figure):
    """The figure's chart: its one axes', or a superchart of several; None for a figure without axes."""
    axes = figure.get_axes()
    if not axes:
        return None
    if len(axes) == 1:
        return _axes_chart(axes[0])
    title = figure.get_suptitle() if hasattr(figure, "get_suptitle") else ""
    return {"type": "superchart", "title": title or None, "elements": [_axes_chart(ax) for ax in axes]}


def _unit(label):
    """The unit a label names in brackets or parentheses: "Time (s)" → "s"."""
    for opening, closing in (("(", ")"), ("[", "]")):
        end = label.rfind(closing)
        start = label.rfind(opening, 0, end)
        if start != -1 and end == len(label.rstrip()) - 1:
            return label[start + 1 : end] or None
    return None


def _axes_frame(ax, kind):
    x_label, y_label = ax.get_xlabel() or None, ax.get_ylabel() or None
    return {
        "type": kind,
        "title": ax.get_title() or None,
        "x_label": x_label,
        "y_label": y_label,
        "x_unit": _unit(x_label) if x_label else None,
        "y_unit": _unit(y_label) if y_label else None,
    }


def _ticks(ax):
    return {
        "x_ticks": jsonable(list(ax.get_xticks())),
        "x_tick_labels": [label.get_text() for label in ax.get_xticklabels()],
        "x_scale": ax.get_xscale(),
        "y_ticks": jsonable(list(ax.get_yticks())),
        "y_tick_labels": [label.get_text() for label in ax.get_yticklabels()],
        "y_scale": ax.get_yscale(),
    }


def _axes_chart(ax):
    from matplotlib.collections import PathCollection
    from matplotlib.container import BarContainer
    from matplotlib.lines import Line2D
    from matplotlib.patches import Wedge

    lines = [line for line in ax.lines if isinstance(line, Line2D)]
    points = [collection for collection in ax.collections if isinstance(collection, PathCollection)]
    bars = [container for container in ax.containers if isinstance(container, BarContainer)]
    wedges = [patch for patch in ax.patches if isinstance(patch, Wedge)]

    if wedges and len(wedges) == len(ax.patches) and not lines and not points:
        chart = {"type": "pie", "title": ax.get_title() or None}
        chart["elements"] = [
            {"label": wedge.get_label(), "angle": round(abs(wedge.theta2 - wedge.theta1), 4), "radius": wedge.r}
            for wedge in wedges
        ]
        return chart
    if bars and not lines and not points:
        chart = _axes_frame(ax, "bar")
        labels = [label.get_text() for label in ax.get_xticklabels()]
        elements = []
        for container in bars:
            for index, rect in enumerate(container):
                label = labels[index] if index < len(labels) else str(index)
                elements.append({"label": label, "group": container.get_label(), "value": jsonable(rect.get_height())})
        chart["elements"] = elements
        return chart
    if lines and not points and not ax.patches:
        chart = {**_axes_frame(ax, "line"), **_ticks(ax)}
        chart["elements"] = [
            {"label": line.get_label(), "points": jsonable(list(zip(line.get_xdata(), line.get_ydata())))}
            for line in lines
        ]
        return chart
    if points and not lines and not ax.patches:
        chart = {**_axes_frame(ax, "scatter"), **_ticks(ax)}
        chart["elements"] = [
            {"label": collection.get_label(), "points": jsonable(collection.get_offsets().tolist())}
            for collection in points
        ]
        return chart
    return {"type": "unknown", "title": ax.get_title() or None, "elements": []}
