"""Job descriptions (``FluxRequest``): one object for text-to-image, Kontext edits and
image-to-image, its settings checked by the library as they are set."""

import ctypes
import numbers
import operator
import os

from . import _native
from .enums import Result
from .closing import Closeable
from .errors import FluxError, check
from .images import as_image


def utf8(text, what):
    """``text`` (a ``str`` without NUL) as UTF-8 bytes for the C ABI."""
    if not isinstance(text, str):
        raise TypeError(f"{what} must be str, got {type(text).__name__}")
    if "\0" in text:
        raise ValueError(f"{what} contains a NUL character")
    return text.encode("utf-8")


def unsigned(value, bits, what):
    """``value`` for a ``uint{bits}_t`` parameter (ctypes would wrap a negative or larger one
    around silently)."""
    value = operator.index(value)
    if not 0 <= value < 1 << bits:
        raise OverflowError(f"{what} {value} does not fit in {bits} unsigned bits")
    return value


def path_text(path, what="path"):
    """A filesystem path (``str``, ``bytes`` or ``os.PathLike``) as UTF-8 bytes for the C ABI."""
    try:
        text = os.fsdecode(path)
    except TypeError:
        raise TypeError(
            f"{what} must be str or os.PathLike, got {type(path).__name__}"
        ) from None
    return utf8(text, what)


def lora_entries(loras):
    """``(path, strength)`` pairs from ``loras``: an iterable of ``(path, strength)`` pairs or
    bare paths (strength 1)."""
    if isinstance(loras, (str, bytes, os.PathLike)):
        raise TypeError("loras must be a list of (path, strength) pairs or paths, not one path")
    for entry in loras:
        if isinstance(entry, (str, bytes, os.PathLike)):
            yield entry, 1.0
        else:
            path, strength = entry
            yield path, strength


class Request(Closeable):
    """What a job computes: the prompt, the sampling settings and the images that make it
    text-to-image (none), a Kontext edit (1 to 4 references) or image-to-image (an init image).

    Each setter passes its value to the library, which checks it and raises ``FluxError``
    (``INVALID_ARGUMENT``, naming the setting) without changing the request. A setting never set
    keeps the library's default: 1024×1024 (an edit: its first reference's snapped size;
    image-to-image: its init image's, rounded down to multiples of 16), seed 0, the model
    variant's steps, guidance and T5 length, normal priority, references snapped to Kontext's
    resolutions, no LoRA. The keywords of the constructor call the setters of the same names;
    ``loras`` (a list of ``(path, strength)`` pairs, or bare paths at strength 1) calls
    ``add_lora`` for each. Setters return the request, so calls chain. Submit it with
    ``Engine.submit`` as often as you like, changing it in between; submitted jobs do not change.

        request = fe.Request("make it night", seed=7).add_reference(photo)
        job = engine.submit(request)
        styled = fe.Request("a fox", loras=[("ink.safetensors", 0.8)])
    """

    def __init__(self, prompt=None, *, width=None, height=None, seed=None, steps=None,
                 guidance=None, t5_len=None, priority=None, snap=None, loras=None):
        out = ctypes.c_void_p()
        check(_native.lib().flux_request_create(ctypes.byref(out)))
        self._ptr = out.value
        try:
            if (width is None) != (height is None):
                raise TypeError("give both width and height, or neither")
            for value, setter in [
                (prompt, self.set_prompt), (seed, self.set_seed), (steps, self.set_steps),
                (guidance, self.set_guidance), (t5_len, self.set_t5_length),
                (priority, self.set_priority), (snap, self.set_reference_snap),
            ]:
                if value is not None:
                    setter(value)
            if width is not None:
                self.set_size(width, height)
            for path, strength in lora_entries(loras or ()):
                self.add_lora(path, strength)
        except BaseException:
            self.close()
            raise

    def _call(self, name, *args):
        if not self._ptr:
            raise FluxError(Result.INVALID_HANDLE, "the request is closed")
        check(getattr(_native.lib(), name)(self._ptr, *args))
        return self

    def set_prompt(self, prompt):
        """The prompt (required; may be empty)."""
        return self._call("flux_request_set_prompt", utf8(prompt, "prompt"))

    def set_size(self, width, height):
        """The output size: multiples of 16, at most 4096 a side and 4 megapixels."""
        return self._call(
            "flux_request_set_size", unsigned(width, 32, "width"), unsigned(height, 32, "height")
        )

    def set_seed(self, seed):
        """The seed of the initial noise (a 64-bit unsigned integer)."""
        return self._call("flux_request_set_seed", unsigned(seed, 64, "seed"))

    def set_steps(self, steps):
        """Denoising steps, 1 to 1000 (default: dev 28, schnell 4, Kontext edits 30)."""
        return self._call("flux_request_set_steps", unsigned(steps, 32, "steps"))

    def set_guidance(self, guidance):
        """Distilled guidance, finite and ≥ 0 (default: dev 3.5, edits 2.5; schnell ignores
        it)."""
        return self._call("flux_request_set_guidance", guidance)

    def set_t5_length(self, tokens):
        """T5 sequence length, 2 to 4096 tokens (default: dev and Kontext 512, schnell 256)."""
        return self._call("flux_request_set_t5_length", unsigned(tokens, 32, "T5 length"))

    def set_priority(self, priority):
        """Queue priority: higher runs first (100 interactive, 0 normal, -100 batch)."""
        return self._call("flux_request_set_priority", priority)

    def set_reference_snap(self, snap):
        """Whether references snap to the closest Kontext training resolution (default) or keep
        their size."""
        return self._call("flux_request_set_reference_snap", bool(snap))

    def add_reference(self, image, wait_value=0):
        """Adds a Kontext reference (an ``Image`` or a numpy array; 1 to 4 make an edit). Host
        pixels are copied now; a GPU image is read when the job starts, once its semaphore
        reaches ``wait_value`` (timeline semaphores and fences)."""
        return self._with_image(
            image, "flux_request_add_reference", unsigned(wait_value, 64, "wait_value")
        )

    def set_init_image(self, image, strength, wait_value=0):
        """Makes the request image-to-image from ``image`` (read as references are);
        ``strength`` in (0, 1] is how much of the schedule runs (1: all of it)."""
        return self._with_image(
            image, "flux_request_set_init_image", unsigned(wait_value, 64, "wait_value"), strength
        )

    def set_fill(self, image, mask, wait_value=0):
        """Makes the request a FLUX.1 Fill job (inpainting; outpainting is the image on a larger
        canvas with the new border masked): ``image`` is read as references are, ``mask`` is a
        host image of its size (R8, or the first channel of another format) or a 2-D uint8
        numpy array, 255 = repaint, 0 = keep. Needs a Fill
        model (defaults: 50 steps, guidance 30, 128 T5 tokens, the image's size); the model
        returns the whole image, kept pixels are not pasted back."""
        mask, made = as_image(mask)
        try:
            return self._with_image(
                image, "flux_request_set_fill", unsigned(wait_value, 64, "wait_value"),
                mask._handle(),
            )
        finally:
            if made:
                mask.close()

    def set_control_image(self, image, wait_value=0):
        """Makes the request a FLUX.1 Canny or Depth job: ``image`` is the ready edge or depth
        map (the engine runs no detector), read as references are. Needs a Canny/Depth model
        (defaults: 50 steps, guidance 30 (Depth models want 10), 512 T5 tokens, its size)."""
        return self._with_image(
            image, "flux_request_set_control_image", unsigned(wait_value, 64, "wait_value")
        )

    def add_redux_image(self, image, wait_value=0):
        """Adds a FLUX.1 Redux image (up to 4; read as references are): its tokens follow the
        prompt's, so the result takes after it (BFL's Redux uses the empty prompt). Needs the
        SigLIP folder and ``flux1-redux-dev.safetensors`` beside the model."""
        return self._with_image(
            image, "flux_request_add_redux_image", unsigned(wait_value, 64, "wait_value")
        )

    def set_negative_prompt(self, prompt, scale):
        """A negative prompt and the true CFG scale, finite and ≥ 1: above 1 each step also
        runs the model on the negative prompt (twice the time) and takes
        ``neg + scale · (pos − neg)``; 1 turns it off."""
        if not isinstance(scale, numbers.Real):
            raise TypeError(f"scale must be a number, got {type(scale).__name__}")
        return self._call(
            "flux_request_set_negative_prompt", utf8(prompt, "negative prompt"), float(scale)
        )

    def _with_image(self, image, name, *args):
        image, made = as_image(image)
        try:
            return self._call(name, image._handle(), *args)
        finally:
            if made:
                image.close()

    def clear_images(self):
        """Removes the references, the init image, the Fill or control input and the Redux
        images: text-to-image again."""
        return self._call("flux_request_clear_images")

    def add_lora(self, path, strength=1.0):
        """Adds a LoRA: a kohya, diffusers/PEFT, XLabs or BFL ``.safetensors`` file (``str`` or
        ``os.PathLike``) at ``strength``, any finite number (1: the file's own scale; 0.5 half
        of it; negative values invert it). Up to 16 per request, applied together. The file
        must exist (else ``FluxError``, ``INVALID_ARGUMENT``); the engine reads it when a job
        first uses it and keeps it for later jobs. A file that does not fit the model fails that
        job (``JOB_FAILED``, naming the key), not this call. Switching LoRAs between jobs does
        not reload the model."""
        if not isinstance(strength, numbers.Real):
            raise TypeError(f"strength must be a number, got {type(strength).__name__}")
        return self._call(
            "flux_request_add_lora", path_text(path, "LoRA path"), float(strength)
        )

    def clear_loras(self):
        """Removes the LoRAs: the request's jobs run the model as loaded."""
        return self._call("flux_request_clear_loras")

    def close(self):
        """Frees the request (submitted jobs are not affected). Idempotent."""
        if self._ptr:
            ptr, self._ptr = self._ptr, None
            check(_native.lib().flux_request_destroy(ptr))
