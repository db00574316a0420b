using System;

namespace Flux
{
    /// <summary>
    /// Marks a static method that native code calls through a function pointer. IL2CPP (Unity's
    /// ahead-of-time compiler) generates the native entry point for methods carrying an attribute
    /// of this name, whatever its namespace, so the binding needs no UnityEngine reference.
    /// </summary>
    [AttributeUsage(AttributeTargets.Method)]
    internal sealed class MonoPInvokeCallbackAttribute : Attribute
    {
        /// <summary>Names the delegate type the method is called through.</summary>
        public MonoPInvokeCallbackAttribute(Type delegateType)
        {
            DelegateType = delegateType;
        }

        /// <summary>The delegate type the method is called through.</summary>
        public Type DelegateType { get; }
    }
}
