"""Pixels between Krita documents and the engine.

Krita keeps an 8-bit RGBA layer as B, G, R, A bytes, the layout of the engine's BGRA8 images, so
pixels cross without conversion. Other colour models and depths are refused with a message that
says how to convert the document (Image ▸ Convert Image Color Space); the engine works in sRGB.
"""

import json

from PyQt5.QtCore import QByteArray, QRect

from .flux_engine import Image, PixelFormat

ANNOTATION = "flux-engine"
SIZE_STEP = 16


class CanvasError(Exception):
    """A document the engine cannot work on, with the sentence to show."""


def check_color_space(doc):
    """Raises ``CanvasError`` unless ``doc`` is 8-bit RGBA."""
    if doc is None:
        raise CanvasError("Open or create a document first.")
    if (doc.colorModel(), doc.colorDepth()) != ("RGBA", "U8"):
        raise CanvasError(
            f"The document is {doc.colorModel()} {doc.colorDepth()}; Flux Engine works on 8-bit "
            "RGBA. Convert it (Image ▸ Convert Image Color Space: RGB/Alpha, 8-bit integer)."
        )
    profile = doc.colorProfile()
    if profile and "srgb" not in profile.lower():
        raise CanvasError(
            f"The document's profile is {profile}; Flux Engine works in sRGB. Convert it to an "
            "sRGB profile first."
        )


def source_rect(doc):
    """The region an edit or image-to-image reads: the selection's bounds, else the whole
    canvas, shrunk to multiples of 16 pixels (the model's grid) around its centre."""
    sel = doc.selection()
    if sel is not None and sel.width() > 0 and sel.height() > 0:
        rect = QRect(sel.x(), sel.y(), sel.width(), sel.height())
    else:
        rect = QRect(0, 0, doc.width(), doc.height())
    rect = rect.intersected(QRect(0, 0, doc.width(), doc.height()))
    w, h = rect.width() // SIZE_STEP * SIZE_STEP, rect.height() // SIZE_STEP * SIZE_STEP
    if w == 0 or h == 0:
        raise CanvasError(f"The region is {rect.width()}×{rect.height()}; it needs 16×16 or more.")
    return QRect(rect.x() + (rect.width() - w) // 2, rect.y() + (rect.height() - h) // 2, w, h)


def read_image(node, rect):
    """The pixels of ``node`` inside ``rect`` as an engine image (BGRA8, copied)."""
    data = bytes(node.pixelData(rect.x(), rect.y(), rect.width(), rect.height()))
    return Image(rect.width(), rect.height(), PixelFormat.BGRA8, data)


def add_layer(doc, name, bgra, rect, params, above=None):
    """Adds a paint layer ``name`` over ``above`` (else at the top) holding ``bgra`` (BGRA8
    bytes) at ``rect``, and records ``params`` in the document's ``flux-engine`` annotation.
    Returns the layer."""
    node = doc.createNode(name, "paintlayer")
    parent = above.parentNode() if above is not None else None
    if parent is not None:
        parent.addChildNode(node, above)
    else:
        doc.rootNode().addChildNode(node, None)
    node.setPixelData(QByteArray(bgra), rect.x(), rect.y(), rect.width(), rect.height())
    history = generations(doc)
    history.append(dict(params, layer=name))
    doc.setAnnotation(
        ANNOTATION, "Flux Engine generation parameters", QByteArray(json.dumps(history).encode())
    )
    doc.setActiveNode(node)
    doc.refreshProjection()
    return node


def generations(doc):
    """The parameters of every generation recorded in ``doc`` (oldest first)."""
    raw = bytes(doc.annotation(ANNOTATION) or b"")
    try:
        return list(json.loads(raw.decode())) if raw else []
    except ValueError:
        return []


def layer_name(kind, params):
    """A layer name that says how it was made: ``FLUX generate: a lighthouse (seed 7, 28
    steps, guidance 3.5)``."""
    prompt = params["prompt"] if len(params["prompt"]) <= 40 else params["prompt"][:39] + "…"
    extra = f", strength {params['strength']:g}" if "strength" in params else ""
    return (
        f"FLUX {kind}: {prompt} (seed {params['seed']}, {params['steps']} steps, "
        f"guidance {params['guidance']:g}{extra})"
    )
