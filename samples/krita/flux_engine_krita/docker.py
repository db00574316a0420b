"""The Flux Engine docker: settings, prompt and parameters, Generate / Edit / Image to Image,
progress with a live preview, and Cancel.

Results become new paint layers named after their parameters, which the document's
``flux-engine`` annotation also keeps. The docker polls the session from a QTimer, so Krita's GUI
thread never waits for the engine.
"""

import random

from krita import DockWidget, Krita
from PyQt5.QtCore import QRect, Qt, QTimer
from PyQt5.QtGui import QImage, QPixmap
from PyQt5.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QSlider,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from . import canvas
from . import flux_engine as fe
from .session import Listener, Session

DOCKER_ID = "flux_engine_docker"
SETTINGS = "flux_engine"
TICK_MS = 50
PREVIEW_SIZE = 256


class FluxDocker(DockWidget):
    def __init__(self):
        super().__init__()
        self.setObjectName(DOCKER_ID)
        self.setWindowTitle("Flux Engine")
        self.session = Session(Listener(progress=self._progress, preview=self._preview))
        self.timer = QTimer(self)
        self.timer.setInterval(TICK_MS)
        self.timer.timeout.connect(self._tick)
        root = QWidget(self)
        layout = QVBoxLayout(root)
        layout.addWidget(self._settings_box())
        layout.addWidget(self._job_box())
        layout.addLayout(self._buttons())
        self.progress_bar = QProgressBar()
        self.status = QLabel("Ready")
        self.status.setWordWrap(True)
        self.preview_label = QLabel()
        self.preview_label.setAlignment(Qt.AlignCenter)
        self.preview_label.setMinimumHeight(PREVIEW_SIZE // 2)
        for widget in (self.progress_bar, self.status, self.preview_label):
            layout.addWidget(widget)
        layout.addStretch(1)
        self.setWidget(root)

    # ---- widgets

    def _settings_box(self):
        box = QGroupBox("Model")
        form = QFormLayout(box)
        self.model = QLineEdit(Krita.instance().readSetting(SETTINGS, "model_folder", ""))
        self.model.setPlaceholderText("FLUX folder, or a .safetensors / .gguf transformer")
        browse = QPushButton("…")
        browse.clicked.connect(self._browse)
        row = QHBoxLayout()
        row.addWidget(self.model, 1)
        row.addWidget(browse)
        form.addRow("Model", row)
        self.device = QComboBox()
        self.device.addItems(["CPU", "CUDA"])
        self.device.setCurrentText(Krita.instance().readSetting(SETTINGS, "device", "CPU"))
        form.addRow("Device", self.device)
        self.loras = QLineEdit(Krita.instance().readSetting(SETTINGS, "loras", ""))
        self.loras.setPlaceholderText("style.safetensors:0.8; other.safetensors")
        form.addRow("LoRAs", self.loras)
        return box

    def _job_box(self):
        box = QGroupBox("Image")
        form = QFormLayout(box)
        self.prompt = QLineEdit()
        self.prompt.setPlaceholderText("a lighthouse at dusk, oil painting")
        form.addRow("Prompt", self.prompt)
        self.width_box, self.height_box = self._spin(16, 4096, 1024), self._spin(16, 4096, 1024)
        self.fit_canvas = QCheckBox("canvas size")
        self.fit_canvas.setChecked(True)
        size = QHBoxLayout()
        for widget in (self.width_box, QLabel("×"), self.height_box, self.fit_canvas):
            size.addWidget(widget)
        form.addRow("Size", size)
        self.steps = self._spin(1, 1000, 28)
        form.addRow("Steps", self.steps)
        self.guidance = QDoubleSpinBox()
        self.guidance.setRange(0.0, 100.0)
        self.guidance.setValue(3.5)
        form.addRow("Guidance", self.guidance)
        self.seed = QLineEdit()
        self.random_seed = QCheckBox("random")
        self.random_seed.setChecked(True)
        seed = QHBoxLayout()
        seed.addWidget(self.seed, 1)
        seed.addWidget(self.random_seed)
        form.addRow("Seed", seed)
        self.t5_length = self._spin(2, 4096, 512)
        form.addRow("T5 tokens", self.t5_length)
        self.strength = QSlider(Qt.Horizontal)
        self.strength.setRange(1, 100)
        self.strength_label = QLabel()
        self.strength.valueChanged.connect(lambda v: self.strength_label.setText(f"{v / 100:.2f}"))
        self.strength.setValue(70)
        strength = QHBoxLayout()
        strength.addWidget(self.strength, 1)
        strength.addWidget(self.strength_label)
        form.addRow("Strength", strength)
        return box

    @staticmethod
    def _spin(low, high, value):
        box = QSpinBox()
        box.setRange(low, high)
        box.setValue(value)
        return box

    def _buttons(self):
        row = QHBoxLayout()
        self.generate_button = QPushButton("Generate")
        self.generate_button.clicked.connect(lambda: self.generate())
        self.edit_button = QPushButton("Edit")
        self.edit_button.setToolTip("Kontext edit of the active layer (the selection's contents)")
        self.edit_button.clicked.connect(lambda: self.edit())
        self.refine_button = QPushButton("Image to Image")
        self.refine_button.setToolTip("Redraw the active layer (the selection) at the strength")
        self.refine_button.clicked.connect(lambda: self.image_to_image())
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.session.cancel)
        for button in (self.generate_button, self.edit_button, self.refine_button):
            row.addWidget(button)
        row.addWidget(self.cancel_button)
        return row

    def _browse(self):
        folder = QFileDialog.getExistingDirectory(self, "FLUX model folder", self.model.text())
        if folder:
            self.model.setText(folder)

    # ---- Krita

    def canvasChanged(self, canvas_):
        doc = Krita.instance().activeDocument()
        if doc is not None and self.fit_canvas.isChecked():
            self.width_box.setValue(doc.width())
            self.height_box.setValue(doc.height())

    # ---- jobs

    def generate(self):
        """Text-to-image into a new layer over the active one, at the canvas's top left."""
        self._run("generate", None, lambda doc, node, request, params: (request, None))

    def edit(self, node=None):
        """Kontext edit of ``node``'s region (default: the active layer's) into a new layer over
        it; the region is the selection's bounds, else the canvas."""

        def describe(doc, node, request, params):
            rect = canvas.source_rect(doc)
            with canvas.read_image(node, rect) as image:
                request.add_reference(image)
            request.set_reference_snap(False)
            request.set_size(rect.width(), rect.height())
            return request, rect

        self._run("edit", node, describe)

    def image_to_image(self, node=None):
        """Image-to-image of ``node``'s region (default: the active layer's) at the strength,
        into a new layer over it."""

        def describe(doc, node, request, params):
            rect = canvas.source_rect(doc)
            params["strength"] = self.strength.value() / 100
            with canvas.read_image(node, rect) as image:
                request.set_init_image(image, params["strength"])
            request.set_size(rect.width(), rect.height())
            return request, rect

        self._run("image to image", node, describe)

    def _run(self, kind, node, describe):
        doc = Krita.instance().activeDocument()
        try:
            canvas.check_color_space(doc)
            node = node or doc.activeNode()
            if kind != "generate" and node is None:
                raise canvas.CanvasError("Select the layer to work on.")
            params = self._params(doc)
            request = fe.Request(
                params["prompt"],
                width=params["width"],
                height=params["height"],
                seed=params["seed"],
                steps=params["steps"],
                guidance=params["guidance"],
                t5_len=params["t5_length"],
                loras=self._loras(),
            )
            request, rect = describe(doc, node, request, params)
            if rect is None:
                rect = QRect(0, 0, params["width"], params["height"])
            else:
                params["width"], params["height"] = rect.width(), rect.height()
            self._save_settings()
            device = fe.Device.CUDA if self.device.currentText() == "CUDA" else fe.Device.CPU

            def deliver(bgra, width, height):
                rect.setWidth(width)
                rect.setHeight(height)
                name = canvas.layer_name(kind, params)
                canvas.add_layer(doc, name, bgra, rect, params, above=node)

            with request:
                self.session.start(device, self.model.text(), request, deliver, params)
        except (fe.FluxError, canvas.CanvasError, ValueError, OSError) as e:
            self._progress(0.0, f"Not started: {getattr(e, 'message', None) or e}")
            return
        self.timer.start()

    def _params(self, doc):
        if self.fit_canvas.isChecked():
            self.width_box.setValue(doc.width())
            self.height_box.setValue(doc.height())
        if self.random_seed.isChecked() or not self.seed.text().strip():
            self.seed.setText(str(random.randrange(2**32)))
        return {
            "prompt": self.prompt.text(),
            "width": self.width_box.value(),
            "height": self.height_box.value(),
            "seed": int(self.seed.text()),
            "steps": self.steps.value(),
            "guidance": self.guidance.value(),
            "t5_length": self.t5_length.value(),
        }

    def _loras(self):
        """The LoRA field's ``path[:strength]`` entries as (path, strength) pairs."""
        out = []
        for entry in filter(None, (e.strip() for e in self.loras.text().split(";"))):
            path, _, strength = entry.rpartition(":")
            try:
                out.append((path, float(strength)))
            except ValueError:
                out.append((entry, 1.0))
        return out

    def _save_settings(self):
        k = Krita.instance()
        k.writeSetting(SETTINGS, "model_folder", self.model.text())
        k.writeSetting(SETTINGS, "device", self.device.currentText())
        k.writeSetting(SETTINGS, "loras", self.loras.text())

    def _tick(self):
        if not self.session.tick():
            self.timer.stop()

    # ---- what the session reports

    def _progress(self, fraction, text):
        if fraction is not None:
            self.progress_bar.setValue(round(fraction * 100))
        self.status.setText(text)
        busy = self.session.busy
        for button in (self.generate_button, self.edit_button, self.refine_button):
            button.setEnabled(not busy)
        self.cancel_button.setEnabled(busy)

    def _preview(self, rgb, width, height):
        image = QImage(rgb, width, height, 3 * width, QImage.Format_RGB888).copy()
        pixmap = QPixmap.fromImage(image).scaled(
            PREVIEW_SIZE, PREVIEW_SIZE, Qt.KeepAspectRatio, Qt.SmoothTransformation
        )
        self.preview_label.setPixmap(pixmap)
