using System;
using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using System.Net.Http;
using System.Security.Cryptography;
using System.Text;
using Amazon.Runtime;
using Amazon.Runtime.Internal.Auth;

namespace ResilientMail.Core.Transports.Ses
{
    /// <summary>
    /// Signs one HTTP request with AWS Signature Version 4. This class builds the canonical request
    /// (method, path, query, the signed headers, the payload hash); AWSSDK.Core derives the signing key
    /// and computes the signature over it.
    /// </summary>
    public static class SigV4
    {
        public const string DateFormat = "yyyyMMdd'T'HHmmss'Z'";

        /// <summary>Adds X-Amz-Date, X-Amz-Security-Token (temporary credentials) and Authorization to <paramref name="request"/>.</summary>
        public static void Sign(HttpRequestMessage request, byte[] body, ImmutableCredentials credentials, string region, string service, DateTime utcNow)
        {
            if (request.RequestUri == null || !request.RequestUri.IsAbsoluteUri) throw new ArgumentException("The request needs an absolute address.", nameof(request));
            var uri = request.RequestUri;
            var amzDate = utcNow.ToString(DateFormat, CultureInfo.InvariantCulture);
            request.Headers.Remove("X-Amz-Date");
            request.Headers.TryAddWithoutValidation("X-Amz-Date", amzDate);
            if (credentials.UseToken)
            {
                request.Headers.Remove("X-Amz-Security-Token");
                request.Headers.TryAddWithoutValidation("X-Amz-Security-Token", credentials.Token);
            }

            var headers = new SortedDictionary<string, string>(StringComparer.Ordinal)
            {
                ["host"] = HostHeader(uri),
                ["x-amz-date"] = amzDate,
            };
            if (credentials.UseToken) headers["x-amz-security-token"] = credentials.Token;
            if (request.Content?.Headers.ContentType != null) headers["content-type"] = request.Content.Headers.ContentType.ToString();

            var signedHeaders = string.Join(";", headers.Keys);
            var canonical = CanonicalRequest(request.Method.Method, uri, headers, signedHeaders, body);
            var result = AWS4Signer.ComputeSignature(credentials, region, utcNow, service, signedHeaders, canonical);
            request.Headers.Remove("Authorization");
            request.Headers.TryAddWithoutValidation("Authorization", result.ForAuthorizationHeader);
        }

        /// <summary>The Host header HttpClient sends: the port only when it is not the scheme's default.</summary>
        public static string HostHeader(Uri uri) => uri.IsDefaultPort ? uri.IdnHost : $"{uri.IdnHost}:{uri.Port}";

        public static string CanonicalRequest(string method, Uri uri, IDictionary<string, string> lowerCaseHeaders, string signedHeaders, byte[] body)
        {
            var sb = new StringBuilder();
            sb.Append(method).Append('\n');
            sb.Append(CanonicalPath(uri.AbsolutePath)).Append('\n');
            sb.Append(CanonicalQuery(uri.Query)).Append('\n');
            foreach (var h in lowerCaseHeaders.OrderBy(h => h.Key, StringComparer.Ordinal))
                sb.Append(h.Key).Append(':').Append(CollapseSpaces(h.Value)).Append('\n');
            sb.Append('\n').Append(signedHeaders).Append('\n');
            sb.Append(Hex(Sha256(body)));
            return sb.ToString();
        }

        /// <summary>Each segment percent-encoded (RFC 3986 unreserved kept); services other than S3 encode the already-escaped path again.</summary>
        private static string CanonicalPath(string escapedPath)
        {
            if (string.IsNullOrEmpty(escapedPath)) return "/";
            return string.Join("/", escapedPath.Split('/').Select(Encode));
        }

        private static string CanonicalQuery(string query)
        {
            if (string.IsNullOrEmpty(query) || query == "?") return "";
            var pairs = query.TrimStart('?').Split('&').Where(p => p.Length > 0).Select(p =>
            {
                int eq = p.IndexOf('=');
                var k = Uri.UnescapeDataString(eq < 0 ? p : p.Substring(0, eq));
                var v = eq < 0 ? "" : Uri.UnescapeDataString(p.Substring(eq + 1));
                return (Key: Encode(k), Value: Encode(v));
            });
            return string.Join("&", pairs.OrderBy(p => p.Key, StringComparer.Ordinal).ThenBy(p => p.Value, StringComparer.Ordinal).Select(p => p.Key + "=" + p.Value));
        }

        private static string Encode(string s)
        {
            var sb = new StringBuilder();
            foreach (var b in Encoding.UTF8.GetBytes(s))
            {
                char c = (char)b;
                if (c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || c == '~') sb.Append(c);
                else sb.Append('%').Append(b.ToString("X2", CultureInfo.InvariantCulture));
            }
            return sb.ToString();
        }

        private static string CollapseSpaces(string value)
        {
            var sb = new StringBuilder(value.Length);
            bool space = false;
            foreach (var c in value.Trim())
            {
                if (c == ' ') { if (!space) sb.Append(c); space = true; }
                else { sb.Append(c); space = false; }
            }
            return sb.ToString();
        }

        public static byte[] Sha256(byte[] data)
        {
            using var sha = SHA256.Create();
            return sha.ComputeHash(data);
        }

        public static string Hex(byte[] data)
        {
            var sb = new StringBuilder(data.Length * 2);
            foreach (var b in data) sb.Append(b.ToString("x2", CultureInfo.InvariantCulture));
            return sb.ToString();
        }
    }
}
