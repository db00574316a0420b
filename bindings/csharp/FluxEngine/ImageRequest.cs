using System;
using System.Collections.Generic;

namespace Flux
{
    /// <summary>
    /// What every image job takes. Fields left null keep the library's defaults (those of the
    /// <c>*_desc_defaults</c> functions: the loaded model variant's steps, guidance and T5 length).
    /// </summary>
    public abstract class ImageRequest
    {
        /// <summary>The prompt (required).</summary>
        public string Prompt { get; set; }

        /// <summary>Output width, a positive multiple of 16 (set with <see cref="Height"/>).</summary>
        public int? Width { get; set; }

        /// <summary>Output height, a positive multiple of 16 (set with <see cref="Width"/>).</summary>
        public int? Height { get; set; }

        /// <summary>Noise seed (default 0); the same seed and parameters give the same image.</summary>
        public ulong? Seed { get; set; }

        /// <summary>Denoising steps (default: dev 28, schnell 4, Kontext edit 30).</summary>
        public int? Steps { get; set; }

        /// <summary>Distilled guidance (default: dev 3.5, Kontext edit 2.5).</summary>
        public float? Guidance { get; set; }

        /// <summary>T5 prompt tokens (default: dev 512, schnell 256).</summary>
        public int? T5Length { get; set; }

        /// <summary>Job priority (default <see cref="JobPriority.Normal"/>).</summary>
        public int? Priority { get; set; }

        /// <summary>Writes the fields that are set into a desc's matching fields.</summary>
        internal void Apply(Utf8Strings strings, ref IntPtr prompt, ref uint width, ref uint height, ref ulong seed,
            ref uint steps, ref float guidance, ref uint t5Len, ref int priority)
        {
            if (Prompt == null)
            {
                throw new ArgumentNullException(nameof(Prompt));
            }
            prompt = strings.Add(Prompt);
            if (Width.HasValue) width = Arg.U32(Width.Value, nameof(Width));
            if (Height.HasValue) height = Arg.U32(Height.Value, nameof(Height));
            if (Seed.HasValue) seed = Seed.Value;
            if (Steps.HasValue) steps = Arg.U32(Steps.Value, nameof(Steps));
            if (Guidance.HasValue) guidance = Guidance.Value;
            if (T5Length.HasValue) t5Len = Arg.U32(T5Length.Value, nameof(T5Length));
            if (Priority.HasValue) priority = Priority.Value;
        }
    }

    /// <summary>A text-to-image job (default size 1024 × 1024).</summary>
    public sealed class TextToImageRequest : ImageRequest
    {
        internal Native.FluxTextToImageDesc ToDesc(Utf8Strings strings)
        {
            var d = Versioned.Init<Native.FluxTextToImageDesc>(Native.flux_text_to_image_desc_defaults);
            Apply(strings, ref d.prompt, ref d.width, ref d.height, ref d.seed, ref d.steps, ref d.guidance,
                ref d.t5_len, ref d.priority);
            return d;
        }
    }

    /// <summary>
    /// A Kontext edit of 1 to 4 reference images (default size: the first reference's, snapped;
    /// reference i gets position ids (i + 1, row, col)).
    /// </summary>
    public sealed class EditRequest : ImageRequest
    {
        /// <summary>The reference images, 1 to 4.</summary>
        public List<ImageInput> Images { get; } = new List<ImageInput>();

        /// <summary>True (default): resize references to the closest Kontext resolution; false: keep their size.</summary>
        public bool? Snap { get; set; }

        internal Native.FluxEditDesc ToDesc(Utf8Strings strings, PinnedImages pinned)
        {
            var d = Versioned.Init<Native.FluxEditDesc>(Native.flux_edit_desc_defaults);
            Apply(strings, ref d.prompt, ref d.width, ref d.height, ref d.seed, ref d.steps, ref d.guidance,
                ref d.t5_len, ref d.priority);
            d.images = pinned.ViewsAddress;
            d.image_count = (uint)pinned.Views.Length;
            if (Snap.HasValue) d.snap = Snap.Value ? 1u : 0u;
            return d;
        }
    }

    /// <summary>An image-to-image job, any model variant (default size: the init image's, rounded down to multiples of 16).</summary>
    public sealed class ImageToImageRequest : ImageRequest
    {
        /// <summary>The starting image (required).</summary>
        public ImageInput Init { get; set; }

        /// <summary>In (0, 1]: how much of the schedule runs (default 0.8; 1 = text-to-image from the seed).</summary>
        public float? Strength { get; set; }

        internal Native.FluxImageToImageDesc ToDesc(Utf8Strings strings, PinnedImages pinned)
        {
            var d = Versioned.Init<Native.FluxImageToImageDesc>(Native.flux_image_to_image_desc_defaults);
            Apply(strings, ref d.prompt, ref d.width, ref d.height, ref d.seed, ref d.steps, ref d.guidance,
                ref d.t5_len, ref d.priority);
            d.init = pinned.Views[0];
            if (Strength.HasValue) d.strength = Strength.Value;
            return d;
        }
    }
}
