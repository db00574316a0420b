using System;

namespace Flux
{
    /// <summary>A LoRA of a <see cref="Request"/>: its file and strength, as given to <see cref="Request.AddLora"/>.</summary>
    public struct Lora : IEquatable<Lora>
    {
        /// <summary>A LoRA at <paramref name="path"/> applied at <paramref name="strength"/>.</summary>
        public Lora(string path, float strength)
        {
            Path = path;
            Strength = strength;
        }

        /// <summary>The <c>.safetensors</c> file (kohya, diffusers/PEFT, XLabs or BFL layout).</summary>
        public string Path { get; }

        /// <summary>How much of it is applied (1: the file's own scale).</summary>
        public float Strength { get; }

        /// <summary>Whether both have the same path (ordinal comparison) and strength.</summary>
        public bool Equals(Lora other)
        {
            return string.Equals(Path, other.Path, StringComparison.Ordinal) && Strength.Equals(other.Strength);
        }

        /// <summary>Whether <paramref name="obj"/> is a <see cref="Lora"/> equal to this one.</summary>
        public override bool Equals(object obj)
        {
            return obj is Lora other && Equals(other);
        }

        /// <summary>A hash of the path and strength.</summary>
        public override int GetHashCode()
        {
            return (Path == null ? 0 : StringComparer.Ordinal.GetHashCode(Path)) * 31 + Strength.GetHashCode();
        }

        /// <summary>"path × strength".</summary>
        public override string ToString()
        {
            return Path + " × " + Strength;
        }
    }
}
