using System;
using System.Globalization;

namespace ResilientMail.Core.Transports
{
    /// <summary>A host and TCP port: what a probe connects to.</summary>
    public sealed record Endpoint(string Host, int Port)
    {
        public override string ToString() => Host.IndexOf(':') >= 0 ? $"[{Host}]:{Port}" : $"{Host}:{Port}";

        /// <summary>Parses "host:port", "[v6]:port", or "host" with <paramref name="defaultPort"/>.</summary>
        public static Endpoint Parse(string text, int? defaultPort = null)
        {
            if (string.IsNullOrWhiteSpace(text)) throw new FormatException("A target must be host:port.");
            text = text.Trim();
            string host;
            string? port = null;
            if (text.StartsWith("[", StringComparison.Ordinal))
            {
                int close = text.IndexOf(']');
                if (close < 0) throw new FormatException($"'{text}' has no closing ']'.");
                host = text.Substring(1, close - 1);
                if (close + 1 < text.Length)
                {
                    if (text[close + 1] != ':') throw new FormatException($"'{text}' is not [address]:port.");
                    port = text.Substring(close + 2);
                }
            }
            else
            {
                int colon = text.LastIndexOf(':');
                if (colon >= 0 && text.IndexOf(':') == colon)
                {
                    host = text.Substring(0, colon);
                    port = text.Substring(colon + 1);
                }
                else
                {
                    host = text; // a bare IPv6 address or a host name without a port
                }
            }
            int p;
            if (port == null)
            {
                if (defaultPort == null) throw new FormatException($"'{text}' has no port; write it as host:port.");
                p = defaultPort.Value;
            }
            else if (!int.TryParse(port, NumberStyles.None, CultureInfo.InvariantCulture, out p))
            {
                throw new FormatException($"'{port}' in '{text}' is not a port number.");
            }
            if (p < 1 || p > 65535) throw new FormatException($"Port {p} in '{text}' is outside 1-65535.");
            if (host.Length == 0) throw new FormatException($"'{text}' has no host.");
            return new Endpoint(host, p);
        }
    }
}
