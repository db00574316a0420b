using System;
using System.Collections.Generic;

namespace Flux
{
    /// <summary>
    /// A job description (<c>FluxRequest</c>): the prompt, the sampling settings, the LoRAs to
    /// apply, and the images that make it text-to-image (none), a Kontext edit (1 to 4 references)
    /// or image-to-image (an init image). Each setter hands its value to the library at once, which checks it: a bad
    /// value throws FluxException (InvalidArgument) naming it. A setting never set keeps the
    /// library's default (its getter returns null), and cannot be unset. Submit it with
    /// <see cref="Engine.Submit"/> as often as you like (submitting leaves it as it was); Dispose
    /// frees it, and jobs submitted from it go on.
    /// </summary>
    /// <example><code>
    /// using (var request = new Request("make it night") { Steps = 28, Seed = 7 })
    /// using (Image photo = Image.FromPixels(rgb, new ImageLayout(width, height, PixelFormat.Rgb8)))
    /// {
    ///     request.AddReference(photo);                // a Kontext edit; the pixels are copied now
    ///     using (Job job = engine.Submit(request)) { ... }
    /// }
    /// </code></example>
    public sealed class Request : IDisposable
    {
        readonly RequestHandle handle;
        string prompt;
        (int Width, int Height)? size;
        ulong seed;
        int? steps;
        float? guidance;
        int? t5Length;
        int priority = JobPriority.Normal;
        bool snapReferences = true;
        readonly List<Lora> loras = new List<Lora>();

        /// <summary>A request with every setting at its default: text-to-image, no prompt yet.</summary>
        public Request()
        {
            FluxException.Check(Native.flux_request_create(out handle));
        }

        /// <summary>A request for <paramref name="prompt"/> with every other setting at its default.</summary>
        public Request(string prompt) : this()
        {
            Prompt = prompt;
        }

        internal RequestHandle Handle
        {
            get { return handle; }
        }

        /// <summary>The prompt (required before submitting; may be empty).</summary>
        public string Prompt
        {
            get { return prompt; }
            set
            {
                using (var strings = new Utf8Strings())
                {
                    FluxException.Check(Native.flux_request_set_prompt(handle, strings.Add(value)));
                }
                prompt = value;
            }
        }

        /// <summary>
        /// Output size: positive multiples of 16, at most 4096 a side and 4 MP (default 1024 × 1024;
        /// an edit takes its first reference's snapped size, image-to-image its init image's
        /// rounded down to multiples of 16).
        /// </summary>
        public (int Width, int Height)? Size
        {
            get { return size; }
            set
            {
                var s = Given(value, nameof(Size));
                FluxException.Check(Native.flux_request_set_size(handle, Arg.U32(s.Width, "Size.Width"), Arg.U32(s.Height, "Size.Height")));
                size = s;
            }
        }

        /// <summary>Seed of the initial noise (default 0); the same seed and settings give the same image.</summary>
        public ulong Seed
        {
            get { return seed; }
            set
            {
                FluxException.Check(Native.flux_request_set_seed(handle, value));
                seed = value;
            }
        }

        /// <summary>Denoising steps, 1 to 1000 (default: dev 28, schnell 4, Kontext edits 30).</summary>
        public int? Steps
        {
            get { return steps; }
            set
            {
                int s = Given(value, nameof(Steps));
                FluxException.Check(Native.flux_request_set_steps(handle, Arg.U32(s, nameof(Steps))));
                steps = s;
            }
        }

        /// <summary>Distilled guidance, finite and ≥ 0 (default: dev 3.5, Kontext edits 2.5; schnell ignores it).</summary>
        public float? Guidance
        {
            get { return guidance; }
            set
            {
                float g = Given(value, nameof(Guidance));
                FluxException.Check(Native.flux_request_set_guidance(handle, g));
                guidance = g;
            }
        }

        /// <summary>T5 prompt tokens, 2 to 4096; longer prompts are cut (default: dev and Kontext 512, schnell 256).</summary>
        public int? T5Length
        {
            get { return t5Length; }
            set
            {
                int t = Given(value, nameof(T5Length));
                FluxException.Check(Native.flux_request_set_t5_length(handle, Arg.U32(t, nameof(T5Length))));
                t5Length = t;
            }
        }

        /// <summary>Queue priority: higher runs first, equal ones in submission order (default <see cref="JobPriority.Normal"/>).</summary>
        public int Priority
        {
            get { return priority; }
            set
            {
                FluxException.Check(Native.flux_request_set_priority(handle, value));
                priority = value;
            }
        }

        /// <summary>True (default): references are resized to the closest Kontext training resolution; false: they keep their size.</summary>
        public bool SnapReferences
        {
            get { return snapReferences; }
            set
            {
                FluxException.Check(Native.flux_request_set_reference_snap(handle, value));
                snapReferences = value;
            }
        }

        /// <summary>
        /// Adds a Kontext reference image: 1 to 4 make the request an edit (reference i gets
        /// position ids (i + 1, row, col)). Host pixels are copied now, so the image may be
        /// changed or disposed afterwards. A GPU image is read when the job starts, once its
        /// semaphore reaches <paramref name="waitValue"/> (timeline semaphores and fences): keep
        /// its pixels until the job's first Progress event or its end.
        /// </summary>
        public void AddReference(Image image, ulong waitValue = 0)
        {
            FluxException.Check(Native.flux_request_add_reference(handle, ImageHandle(image), waitValue));
        }

        /// <summary>
        /// Makes the request image-to-image from <paramref name="image"/> (read as references are),
        /// running <paramref name="strength"/> of the schedule, in (0, 1] (1: all of it, from the
        /// seed's noise alone).
        /// </summary>
        public void SetInitImage(Image image, float strength, ulong waitValue = 0)
        {
            FluxException.Check(Native.flux_request_set_init_image(handle, ImageHandle(image), waitValue, strength));
        }

        /// <summary>
        /// Makes the request a FLUX.1 Fill job (inpainting; outpainting is the image on a larger
        /// canvas with the new border masked): <paramref name="image"/> is read as references
        /// are, <paramref name="mask"/> is a host image of its size whose first channel is 255 to
        /// repaint and 0 to keep. Needs a Fill model (defaults: 50 steps, guidance 30, 128 T5
        /// tokens, the image's size); the whole image comes back, kept pixels are not pasted back.
        /// </summary>
        public void SetFill(Image image, Image mask, ulong waitValue = 0)
        {
            FluxException.Check(Native.flux_request_set_fill(handle, ImageHandle(image), waitValue, ImageHandle(mask)));
        }

        /// <summary>
        /// Makes the request a FLUX.1 Canny or Depth job: <paramref name="image"/> is the ready edge
        /// or depth map (the library runs no detector), read as references are. Needs a
        /// Canny/Depth model (defaults: 50 steps, guidance 30 (Depth models want 10), 512 T5
        /// tokens, the image's size).
        /// </summary>
        public void SetControlImage(Image image, ulong waitValue = 0)
        {
            FluxException.Check(Native.flux_request_set_control_image(handle, ImageHandle(image), waitValue));
        }

        /// <summary>
        /// Adds a FLUX.1 Redux image (up to 4; read as references are): its tokens follow the
        /// prompt's, so the result takes after it. Needs the SigLIP folder and
        /// flux1-redux-dev.safetensors beside the model, or the job fails saying so.
        /// </summary>
        public void AddReduxImage(Image image, ulong waitValue = 0)
        {
            FluxException.Check(Native.flux_request_add_redux_image(handle, ImageHandle(image), waitValue));
        }

        /// <summary>
        /// A negative prompt and the true CFG scale, finite and ≥ 1: above 1 each step also runs
        /// the model on the negative prompt (twice the time) and takes neg + scale · (pos − neg);
        /// 1 turns it off. A bad scale throws FluxException (InvalidArgument).
        /// </summary>
        public void SetNegativePrompt(string prompt, float scale)
        {
            if (prompt == null)
            {
                throw new ArgumentNullException(nameof(prompt));
            }
            using (var strings = new Utf8Strings())
            {
                FluxException.Check(Native.flux_request_set_negative_prompt(handle, strings.Add(prompt), scale));
            }
        }

        /// <summary>Removes the references, the init image, the Fill or control input and the Redux images: the request is text-to-image again.</summary>
        public void ClearImages()
        {
            FluxException.Check(Native.flux_request_clear_images(handle));
        }

        /// <summary>
        /// Adds a LoRA: a kohya, diffusers/PEFT, XLabs or BFL FLUX <c>.safetensors</c> file, applied at
        /// <paramref name="strength"/>, any finite number (1: the file's own scale; 0.5: half of
        /// it; negative values subtract it). Up to 16 per request, applied together. The file must
        /// exist (a relative path is resolved against the process's current directory); a missing
        /// file, a non-finite strength or a 17th LoRA throws FluxException (InvalidArgument). The
        /// library reads the file when a job first uses it and keeps it for later jobs; a file
        /// that does not fit the model fails the job (<see cref="Job.ThrowIfFailed"/>), naming the
        /// key. Changing LoRAs between jobs does not reload the model.
        /// </summary>
        public void AddLora(string path, float strength = 1f)
        {
            if (path == null)
            {
                throw new ArgumentNullException(nameof(path));
            }
            using (var strings = new Utf8Strings())
            {
                FluxException.Check(Native.flux_request_add_lora(handle, strings.Add(path), strength));
            }
            loras.Add(new Lora(path, strength));
        }

        /// <summary>Removes the LoRAs: the request's jobs run the model as loaded again.</summary>
        public void ClearLoras()
        {
            FluxException.Check(Native.flux_request_clear_loras(handle));
            loras.Clear();
        }

        /// <summary>The LoRAs added since the request was made or last cleared, in order, as given to <see cref="AddLora"/> (a read-only view).</summary>
        public IReadOnlyList<Lora> Loras
        {
            get { return loras.AsReadOnly(); }
        }

        /// <summary>Frees the request; jobs submitted from it go on.</summary>
        public void Dispose()
        {
            handle.Dispose();
        }

        static ImageHandle ImageHandle(Image image)
        {
            if (image == null)
            {
                throw new ArgumentNullException(nameof(image));
            }
            return Arg.Open(image.Handle, nameof(Image));
        }

        static T Given<T>(T? value, string name) where T : struct
        {
            if (!value.HasValue)
            {
                throw new ArgumentNullException(name, "a setting cannot be unset; a new Request has every default");
            }
            return value.Value;
        }
    }
}
