"""The widget's *Reuse and scale* section: save a clustering as a model, apply a saved one,
and the dask scheduler to cluster on."""

from __future__ import annotations

from pathlib import Path

from magicgui.widgets import Container, FileEdit, LineEdit, PushButton
from napari.utils.notifications import show_error, show_info

from ..model import ClusterModel, ModelError

__all__ = ["ReuseSection"]


class ReuseSection(Container):
    """``model_file``, ``save_model_button``, ``apply_model_button`` and ``scheduler``.

    ``current_model()`` gives the model *Save model* writes (``no_model()`` says why there
    is none); ``apply(model, path)`` labels the chosen image with a loaded one."""

    def __init__(self, *, current_model, no_model, apply):
        # an existing model to apply (an open dialog); Save model asks where with a save dialog
        self.model_file = FileEdit(name="model_file", label="model", mode="r", filter="*.npz")
        self.save_model_button = PushButton(name="save_model_button", text="Save model")
        self.apply_model_button = PushButton(name="apply_model_button", text="Apply model")
        self.scheduler = LineEdit(name="scheduler", label="dask scheduler", value="")
        self.scheduler.native.setPlaceholderText("this machine (or tcp://host:8786)")
        super().__init__(
            name="reuse_section",
            widgets=[
                self.model_file,
                self.save_model_button,
                self.apply_model_button,
                self.scheduler,
            ],
        )
        self._current_model, self._no_model, self._apply = current_model, no_model, apply
        self.model_file.tooltip = (
            "The .npz file a clustering is saved to, or applied from; leave it empty to be "
            "asked with a file dialog."
        )
        self.save_model_button.tooltip = (
            "Save the shown clustering (centres, steps, wavelengths, colours), to label other "
            "images of the same kind alike later."
        )
        self.apply_model_button.tooltip = (
            "Label this image with a saved clustering (same bands), without fitting anew: use "
            "it for a series, so a cluster means the same material in every image."
        )
        self.scheduler.tooltip = (
            "Address of a dask.distributed scheduler (tcp://host:8786) to cluster on, block by "
            "block, with progress from the cluster. Empty: this machine (or the dask client "
            "already active in this session)."
        )
        self.save_model_button.changed.connect(lambda: self.model_button("save"))
        self.apply_model_button.changed.connect(lambda: self.model_button("apply"))

    def model_button(self, action: str):
        """Save model / Apply model: the model field's file when it names one, else a save or
        open dialog (cancelling it does nothing)."""
        from qtpy.QtWidgets import QFileDialog

        field = str(self.model_file.value).strip()
        path = field if _names_a_file(field) else None  # "." (FileEdit's empty) is a folder
        if path is None:
            if action == "save":
                if self._current_model() is None:
                    return self.save_model()  # says why there is nothing to save
                path, _ = QFileDialog.getSaveFileName(
                    self.native, "Save the clustering", "clustering.npz", "Models (*.npz)"
                )
            else:
                path, _ = QFileDialog.getOpenFileName(
                    self.native, "Apply a saved clustering", "", "Models (*.npz)"
                )
            if not path:
                return None
            self.model_file.value = path
        return self.save_model(path) if action == "save" else self.apply_model(path)

    def save_model(self, path=None):
        """Save the last clustering (centres, preprocessing, wavelengths) to ``path`` (default:
        the model file field) as a small ``.npz``, to apply to other layers or files."""
        path = path or self.model_file.value
        model = self._current_model()
        if model is None:
            show_error(self._no_model())
            return None
        if not _names_a_file(path):
            show_error("Choose a file name (.npz) to save the model to.")
            return None
        try:
            written = model.save(path)
        except (OSError, ValueError) as exc:
            show_error(f"Cannot save the model to {Path(path).name}: {exc}")
            return None
        show_info(f"Saved the clustering to {written}")
        return written

    def apply_model(self, path=None, **kwargs):
        """Load the model in ``path`` (default: the model file field) and apply it; a missing
        or damaged file is a notification."""
        path = path or self.model_file.value
        if not _names_a_file(path):
            show_error("Choose a model file (.npz, from Save model) to apply.")
            return None
        try:
            model = ClusterModel.load(path)
        except (ModelError, OSError) as exc:
            show_error(f"Cannot use the model {Path(path).name}: {exc}")
            return None
        return self._apply(model, path, **kwargs)


def _names_a_file(path) -> bool:
    """``path`` is a file name: not empty, not a folder."""
    return bool(str(path).strip()) and not Path(path).is_dir()
