"""Drives the Flux Engine docker inside real Krita (started under Xvfb by ffi/tests/hosts.rs,
with this plugin and the packaged one enabled), then quits Krita.

With FLUX_TEST_MODEL (the tiny model) and FLUX_TEST_EXPECTED (the Rust API's RGB8 pixels for
the reference request) it: opens a 64×48 RGBA document, generates into a layer whose pixels
must equal the expected ones, edits that layer (Kontext) and redraws it (image-to-image) into new
layers, cancels a running job, has a bad size refused with a message and then generates again,
refuses a 16-bit document, and saves a screenshot of the docker. The outcome ("PASS" or the
failure) goes to FLUX_TEST_OUT/krita-result.txt; Krita's own exit code says it quit cleanly.
"""

import os
import pathlib
import time
import traceback

from krita import Extension, Krita
from PyQt5.QtCore import QTimer
from PyQt5.QtWidgets import QApplication

from flux_engine_krita.canvas import generations

OUT = pathlib.Path(os.environ.get("FLUX_TEST_OUT", "."))
REFERENCE = dict(prompt="a red lighthouse at dusk", seed=7, steps=3, t5_length=32)


def wait(docker, seconds=120):
    """Lets Krita's event loop run (the docker's QTimer polls the job) until the job ends."""
    deadline = time.monotonic() + seconds
    while docker.session.busy:
        assert time.monotonic() < deadline, "the job did not finish"
        QApplication.processEvents()
        time.sleep(0.01)
    QApplication.processEvents()
    return docker.status.text()


def fill(docker, prompt, seed, steps, t5_length):
    docker.prompt.setText(prompt)
    docker.random_seed.setChecked(False)
    docker.seed.setText(str(seed))
    docker.steps.setValue(steps)
    docker.t5_length.setValue(t5_length)
    docker.guidance.setValue(3.5)


def rgb_of(layer, doc):
    """The layer's pixels as RGB8 (Krita keeps 8-bit RGBA as B, G, R, A)."""
    bgra = bytes(layer.pixelData(0, 0, doc.width(), doc.height()))
    rgb = bytearray(len(bgra) // 4 * 3)
    rgb[0::3], rgb[1::3], rgb[2::3] = bgra[2::4], bgra[1::4], bgra[0::4]
    return bytes(rgb)


def show(doc):
    """Opens ``doc`` in a view of the window and makes that view the active one."""
    window = Krita.instance().activeWindow()
    window.showView(window.addView(doc))
    QApplication.processEvents()


def layers(doc):
    return [n.name() for n in doc.topLevelNodes()]


def run_job(docker, doc, start):
    """Runs ``start()`` (a docker action) to its end; returns the status and the layer it added.
    (Under Xvfb, with no window manager, Krita's view never becomes current, so neither
    ``setActiveNode`` nor Krita's own layer actions change the active layer: the test hands
    the docker its layer instead of clicking it.)"""
    before = {n.uniqueId() for n in doc.topLevelNodes()}
    start()
    status = wait(docker)
    added = [n for n in doc.topLevelNodes() if n.uniqueId() not in before]
    return status, (added[0] if added else None)


def run_checks():
    k = Krita.instance()
    docker = next(d for d in k.dockers() if d.objectName() == "flux_engine_docker")
    docker.model.setText(os.environ["FLUX_TEST_MODEL"])
    doc = k.createDocument(64, 48, "flux-test", "RGBA", "U8", "", 72.0)
    show(doc)
    assert k.activeDocument().name() == "flux-test", "the new document is active"

    # Generate: a new layer whose pixels are the library's for the same request.
    fill(docker, **REFERENCE)
    status, layer = run_job(docker, doc, docker.generate)
    assert status.startswith("Done: 64×48"), status
    assert layer.name().startswith("FLUX generate: a red lighthouse at dusk (seed 7, 3 steps"), (
        layers(doc)
    )
    expected = pathlib.Path(os.environ["FLUX_TEST_EXPECTED"]).read_bytes()
    assert rgb_of(layer, doc) == expected, "the layer's pixels differ from the library's"
    record = generations(doc)[-1]
    assert (record["seed"], record["steps"], record["width"]) == (7, 3, 64), record

    # Edit the layer (Kontext) and redraw it (image-to-image): each a new layer over it.
    docker.prompt.setText("make it night")
    status, edited = run_job(docker, doc, lambda: docker.edit(layer))
    assert status.startswith("Done: 64×48"), status
    assert edited.name().startswith("FLUX edit: make it night"), layers(doc)
    assert rgb_of(edited, doc) != expected, "the edit changed the picture"
    docker.strength.setValue(50)
    status, redrawn = run_job(docker, doc, lambda: docker.image_to_image(layer))
    assert status.startswith("Done: 64×48"), status
    assert "strength 0.5" in redrawn.name(), layers(doc)
    assert len(generations(doc)) == 3

    # Cancel a running job: no layer is added.
    fill(docker, "a long job", 1, 200, 32)
    status, added = run_job(docker, doc, lambda: (docker.generate(), docker.session.cancel()))
    assert (status, added) == ("Cancelled", None), (status, layers(doc))

    # A bad size is refused with a message; the next job still works.
    docker.fit_canvas.setChecked(False)
    docker.width_box.setValue(100)
    docker.height_box.setValue(48)
    fill(docker, **REFERENCE)
    docker.generate()
    text = docker.status.text()
    assert not docker.session.busy and text.startswith("Not started:") and "100" in text, text
    docker.fit_canvas.setChecked(True)
    status, again = run_job(docker, doc, docker.generate)
    assert status.startswith("Done"), status
    assert rgb_of(again, doc) == expected, "the job after the refusal"
    docker.grab().save(str(OUT / "krita-docker.png"))
    k.activeWindow().qwindow().grab().save(str(OUT / "krita-window.png"))

    # A 16-bit document is refused with a message that says how to convert it.
    deep = k.createDocument(32, 32, "deep", "RGBA", "U16", "", 72.0)
    show(deep)
    docker.generate()
    assert "8-bit" in docker.status.text() and not docker.session.busy, docker.status.text()
    deep.close()
    docker.session.shutdown()
    doc.setModified(False)


class FluxEngineTest(Extension):
    def setup(self):
        pass

    def createActions(self, window):
        # The window exists now; run once the event loop has shown it.
        QTimer.singleShot(1000, self.run)

    def run(self):
        try:
            run_checks()
            outcome = "PASS"
        except BaseException:
            outcome = "FAIL\n" + traceback.format_exc()
        (OUT / "krita-result.txt").write_text(outcome)
        for document in Krita.instance().documents():
            document.setModified(False)
        QTimer.singleShot(200, lambda: Krita.instance().action("file_quit").trigger())


Krita.instance().addExtension(FluxEngineTest(Krita.instance()))
