using System;

namespace ResilientMail.Core
{
    /// <summary>
    /// A secret (API key, password) that never prints: ToString, records and serialisers see "(secret)".
    /// Only the transport that needs the value calls <see cref="Reveal"/>, at the moment it sends.
    /// </summary>
    public sealed class Secret
    {
        private readonly string _value;

        public Secret(string value)
        {
            if (string.IsNullOrEmpty(value)) throw new ArgumentException("The secret is empty.", nameof(value));
            _value = value;
        }

        public string Reveal() => _value;

        public override string ToString() => "(secret)";
    }
}
