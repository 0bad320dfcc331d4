"""The spectral steps as an editable list: add, remove and reorder steps, and set each step's
parameters in a small form. It edits the same pipeline text the *spectral steps* entry holds
(the text stays the one source of truth, so typing and editing agree and the settings, models
and CLI see one format)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FloatSpinBox,
    Label,
    LineEdit,
    PushButton,
    SpinBox,
)
from napari.utils.notifications import show_error
from qtpy.QtWidgets import QAbstractItemView, QListWidget

from ..spectral import BASELINES, STEPS, Pipeline, PreprocessingError, Step
from .sections import later

__all__ = ["FIELDS", "StepsEditor"]

#: What each step's form shows: (field, kind). Steps not listed take no parameters.
FIELDS = {
    "range": (("lo", "number"), ("hi", "number"), ("index", "bool")),
    "drop": (("limits", "numbers"), ("index", "bool")),
    "savgol": (("window", "odd"), ("order", "int"), ("deriv", "int")),
    "baseline": (("method", "method"), ("options", "text")),
    "despike": (("threshold", "number"), ("width", "int")),
}
#: The step menu: what each step does, in words.
TITLES = {
    "range": "keep a band range",
    "drop": "leave out bad bands",
    "savgol": "smooth / derivative (Savitzky-Golay)",
    "baseline": "remove a baseline",
    "despike": "remove cosmic-ray spikes",
    "snv": "normalise: SNV",
    "vector": "normalise: vector (L2)",
    "area": "normalise: area (L1)",
    "max": "normalise: maximum",
    "minmax": "normalise: min-max",
}
TIPS = {
    "lo": "Lowest band kept: nm, or a band number with 'index'.",
    "hi": "Highest band kept: nm, or a band number with 'index'.",
    "index": "Limits are band numbers (from 0) instead of wavelengths in nm.",
    "limits": "Pairs of limits, lo, hi, lo, hi ... e.g. water bands 1340, 1450, 1800, 1950.",
    "window": "Bands in the smoothing window (odd).",
    "order": "Order of the fitted polynomial, below the window.",
    "deriv": "0 smooths; 1 and 2 give the first and second derivative.",
    "method": "pybaselines method fitted to each spectrum.",
    "options": "The method's parameters, e.g. lam=1e5, p=0.01.",
    "threshold": "Modified z-score of a first difference above which it is a spike.",
    "width": "Clean bands on each side whose mean replaces a spike.",
}


def fields_of(step: Step) -> dict:
    """The form's values for ``step``."""
    a = step.args
    if step.name == "range":
        return {"lo": float(a[0]), "hi": float(a[1]), "index": bool(step.option("index"))}
    if step.name == "drop":
        return {"limits": ", ".join(repr(v) for v in a), "index": bool(step.option("index"))}
    if step.name == "savgol":
        return {"window": int(a[0]), "order": int(a[1]), "deriv": int(step.option("deriv"))}
    if step.name == "baseline":
        options = ", ".join(f"{k}={v!r}" for k, v in step.kwargs)
        return {"method": str(a[0]), "options": options}
    if step.name == "despike":
        return {"threshold": float(step.option("threshold")), "width": int(step.option("width"))}
    return {}


def step_text(name: str, values: dict) -> str:
    """The pipeline text of step ``name`` with the form's ``values``."""
    index = ", index=True" if values.get("index") else ""
    if name == "range":
        lo, hi = values["lo"], values["hi"]
        if values.get("index"):  # band numbers are whole: 0, not 0.0
            lo, hi = (int(v) if float(v).is_integer() else v for v in (lo, hi))
        return f"range({lo!r}, {hi!r}{index})"
    if name == "drop":
        return f"drop({values['limits']}{index})"
    if name == "savgol":
        deriv = f", deriv={values['deriv']}" if values["deriv"] else ""
        return f"savgol({values['window']}, {values['order']}{deriv})"
    if name == "baseline":
        options = str(values["options"]).strip()
        return f"baseline({values['method']}{', ' + options if options else ''})"
    if name == "despike":
        return f"despike(threshold={values['threshold']!r}, width={values['width']})"
    return name


def default_step(name: str, bands, wavelengths) -> Step:
    """A step as it is first added where the spectra have ``bands`` (the input band numbers
    still present, or None when unknown) at ``wavelengths``: limits spanning those bands, a
    window that fits them."""
    wl = None if wavelengths is None else np.asarray(wavelengths, np.float64)
    bands = np.arange(0) if bands is None else np.asarray(bands)
    n = len(bands)
    if name in ("range", "drop"):
        if wl is not None and len(wl):
            lo, hi = float(wl.min()), float(wl.max())
            if name == "drop":
                lo = hi = float(np.sort(wl)[len(wl) // 2])  # one band: the user widens it
            text = step_text(name, {"lo": lo, "hi": hi, "limits": f"{lo!r}, {hi!r}"})
        else:
            first, last = (int(bands.min()), int(bands.max())) if n else (0, 0)
            lo, hi = (int(bands[n // 2]),) * 2 if name == "drop" and n else (first, last)
            values = {"lo": float(lo), "hi": float(hi), "limits": f"{lo}, {hi}", "index": True}
            text = step_text(name, values)
    elif name == "savgol":
        window = 11 if n == 0 or n >= 11 else max(1, n - (1 - n % 2))
        text = step_text(name, {"window": window, "order": min(2, window - 1), "deriv": 0})
    elif name == "baseline":
        text = "baseline(asls, lam=100000.0)"
    else:
        text = name
    return Pipeline.parse(text).steps[0]


class StepsEditor(Container):
    """The steps of the pipeline text as a list (``step_list``), the menu and buttons that
    edit it (``add_choice``, ``add_button``, ``remove_button``, ``up_button``,
    ``down_button``) and the selected step's parameters (``params``).

    ``bands()`` gives the chosen image's (band count, wavelengths or None), for the limits a
    new step starts with; ``edited(text)`` is called with the pipeline text after each edit,
    ``resized()`` when the editor's contents changed size.
    """

    def __init__(self, *, bands: Callable, edited: Callable[[str], None], resized=None):
        self.add_choice = ComboBox(
            name="add_choice", choices=[(TITLES[name], name) for name in STEPS], label="step"
        )
        self.add_button = PushButton(name="add_button", text="Add")
        self.remove_button = PushButton(name="remove_button", text="Remove")
        self.up_button = PushButton(name="up_button", text="Up")
        self.down_button = PushButton(name="down_button", text="Down")
        self.params = Container(name="params", labels=True)
        self._edit_row = edit_row = Container(
            name="edit_row",
            layout="horizontal",
            labels=False,
            widgets=[self.up_button, self.down_button, self.remove_button],
        )
        add_row = Container(
            name="add_row",
            layout="horizontal",
            labels=False,
            widgets=[self.add_choice, self.add_button],
        )
        super().__init__(
            name="steps_editor", label=" ", labels=False, widgets=[edit_row, add_row, self.params]
        )
        self.native.layout().setContentsMargins(0, 0, 0, 0)
        self.step_list = QListWidget()
        self.step_list.setObjectName("step_list")
        self.step_list.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.native.layout().insertWidget(0, self.step_list)  # above the buttons
        self._bands, self._edited = bands, edited
        self._resized = resized or (lambda: None)
        self.steps: list[Step] = []
        self._form = None  # (row, step name) the parameter form was built for
        self.step_list.setToolTip(
            "The spectral steps, applied from the top down; select one to set its parameters."
        )
        self.add_choice.tooltip = "A step to add after the selected one."
        self.add_button.tooltip = "Add the step chosen on the left after the selected step."
        self.remove_button.tooltip = (
            "Remove the selected step, when it changes the spectra in a way you do not want."
        )
        self.up_button.tooltip = (
            "Move the selected step earlier: order matters (e.g. despike before smoothing, "
            "normalise last)."
        )
        self.down_button.tooltip = "Move the selected step later: steps run from the top down."
        self.add_button.changed.connect(lambda: self.add(self.add_choice.value))
        self.remove_button.changed.connect(lambda: self.remove())
        self.up_button.changed.connect(lambda: self.move(-1))
        self.down_button.changed.connect(lambda: self.move(1))
        self.step_list.currentRowChanged.connect(lambda _row: self._show_params())
        self._set([], None)

    # -- what the list holds ---------------------------------------------------------------

    @property
    def selected(self) -> int | None:
        row = self.step_list.currentRow()
        return row if 0 <= row < len(self.steps) else None

    def select(self, index: int) -> None:
        self.step_list.setCurrentRow(index)

    def show_text(self, text: str) -> bool:
        """Show the steps of ``text`` (the entry's pipeline); False, changing nothing, when it
        does not parse (the entry's check says why)."""
        try:
            pipeline = Pipeline.parse(str(text)) if str(text).strip() else Pipeline()
        except PreprocessingError:
            pipeline = None
        # text the list cannot show is never overwritten by an edit: the editor waits,
        # empty (a list of the last steps that parsed would say they are what is used)
        self.enabled = pipeline is not None and pipeline.space == "none"
        if not self.enabled:
            self._set([], None)
            return False
        steps = list(pipeline.steps)
        if steps != self.steps:
            self._set(steps, self.selected)
        return True

    @property
    def text(self) -> str:
        """The pipeline text of the listed steps ('' for none)."""
        return " | ".join(step.spec for step in self.steps)

    # -- edits -----------------------------------------------------------------------------

    def add(self, name: str) -> Step:
        """Add step ``name`` after the selected step (at the end when none is), starting
        with limits and a window that fit the chosen image; it becomes the selected step."""
        at = len(self.steps) if self.selected is None else self.selected + 1
        step = default_step(name, *self._bands_at(at))
        self._set([*self.steps[:at], step, *self.steps[at:]], at, edited=True)
        return step

    def _bands_at(self, at: int):
        """(input band numbers, wavelengths) of the spectra as the first ``at`` steps leave
        them; the chosen image's own when those steps do not fit it (their error is shown
        when the image is clustered), (None, None) without an image."""
        n_bands, wavelengths = self._bands()
        if not n_bands:
            return None, None
        bound = self._bound(self.steps, at)
        if bound is None:
            return np.arange(n_bands), wavelengths
        return bound.bands, bound.wavelengths

    def _bound(self, steps: list[Step], at: int):
        """The first ``at`` of ``steps`` made ready for the chosen image's spectra; None
        without an image, or when they do not fit it."""
        n_bands, wavelengths = self._bands()
        if not n_bands:
            return None
        try:
            return Pipeline(tuple(steps[:at])).bind(n_bands, wavelengths)
        except PreprocessingError:
            return None

    def remove(self, index: int | None = None) -> None:
        """Remove the step at ``index`` (default: the selected one)."""
        index = self.selected if index is None else index
        if index is None or not 0 <= index < len(self.steps):
            return
        steps = self.steps[:index] + self.steps[index + 1 :]
        self._set(steps, min(index, len(steps) - 1) if steps else None, edited=True)

    def move(self, offset: int, index: int | None = None) -> None:
        """Move the step at ``index`` (default: the selected one) ``offset`` places."""
        index = self.selected if index is None else index
        if index is None:
            return
        to = min(max(index + offset, 0), len(self.steps) - 1)
        if to == index:
            return
        steps = list(self.steps)
        steps.insert(to, steps.pop(index))
        self._set(steps, to, edited=True)

    def set_params(self, index: int | None = None, **values) -> Step | None:
        """Change parameters of the step at ``index`` (default: the selected one), e.g.
        ``set_params(window=15)``; returns the new step, or None after a notification naming
        the step when the values do not make one (the step is kept as it was)."""
        index = self.selected if index is None else index
        if index is None or not 0 <= index < len(self.steps):
            return None
        old = self.steps[index]
        values = {**fields_of(old), **values}
        if old.name == "baseline" and values["method"] != old.args[0]:
            values["options"] = ""  # another method's options rarely fit: its defaults
        text = step_text(old.name, values)
        try:
            parsed = Pipeline.parse(text)
            if len(parsed.steps) != 1 or parsed.space != "none":
                raise PreprocessingError(f"{text}: one {old.name} step, please")
            step = parsed.steps[0]
            steps = list(self.steps)
            steps[index] = step
            self._check_fits(steps, index)
        except PreprocessingError as exc:
            show_error(f"Spectral steps: {exc}")
            self._show_params()  # the form shows the step as it still is
            return None
        self._set(steps, index, edited=True)
        return step

    def _check_fits(self, steps: list[Step], index: int) -> None:
        """Raise when ``steps[index]`` does not fit the spectra the steps before it leave of
        the chosen image (a savgol window longer than the bands, limits past them). Nothing
        is checked without an image, or when an earlier step already does not fit: the
        status line names that one."""
        if self._bound(steps, index) is not None:
            Pipeline(tuple(steps[: index + 1])).bind(*self._bands())

    # -- drawing ---------------------------------------------------------------------------

    def _set(self, steps: list[Step], selected: int | None, *, edited: bool = False) -> None:
        if edited and not self.enabled:
            return  # the entry holds text the list cannot show: it is not overwritten
        self.steps = steps
        self.step_list.blockSignals(True)
        self.step_list.clear()
        for i, step in enumerate(steps):
            self.step_list.addItem(f"{i + 1}. {step.spec}")
        if selected is not None and steps:
            self.step_list.setCurrentRow(min(selected, len(steps) - 1))
        self.step_list.blockSignals(False)
        rows = min(max(len(steps), 1), 6)  # the list as tall as its steps, up to six
        row = self.step_list.sizeHintForRow(0)  # -1 while the list is empty
        row = row if row > 0 else self.step_list.fontMetrics().height() + 4
        self.step_list.setFixedHeight(rows * row + 6)
        # no steps: only the Add row shows (a laptop screen has no room for an empty list)
        self.step_list.setVisible(bool(steps))
        self._edit_row.visible = bool(steps)
        self._show_params()
        if edited:
            self._edited(self.text)

    def _show_params(self) -> None:
        """The selected step's parameters as a form; edits apply when a field is left.

        The form is rebuilt only for another step: after an edit of this one its fields
        take the new values in place, so the field Tab moved to keeps the focus."""
        index = self.selected
        for button in (self.remove_button, self.up_button, self.down_button):
            button.enabled = index is not None
        step = None if index is None else self.steps[index]
        form = None if step is None else (index, step.name)
        if form is not None and form == self._form and self._refill(fields_of(step)):
            return
        self._form = form
        self.params.clear()
        self._resized()
        if step is None:
            return
        values = fields_of(step)
        if not values:
            # the form's label column names the step (it said "no params" before the text)
            self.params.append(Label(name="no_params", label=step.name, value="no parameters"))
            return
        for field, kind in FIELDS[step.name]:
            control = _control(field, kind, values[field])
            control.tooltip = TIPS[field]
            if hasattr(control.native, "setKeyboardTracking"):  # typing 15 is not 1 then 15
                control.native.setKeyboardTracking(False)
            if isinstance(control, LineEdit):
                control.native.editingFinished.connect(
                    lambda c=control, f=field: self._field_changed(f, c.value)
                )
            else:
                control.changed.connect(lambda value, f=field: self._field_changed(f, value))
            self.params.append(control)

    def _refill(self, values: dict) -> bool:
        """Put ``values`` in the form's fields without sending their signals; False when a
        field cannot hold its value (a method the menu lacks): the form is rebuilt."""
        controls = {control.name: control for control in self.params}
        if set(controls) != set(values):
            return False
        for field, value in values.items():
            control = controls[field]
            if isinstance(control, ComboBox) and value not in control.choices:
                return False
            if control.value == value:
                continue  # untouched: its text, cursor and selection stay as they are
            with control.changed.blocked():
                if isinstance(control, (SpinBox, FloatSpinBox)):
                    control.min, control.max = min(control.min, value), max(control.max, value)
                control.value = value
        return True

    def _field_changed(self, field: str, value) -> None:
        index = self.selected
        if index is None or fields_of(self.steps[index]).get(field) == value:
            return
        step = self.steps[index]

        def apply():  # only to the step it was typed for, if the list changed meanwhile
            if index < len(self.steps) and self.steps[index] is step:
                self.set_params(index, **{field: value})

        # applied once this handler returns: the form is rebuilt, and the control that
        # sent this signal must not be deleted while it is still emitting it
        later(self.native, apply)


def _control(field: str, kind: str, value):
    if kind == "bool":
        return CheckBox(name=field, value=value, label=field)
    # ranges and choices always hold the step's value, however it was typed
    if kind == "number":
        limit = max(1e12, abs(value))
        return FloatSpinBox(name=field, value=value, min=-limit, max=limit, step=1.0, label=field)
    if kind in ("int", "odd"):
        step = 2 if kind == "odd" else 1
        top = max(100_000, value)
        return SpinBox(name=field, value=value, min=min(0, value), max=top, step=step, label=field)
    if kind == "method":
        choices = BASELINES if value in BASELINES else (*BASELINES, value)
        return ComboBox(name=field, value=value, choices=choices, label=field)
    return LineEdit(name=field, value=value, label=field)
