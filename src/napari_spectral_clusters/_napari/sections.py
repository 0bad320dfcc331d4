"""The clustering widget's sections laid out as collapsible boxes in a scroll area, so the
dock fits a laptop screen (1366 x 768) instead of growing napari's window."""

from __future__ import annotations

import itertools

from magicgui.widgets import Label
from qtpy.QtCore import QEvent, QObject, QPoint, QSize, Qt
from qtpy.QtWidgets import (
    QComboBox,
    QDockWidget,
    QFrame,
    QMainWindow,
    QScrollArea,
    QSizePolicy,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)
from superqt import QCollapsible

__all__ = [
    "StatusLabel",
    "VerticalScroll",
    "fit_sections",
    "later",
    "narrow",
    "plot_tabs",
    "scroll_area",
    "scroll_to",
    "share_dock_height",
    "show_in_view",
]

#: Set on our docked widgets: the docks :func:`share_dock_height` shares the height among.
OUR_DOCK = "spectral_clusters_dock"
#: ... and in which order they were opened (counted by _OPENED).
OPENED = "spectral_clusters_opened"
_OPENED = itertools.count(1)
#: Below this height for any of them, this plugin's docks go in tabs rather than one above
#: another: at 1366 x 768 the clustering dock's third of the height (~200 px) showed Run,
#: the status and the table's header, not one of its rows or buttons.
MIN_SHARED_HEIGHT = 300


def scroll_area(sections: dict, plot) -> tuple[QScrollArea, list]:
    """The sections as collapsible boxes in a scroll area; the plot under the results, and
    *Reuse and scale* collapsed until wanted."""
    inner = QWidget()
    layout = QVBoxLayout(inner)
    layout.setContentsMargins(0, 0, 0, 0)
    boxes = []
    for title, section in sections.items():
        box = QCollapsible(title)
        box.setObjectName(section.name)
        box.addWidget(section.native)
        if title == "Results":
            box.addWidget(plot)
        if title == "Reuse and scale":
            box.collapse(animate=False)
        else:
            box.expand(animate=False)
        layout.addWidget(box)
        boxes.append(box)
    layout.addStretch(1)
    return VerticalScroll(inner), boxes


class VerticalScroll(QScrollArea):
    """``inner`` in a scroll area that scrolls up and down only, so a dock fits a laptop
    screen instead of growing the window, and is never narrower than ``inner`` needs beside
    the scroll bar: with no horizontal scrolling, Qt let the dock shrink below that, and the
    right end of every row was cut off under the scroll bar (Feature space stacked under the
    clustering dock at 1366 x 768)."""

    def __init__(self, inner: QWidget):
        super().__init__()
        self.setWidgetResizable(True)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setWidget(inner)

    def minimumSizeHint(self) -> QSize:
        hint = super().minimumSizeHint()
        inner = self.widget()
        if inner is None:
            return hint
        bar = self.verticalScrollBar().sizeHint().width()
        width = inner.minimumSizeHint().width() + bar + 2 * self.frameWidth()
        return QSize(max(hint.width(), width), hint.height())

    def eventFilter(self, watched, event) -> bool:
        # the contents' layout changed (a control shown or hidden): the dock asks again
        if watched is self.widget() and event.type() == QEvent.Type.LayoutRequest:
            self.updateGeometry()
        return super().eventFilter(watched, event)


class StatusLabel(Label):
    """A magicgui ``Label`` for sentences: wrapped across its row (magicgui fixes a label's
    width: "Regions are drawn in the 2-D view." broke after four words), and as tall as its
    text needs at that width, no taller. Qt sizes a layout by one line of a wrapped label: a
    two-line status under Feature space's plot took its second line from the buttons below
    it, drawn cut in half at 1366 x 768."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        native = self.native
        native.setWordWrap(True)
        # as wide as the row gives, whatever it says: a word too long to wrap (a layer named
        # after its file) is cut, not a reason for the dock to grow
        native.setSizePolicy(QSizePolicy.Policy.Ignored, native.sizePolicy().verticalPolicy())
        self._fitter = _FitsItsLines(native)  # on every resize: the lines depend on the width
        native.installEventFilter(self._fitter)
        _FitsItsLines.fit(native)

    def set_value(self, value) -> None:
        super().set_value(value)
        _FitsItsLines.fit(self.native)


class _FitsItsLines(QObject):
    def eventFilter(self, watched, event) -> bool:
        if event.type() == QEvent.Type.Resize:
            self.fit(watched)
        return False

    @staticmethod
    def fit(label) -> None:
        # from nothing: a label's heightForWidth never answers less than its minimum height,
        # so one long message would keep the label that tall for good
        label.setMinimumHeight(0)
        label.setMinimumHeight(max(label.heightForWidth(max(label.width(), 1)), 0))


def narrow(menu, letters: int) -> None:
    """Let the magicgui ``menu`` be as narrow as ``letters`` characters (its choices are
    elided in it, and shown whole in its list), not as wide as its longest choice: a layer
    named after its file would set a dock's least width (docks never shrink below their
    rows since :class:`VerticalScroll`)."""
    menu.native.setSizeAdjustPolicy(
        QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon
    )
    menu.native.setMinimumContentsLength(letters)


def fit_sections(boxes: list) -> None:
    """Let the open sections grow (or shrink) to what they now hold: a collapsible fixes its
    height when it opens, so a table that gained rows would be drawn under the buttons.

    Done on the next turn of the event loop, once the new rows and plot have their sizes
    (never by processing events here, which could run a click's handler in the middle of
    another's); dropped if the widget is gone by then."""

    def fit():
        for box in boxes:
            if box.isExpanded():
                box.expand(animate=False)

    if boxes:
        later(boxes[0], fit)


def scroll_to(scroll: QScrollArea, widget: QWidget) -> None:
    """Scroll so that ``widget`` (inside ``scroll``) is at the top of the view, or as near as
    the scroll range allows; on the next turn of the event loop, after :func:`fit_sections`
    has given the sections their new heights."""

    def scroll_now() -> bool:
        inner = scroll.widget()
        if inner is None or not inner.isAncestorOf(widget):
            return True  # nothing to do
        top = widget.mapTo(inner, QPoint(0, 0)).y()
        bar = scroll.verticalScrollBar()
        bar.setValue(top)
        return bar.value() >= top

    _until_settled(scroll, scroll_now)


def show_in_view(scroll: QScrollArea, *widgets: QWidget) -> None:
    """Scroll as little as needed for ``widgets`` (inside ``scroll``, top to bottom) to show
    whole, from the next turn of the event loop (after a widget shown or hidden has changed
    the heights): the first is made visible, then each next one while the first stays."""

    def shown(widget) -> bool:
        view = scroll.viewport()
        top = widget.mapTo(view, QPoint(0, 0)).y()
        return top >= 0 and top + widget.height() <= view.height()

    def reveal(widget) -> None:
        # by the widget's own rectangle: Qt's ensureWidgetVisible shows a text field's
        # cursor, and left the steps field 5-6 px above the view
        inner = scroll.widget()
        if inner is None or not inner.isAncestorOf(widget):
            return
        top = widget.mapTo(inner, QPoint(0, 0)).y()
        bar, height = scroll.verticalScrollBar(), scroll.viewport().height()
        if top < bar.value() or widget.height() > height:  # (taller: its top)
            bar.setValue(top)
        elif top + widget.height() > bar.value() + height:
            bar.setValue(top + widget.height() - height)

    def show_now() -> bool:
        for widget in widgets:
            reveal(widget)
        if not shown(widgets[0]):  # taller than the view: the first one counts most
            reveal(widgets[0])
        return all(shown(w) for w in widgets)

    _until_settled(scroll, show_now)


def _until_settled(scroll: QScrollArea, attempt, tries: int = 5) -> None:
    """Call ``attempt`` on the next turn of the event loop and, while it returns False, again
    on the next few: new heights reach the scroll range a turn or two after the change that
    made them (layout requests are events too)."""

    def run(left: int):
        if not attempt() and left:
            later(scroll, lambda: run(left - 1))

    later(scroll, lambda: run(tries))


def share_dock_height(native: QWidget, weight: float = 1.0) -> None:
    """Once ``native`` is docked (the next turn of the event loop), share the height of its
    dock area among this plugin's docks stacked there, in proportion to their ``weight``: Qt
    gives a new dock what its size hint asks, and at 1366 x 768 the clustering dock was left
    90 px beside the feature space's. When a share would be under MIN_SHARED_HEIGHT, the
    new dock goes in a tab beside the other, in front, and each has the whole height. Other
    plugins' docks, tabbed and floating docks are left as they are."""
    native.setProperty(OUR_DOCK, float(weight))
    native.setProperty(OPENED, next(_OPENED))

    def weight_of(dock) -> float:
        return max(float(w.property(OUR_DOCK) or 0) for w in dock.findChildren(QWidget))

    def opened(dock) -> int:
        return max(int(w.property(OPENED) or 0) for w in dock.findChildren(QWidget))

    def share():
        main = native.window()
        if not isinstance(main, QMainWindow):
            return
        ours = [
            dock
            for dock in main.findChildren(QDockWidget)
            if dock.isVisible()
            and not dock.isFloating()
            and not main.tabifiedDockWidgets(dock)
            and weight_of(dock) > 0
        ]
        own = next((dock for dock in ours if dock.isAncestorOf(native)), None)
        if own is None:
            return
        area = main.dockWidgetArea(own)
        stacked = [dock for dock in ours if main.dockWidgetArea(dock) == area]
        if len(stacked) < 2 or len({dock.x() for dock in stacked}) > 1:  # not one above another
            return
        total, weights = sum(dock.height() for dock in stacked), [weight_of(d) for d in stacked]
        heights = [int(total * w / sum(weights)) for w in weights]
        if min(heights) < MIN_SHARED_HEIGHT:
            # (docks opened in one turn of the event loop share once, in the first's turn)
            first, *rest = sorted(stacked, key=opened)
            for dock in rest:
                main.tabifyDockWidget(first, dock)
            later(own, rest[-1].raise_)  # the dock opened last in front, once its tab is made
            return
        main.resizeDocks(stacked, heights, Qt.Orientation.Vertical)

    later(native, share)


def later(parent, job) -> None:
    """Run ``job`` on the next turn of the event loop, unless ``parent`` (a QObject) is gone
    by then: the timer is its child, deleted with it."""
    from qtpy.QtCore import QTimer

    timer = QTimer(parent)
    timer.setSingleShot(True)
    timer.timeout.connect(job)
    timer.timeout.connect(timer.deleteLater)
    timer.start(0)


def plot_tabs(plots: dict) -> QTabWidget:
    """The plots as tabs (title -> plot); hidden until one of them has something to show."""
    tabs = QTabWidget()
    for title, plot in plots.items():
        tabs.addTab(plot, title)
        plot.shown.connect(tabs.show)
    tabs.hide()
    return tabs
