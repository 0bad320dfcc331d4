"""The widget's *Input* section: which layer, which axis holds its bands (and what "auto"
chose), its wavelengths, a mask, and a true/false-colour view of a cube."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from magicgui.widgets import ComboBox, Container, LineEdit, PushButton, Select, create_widget
from napari.layers import Image, Labels, Shapes
from napari.utils.notifications import show_error, show_info

from ..color import spectra_to_rgb
from ..stacking import stack_channels
from ..wavelengths import given_wavelengths, parse_wavelength_range
from .band_readout import refresh_bands
from .layer_rules import (
    features_of,
    n_features,
    spatial_axes,
    spatial_shape,
    sub_transform,
    wavelengths_of,
)
from .result_layers import made_by_us, put_layer, top_result
from .sections import narrow

if TYPE_CHECKING:
    import napari

__all__ = ["InputSection"]


class InputSection(Container):
    """``image``, ``channel_axis``, ``wavelengths``, ``mask`` and ``true_colour_button``."""

    def __init__(self, viewer: napari.viewer.Viewer, *, wavelengths_given=None):
        self._viewer = viewer
        # told (layer, wavelengths) when wavelengths are entered for a layer
        self._wavelengths_given = wavelengths_given or (lambda layer, wl: None)
        self.image = create_widget(annotation=Image, name="image", label="image")
        self.channel_axis = ComboBox(
            name="channel_axis", label="band axis", choices=self._axis_choices
        )
        self.wavelengths = LineEdit(name="wavelengths", label="wavelengths", value="")
        self.wavelengths.native.setPlaceholderText("first-last nm, e.g. 401-889")
        self.mask = ComboBox(name="mask", label="only inside", choices=self._mask_choices)
        self.together = Select(
            name="together", label="together with", choices=self._together_choices
        )
        self.together.native.setMaximumHeight(72)  # a few rows: the list scrolls
        for menu in (self.image, self.mask):  # layers are often named after long file names
            narrow(menu, 12)
        self.true_colour_button = PushButton(name="true_colour_button", text="True-colour view")
        self.stack_button = PushButton(name="stack_button", text="Stack selected layers")
        super().__init__(
            name="input_section",
            widgets=[
                self.image,
                self.channel_axis,
                self.wavelengths,
                self.mask,
                self.together,
                Container(
                    name="view_row",
                    label=" ",
                    layout="horizontal",
                    labels=False,
                    widgets=[self.true_colour_button, self.stack_button],
                ),
            ],
        )
        self._wavelengths_shown = ""  # what the entry shows of the layer's own wavelengths
        self.image.tooltip = "The image layer to cluster: a spectral cube, a picture or any image."
        self.channel_axis.tooltip = (
            "Which axis holds the bands (or colours). 'auto' takes the reader's band axis, "
            "or the colour axis of an RGB picture; pick one when auto chose wrong."
        )
        self.mask.tooltip = (
            "Cluster only the pixels inside this Labels or Shapes layer (drawn over this "
            "image); the others get label 0."
        )
        self.together.tooltip = (
            "Other image layers with the same bands to cluster in one go with this one "
            "(Ctrl/Shift-click for several): one clustering of all their pixels, so a cluster "
            "id means the same material in every layer. Leave empty to cluster this one alone."
        )
        self.wavelengths.tooltip = (
            "The bands' wavelengths, when the file does not give them: the first and "
            "last in nm (e.g. 401-889), spread evenly over the bands. Kept in the layer's "
            "metadata, used by the plot, true colour and saved files."
        )
        self.true_colour_button.tooltip = (
            "Add an RGB view of the cube: CIE true colour from the wavelengths when known, "
            "else a false-colour picture of its leading principal components."
        )
        self.stack_button.tooltip = (
            "Stack the single-channel image layers selected in the layer list (same shape; "
            "e.g. a lambda stack a reader split into channels) into one cube layer, bands "
            'ordered by the wavelengths their names or metadata give ("520 nm"), lazily.'
        )
        self.stack_button.changed.connect(lambda: self.stack_selected())
        self.wavelengths.native.editingFinished.connect(lambda: self.set_wavelengths())
        self.true_colour_button.changed.connect(lambda: self.true_colour())
        self.image.changed.connect(self.channel_axis.reset_choices)
        self.image.changed.connect(self.together.reset_choices)
        self.image.changed.connect(self._show_wavelengths)

    def features(self) -> tuple[int | None, bool]:
        """The chosen layer's band (or colour) axis and whether it carries alpha."""
        return features_of(self.image.value, self.channel_axis.value)

    def set_wavelengths(self, text: str | None = None) -> np.ndarray | None:
        """Give the chosen cube wavelengths from "first-last" (nm), evenly spread over its
        bands, kept in its metadata; returns them (None, after saying why, when they cannot
        be). An empty entry changes nothing."""
        text = self.wavelengths.value if text is None else text
        layer = self.image.value
        if not str(text).strip() or layer is None or text == self._wavelengths_shown:
            return None  # nothing entered, or the layer's own (perhaps uneven) wavelengths
        channel_axis, _ = features_of(layer, self.channel_axis.value)
        if channel_axis is None or layer.rgb:
            show_error(f"{layer.name} has no band axis to give wavelengths to.")
            return None
        entered = str(layer.metadata.get("wavelength_source", "")).startswith("entered")
        if layer.metadata.get("wavelengths") is not None and not entered:
            show_error(
                f"{layer.name} has its file's own wavelengths; they are kept, not replaced by "
                "an even spread."
            )
            self._show_wavelengths()
            return None
        try:
            first, last = parse_wavelength_range(text)
        except ValueError as exc:
            show_error(str(exc))
            return None
        n = layer.data.shape[channel_axis]
        given = given_wavelengths(first, last, n, "entered in the widget")
        layer.metadata = {**layer.metadata, **given}
        wl = given["wavelengths"]
        show_info(f"{layer.name}: {n} bands from {first:g} to {last:g} nm")
        self._wavelengths_shown = f"{first:g}-{last:g}"
        self.wavelengths.value = self._wavelengths_shown
        self.channel_axis.reset_choices()
        refresh_bands(self._viewer)  # the band slider says the wavelength now
        self._wavelengths_given(layer, wl)
        return wl

    def _show_wavelengths(self, *_):
        """The chosen layer's wavelengths as the entry shows them."""
        layer = self.image.value
        wl = None if layer is None else layer.metadata.get("wavelengths")
        text = ""
        if wl is not None and np.size(wl) >= 2:
            wl = np.asarray(wl, dtype=float).ravel()
            text = f"{wl[0]:g}-{wl[-1]:g}"
        self._wavelengths_shown = text
        self.wavelengths.value = text

    def _axis_choices(self, _widget=None) -> list[tuple[str, object]]:
        """ "auto" (the reader's band axis, or the colour axis), or any axis of the layer."""
        layer = self.image.value
        if layer is None or layer.rgb:
            return [("auto (colour)" if layer is not None else "auto", "auto")]
        names = tuple(getattr(layer, "axis_labels", ())) or tuple(map(str, range(layer.ndim)))
        chosen, _ = features_of(layer, "auto")  # say what auto chose
        if chosen is None:
            choices: list[tuple[str, object]] = [("auto (greyscale)", "auto")]
        else:
            axis = chosen % layer.ndim
            name = names[axis] if not names[axis].lstrip("-").isdigit() else f"axis {axis}"
            choices = [(f"auto ({name}: {layer.data.shape[axis]} bands)", "auto")]
        choices.append(("none (greyscale)", "none"))
        choices += [(f"{axis}: {name}", axis) for axis, name in enumerate(names)]
        return choices

    def _together_choices(self, _widget=None) -> list[tuple[str, object]]:
        """Image layers that can share the chosen layer's clusters: the same number of
        channels (bands, or colours), not one of our results."""
        chosen = self.image.value
        if chosen is None:
            return []
        axis, alpha = self.features()
        n = n_features(chosen, axis, alpha)
        found = []
        for layer in self._viewer.layers:
            if not isinstance(layer, Image) or layer is chosen:
                continue
            if made_by_us(layer):
                continue
            other_axis, other_alpha = features_of(layer)
            if n_features(layer, other_axis, other_alpha) == n:
                found.append((layer.name, layer))
        return found

    def stack_selected(self, layers=None):
        """The selected single-channel image layers (or ``layers``) as one cube layer, band
        axis first, chosen for clustering; returns it (None, after saying why, when they
        cannot be stacked)."""
        chosen = list(self._viewer.layers.selection) if layers is None else list(layers)
        chosen = [layer for layer in self._viewer.layers if layer in chosen]  # list order
        planes = [layer for layer in chosen if isinstance(layer, Image) and not layer.rgb]
        if len(planes) < 2 or len(planes) != len(chosen):
            show_error(
                "Stack selected layers: select two or more single-channel image layers "
                "(not RGB pictures) in the layer list."
            )
            return None
        try:
            cube, wavelengths = stack_channels(
                [layer.data for layer in planes],
                [layer.name for layer in planes],
                [layer.metadata for layer in planes],
            )
        except ValueError as exc:
            show_error(f"Stack selected layers: {exc}")
            return None
        first = planes[0]
        meta = {"channel_axis": 0, "stacked_from": [layer.name for layer in planes]}
        if wavelengths is not None:
            meta |= {"wavelengths": wavelengths, "wavelength_unit": "nm"}
        name = f"{first.name} … {planes[-1].name} ({len(planes)} bands)"
        layer = self._viewer.add_image(
            cube,
            name=name,
            metadata=meta,
            scale=(1, *first.scale),
            translate=(0, *first.translate),
            axis_labels=("band", *first.axis_labels[-first.ndim :])
            if hasattr(first, "axis_labels")
            else None,
        )
        for plane in planes:  # the cube shows instead of its channels, which stay as they are
            plane.visible = False
        self.image.reset_choices()
        self.image.value = layer
        said = "" if wavelengths is None else f", {wavelengths[0]:g}-{wavelengths[-1]:g} nm"
        show_info(f"{len(planes)} layers stacked into one cube{said}")
        return layer

    def together_layers(self) -> list:
        """The layers chosen under *together with* that are still in the viewer."""
        return [layer for layer in self.together.value if layer in self._viewer.layers]

    def _mask_choices(self, _widget=None) -> list[tuple[str, object]]:
        """No mask, or any Labels/Shapes layer that is not one of our results."""
        layers = [
            layer
            for layer in self._viewer.layers
            if isinstance(layer, Labels | Shapes) and not made_by_us(layer)
        ]
        return [("everywhere", None)] + [(layer.name, layer) for layer in layers]

    def mask_array(self):
        """The chosen mask as a boolean array over the source's pixels; None for no mask;
        False (after telling the user) when it does not fit the image."""
        layer, source = self.mask.value, self.image.value
        if layer is None or source is None:
            return None
        channel_axis, _ = self.features()
        spatial = spatial_shape(source.data.shape, source.rgb, channel_axis)
        if isinstance(layer, Shapes):
            return layer.to_labels(labels_shape=spatial) > 0
        data = np.asarray(layer.data)
        if data.shape != spatial:
            show_error(
                f"The mask {layer.name} is {data.shape}, the image's pixels are {spatial}: "
                "choose a mask drawn over this image."
            )
            return False
        return data > 0

    def true_colour(self):
        """Add the chosen cube as an RGB picture of the same (y, x): true colour where its
        wavelengths cover the visible, false colour otherwise (the notification says which)."""
        layer = self.image.value
        if layer is None or layer.rgb:
            show_error("Choose a spectral cube (not an RGB image) for a true-colour view.")
            return None
        channel_axis, _ = self.features()
        if channel_axis is None:
            show_error(f"{layer.name} has no band axis: choose one under 'band axis'.")
            return None
        data = np.asarray(layer.data)
        rendering = spectra_to_rgb(
            data, wavelengths_of(layer, data, channel_axis), channel_axis=channel_axis
        )
        keep = spatial_axes(layer, channel_axis)
        kind = "true colour" if rendering.coverage > 0 else "false colour"  # named as it is
        # above the cube's results, and the active layer: just above its cube it lay under
        # that cube's opaque clusters and recoloured picture, and the button seemed to do
        # nothing (not above the user's shapes or points: it would hide them)
        name = f"{layer.name} {kind}"
        top = top_result(self._viewer, layer, besides=(name,))
        out = put_layer(
            self._viewer,
            name,
            "image",
            rendering.rgb,
            dict(
                rgb=True,
                metadata={"rendering": rendering.method, "spectral_clusters_source": layer.name},
                **sub_transform(layer, keep),
            ),
            above=top,
        )
        self._viewer.layers.selection.active = out
        show_info(f"{layer.name}: {rendering.method}")
        return out
