using System;

namespace Flux
{
    /// <summary>Argument conversions from the public (int) API to the ABI's unsigned fields.</summary>
    internal static class Arg
    {
        /// <summary><paramref name="value"/> as uint; throws ArgumentOutOfRangeException when negative.</summary>
        internal static uint U32(int value, string name)
        {
            if (value < 0)
            {
                throw new ArgumentOutOfRangeException(name, value, "must not be negative");
            }
            return (uint)value;
        }
    }
}
