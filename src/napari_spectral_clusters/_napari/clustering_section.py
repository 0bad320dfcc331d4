"""The widget's *Clustering* section: k with *Suggest k*, what is compared (features and
spectral steps with their editor), colours, seed, keeping ids, Run/Cancel, progress and the
status line. The controls only: the clustering widget connects them to its actions."""

from __future__ import annotations

from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    LineEdit,
    ProgressBar,
    PushButton,
    SpinBox,
)

from ..spectral import import_ahead
from .sections import StatusLabel
from .steps_editor import StepsEditor

__all__ = ["ClusteringSection"]


class ClusteringSection(Container):
    """``n_clusters``, ``suggest_button``, ``use_k_button``, ``preprocessing``, ``steps``,
    ``steps_editor``, ``preview_button``, ``palette``, ``random_state``, ``keep_ids``,
    ``run_button``, ``cancel_button``, ``progress_bar`` and ``status``.

    ``bands()``, ``steps_edited(text)`` and ``resized()`` are the steps editor's (see
    :class:`StepsEditor`).
    """

    def __init__(self, *, bands, steps_edited, resized):
        self.n_clusters = SpinBox(name="n_clusters", label="clusters", value=8, min=1, max=255)
        self.suggest_button = PushButton(name="suggest_button", text="Suggest k")
        self.use_k_button = PushButton(name="use_k_button", text="Use k", visible=False)
        self.preprocessing = ComboBox(
            name="preprocessing",
            label="features",
            choices=[
                ("as given", "none"),
                ("standardised bands", "standardize"),
                ("spectral shape (unit length)", "unit"),
                ("principal components", "pca"),
            ],
        )
        self.steps = LineEdit(name="steps", label="spectral steps", value="")
        self.steps.native.setPlaceholderText("none, or e.g. despike | savgol(9, 2) | snv")
        # shown once there are steps to preview (a laptop screen has no row to spare)
        self.preview_button = PushButton(
            name="preview_button", text="Preview steps", visible=False
        )
        self.steps_editor = StepsEditor(bands=bands, edited=steps_edited, resized=resized)
        self.palette = ComboBox(
            name="palette",
            label="colours",
            choices=[("true colour / centre colour", "auto"), ("categorical", "categorical")],
        )
        self.random_state = SpinBox(
            name="random_state", label="seed", value=0, min=0, max=2**31 - 1
        )
        self.keep_ids = CheckBox(name="keep_ids", text="keep cluster ids", value=True)
        self.run_button = PushButton(name="run_button", text="Run")
        self.cancel_button = PushButton(name="cancel_button", text="Cancel", enabled=False)
        # what the running job is doing, beside napari's own progress bar (activity panel)
        self.progress_bar = ProgressBar(name="progress_bar", label=" ", visible=False)
        self.status = StatusLabel(name="status", value="")  # a sentence, wrapped
        tips = {
            self.n_clusters: (
                "How many clusters (materials) to look for. Not sure? Press Suggest k; raise it "
                "when two materials share a cluster, lower it when one is split. Up to 255 "
                "here, where each needs a colour you can tell apart (the command line, "
                "spectral-clusters run -k, takes more)."
            ),
            self.suggest_button: (
                "Cluster a sample for k = 2..12 and plot the inertia (and silhouette): the "
                "suggested k is the elbow, where more clusters stop paying (a few seconds)."
            ),
            self.use_k_button: "Set the number of clusters to the suggested k.",
            self.preprocessing: (
                "What is compared: the values as given; each band standardised (bands of "
                "different scales count alike); spectral shape only (brightness ignored); or "
                "the leading principal components (faster on many bands)."
            ),
            self.steps: (
                "Steps applied to every spectrum before clustering, joined by '|': "
                "range(lo, hi) and drop(lo, hi) in nm, savgol(window, order, deriv=0), "
                "baseline(asls, lam=1e5), despike, snv, vector, area, max, minmax. Saved "
                "with the model. Change it when baselines, spikes or brightness decide the "
                "clusters instead of the materials."
            ),
            self.preview_button: (
                "Plot the mean spectrum of a sample (and the last Shift-clicked pixel) "
                "before and after the spectral steps."
            ),
            self.palette: (
                "Cluster colours: the true colour of each mean spectrum (or the centre's own "
                "colour for pictures), or distinct categorical colours."
            ),
            self.random_state: (
                "Seed of the random starts: the same seed and settings give the same result. "
                "Change it to check that a clustering does not depend on its start."
            ),
            self.keep_ids: (
                "On a re-run of the same layer, clusters that match the last run's (nearest "
                "centres, Hungarian matching) keep their ids, names and colours; new ones get "
                "new ids (a change of colours numbers them anew). Turn off to number them by "
                "size again (1 = largest)."
            ),
            self.run_button: "Cluster the image; the result layers appear above it.",
            self.cancel_button: "Stop the running clustering; nothing is changed.",
            self.progress_bar: "How far the running job is (stage and blocks done).",
            self.status: "What the last run did.",
        }
        for control, tip in tips.items():
            control.tooltip = tip
        self.steps.changed.connect(self.steps_editor.show_text)
        self.steps.changed.connect(import_ahead)  # ready by the time the steps are checked
        self.steps.changed.connect(
            lambda text: setattr(self.preview_button, "visible", bool(str(text).strip()))
        )
        clusters_row = Container(
            name="clusters_row",
            label="clusters",
            layout="horizontal",
            labels=False,
            widgets=[self.n_clusters, self.suggest_button, self.use_k_button],
        )
        self.run_row = run_row = Container(
            name="run_row",
            label=" ",  # no label beside the buttons (an empty one shows the name)
            layout="horizontal",
            labels=False,
            widgets=[self.run_button, self.cancel_button],
        )
        super().__init__(
            name="clustering_section",
            widgets=[
                clusters_row,
                self.preprocessing,
                self.steps,
                self.steps_editor,
                self.preview_button,
                self.palette,
                self.random_state,
                self.keep_ids,
                run_row,
                self.progress_bar,
                self.status,
            ],
        )
