"""Flux Engine for Krita: a docker that generates FLUX.1 images into new paint layers, edits a
layer (or the selection's contents) with Kontext and redraws it with image-to-image.

Everything runs in Krita's process: the engine's worker thread (inside libflux_engine) computes,
and Krita's GUI thread only submits jobs and polls their events from a QTimer.
"""

from krita import DockWidgetFactory, DockWidgetFactoryBase, Krita

from .docker import DOCKER_ID, FluxDocker

Krita.instance().addDockWidgetFactory(
    DockWidgetFactory(DOCKER_ID, DockWidgetFactoryBase.DockRight, FluxDocker)
)
