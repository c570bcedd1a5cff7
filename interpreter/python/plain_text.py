"""The text/plain display of a value, laid out as IPython's pretty printer lays it out.

Clients of a Jupyter-backed code interpreter parse this text (AutoGen splits a long list on ",\\n"),
so lists, tuples, dicts and sets follow IPython's rules: at most 79 columns; a container either fits
on its line or breaks after every separator, outermost containers first; items past the 1000th
elided as "..."; a container inside itself shown as "[...]". Every other value is its repr(), each
of its lines indented to where it starts. Standard library only.
"""

from collections import deque

MAX_WIDTH = 79
MAX_ITEMS = 1000


class _Group:
    def __init__(self, depth):
        self.depth = depth
        self.separators = deque()
        self.broken = False


class _Text:
    def __init__(self, text):
        self.text = text
        self.width = len(text)

    def emit(self, layout, column):
        layout.out.append(self.text)
        return column + self.width


class _Separator:
    """A place a group may break: its text while the group fits, else a new line at `indent`."""

    def __init__(self, text, indent, group):
        self.text = text
        self.width = len(text)
        self.indent = indent
        self.group = group

    def emit(self, layout, column):
        self.group.separators.popleft()
        if self.group.broken:
            layout.out.append("\n" + " " * self.indent)
            return self.indent
        if not self.group.separators:
            layout.forget(self.group)
        layout.out.append(self.text)
        return column + self.width


class _Layout:
    def __init__(self):
        self.out = []
        self.column = 0
        self.pending = deque()
        self.pending_width = 0
        self.indent = 0
        self.open_groups = [_Group(0)]
        # Groups with separators still pending, by depth: the shallowest break first.
        self.breakable = {}

    def text(self, text):
        if not self.pending:
            self.out.append(text)
            self.column += len(text)
            return
        self.pending.append(_Text(text))
        self.pending_width += len(text)
        self._break_outer_groups()

    def separator(self, text=" "):
        group = self.open_groups[-1]
        if group.broken:
            self._new_line()
            return
        entry = _Separator(text, self.indent, group)
        self.pending.append(entry)
        group.separators.append(entry)
        self.pending_width += entry.width
        self._break_outer_groups()

    def newline(self):
        """A line break the text itself has: the outermost group still pending breaks with it."""
        group = self._outermost()
        if group is not None:
            self._break(group)
        self._new_line()

    def _new_line(self):
        self._flush()
        self.out.append("\n" + " " * self.indent)
        self.column = self.indent

    def begin(self, indent, opening):
        if opening:
            self.text(opening)
        group = _Group(len(self.open_groups))
        self.open_groups.append(group)
        self.breakable.setdefault(group.depth, []).append(group)
        self.indent += indent

    def end(self, dedent, closing):
        self.indent -= dedent
        group = self.open_groups.pop()
        if not group.separators:
            self.forget(group)
        if closing:
            self.text(closing)

    def forget(self, group):
        groups = self.breakable.get(group.depth, [])
        if group in groups:
            groups.remove(group)

    def _outermost(self):
        """Takes the shallowest group with pending separators, marking the groups passed over broken."""
        for depth in sorted(self.breakable):
            groups = self.breakable[depth]
            for index in range(len(groups) - 1, -1, -1):
                if groups[index].separators:
                    group = groups.pop(index)
                    group.broken = True
                    return group
            for group in groups:
                group.broken = True
            groups.clear()
        return None

    def _break_outer_groups(self):
        while self.column + self.pending_width > MAX_WIDTH:
            group = self._outermost()
            if group is None:
                return
            self._break(group)

    def _break(self, group):
        """Emits what is pending up to the group's last separator (each now a new line), and the text after it."""
        while group.separators:
            entry = self.pending.popleft()
            self.column = entry.emit(self, self.column)
            self.pending_width -= entry.width
        while self.pending and isinstance(self.pending[0], _Text):
            entry = self.pending.popleft()
            self.column = entry.emit(self, self.column)
            self.pending_width -= entry.width

    def _flush(self):
        while self.pending:
            self.column = self.pending.popleft().emit(self, self.column)
        self.pending_width = 0

    def result(self):
        self._flush()
        return "".join(self.out)


def plain_text(value):
    """The value as IPython's text/plain display shows it."""
    layout = _Layout()
    _value(layout, value, set())
    return layout.result()


def _items(layout, items, show):
    for index, item in enumerate(items):
        if index:
            layout.text(",")
            layout.separator()
        if index == MAX_ITEMS:
            layout.text("...")
            return
        show(item)


def _value(layout, value, seen):
    kind = type(value)
    if kind not in (list, tuple, dict, set, frozenset):
        _repr(layout, value)
        return
    if id(value) in seen:
        layout.text({list: "[...]", tuple: "(...)", dict: "{...}"}.get(kind, f"{kind.__name__}(...)"))
        return
    seen.add(id(value))
    try:
        if kind is dict:
            _container(layout, "{", "}", value.keys(), lambda key: _entry(layout, key, value[key], seen))
        elif kind in (set, frozenset):
            if not value:
                layout.text(f"{kind.__name__}()")
                return
            members = _sorted(value)
            opening, closing = ("{", "}") if kind is set else ("frozenset({", "})")
            _container(layout, opening, closing, members, lambda item: _value(layout, item, seen))
        else:
            opening, closing = ("[", "]") if kind is list else ("(", ")")
            # A tuple of one keeps its comma: (1,).
            lone = "," if kind is tuple and len(value) == 1 else ""
            _container(layout, opening, closing, value, lambda item: _value(layout, item, seen), lone)
    finally:
        seen.discard(id(value))


def _sorted(members):
    """A set's members in order: by value, else by their str(), else as the set holds them."""
    for key in (None, str):
        try:
            return sorted(members, key=key)
        except Exception:
            pass
    return list(members)


def _container(layout, opening, closing, items, show, before_closing=""):
    layout.begin(len(opening), opening)
    _items(layout, items, show)
    if before_closing:
        layout.text(before_closing)
    layout.end(len(opening), closing)


def _entry(layout, key, value, seen):
    _value(layout, key, seen)
    layout.text(": ")
    _value(layout, value, seen)


def _repr(layout, value):
    lines = repr(value).splitlines() or [""]
    layout.begin(0, "")
    for index, line in enumerate(lines):
        if index:
            layout.newline()
        layout.text(line)
    layout.end(0, "")
