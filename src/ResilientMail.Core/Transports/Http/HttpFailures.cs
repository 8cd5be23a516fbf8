using System;
using System.Globalization;
using System.IO;
using System.Linq;
using System.Net.Http;
using System.Net.Http.Headers;
using System.Net.Sockets;
using ResilientMail.Core.Resilience;

namespace ResilientMail.Core.Transports.Http
{
    /// <summary>
    /// HTTP failure classes (DESIGN.md, "Failure classes"): 408, 429, 5xx and network errors are transient;
    /// 401/403 are an authentication failure that stops a campaign; other 4xx and every 3xx (redirects are never
    /// followed) are permanent. A network error
    /// after the whole request body was written is ambiguous: the provider may have accepted the message.
    /// </summary>
    public static class HttpFailures
    {
        /// <param name="location">A redirect's Location header: named in the error, never followed.</param>
        public static Failure FromStatus(string provider, int status, string? detail, TimeSpan? retryAfter, Uri? location = null)
        {
            var reply = string.IsNullOrWhiteSpace(detail) ? $"{status} {Phrase(status)}" : $"{status} {Phrase(status)}: {detail}";
            Failure Make(FailureKind kind, FailureReason reason, string message) =>
                new Failure(kind, reason, message) { ServerReply = reply, StatusCode = status, RetryAfter = retryAfter };

            // A provider API does not move: a redirect is a proxy, a captive portal or a wrong address. Following it would
            // hand the whole message (recipients, body, the key's signature) to another host and call it sent.
            if (status >= 300 && status < 400)
                return Make(FailureKind.Permanent, FailureReason.Protocol,
                    $"{provider} answered with a redirect ({status}{(location != null ? " to " + location : "")}); the message was not sent there. " +
                    "Redirects from a mail API are never followed: check the API's address and any proxy between here and the provider.") with { Remedy = Remedy.ProviderAddress };
            if (status == 429)
                return Make(FailureKind.Transient, FailureReason.Throttled,
                    $"{provider} is rate limiting this account ({reply}); waiting {(retryAfter.HasValue ? $"{retryAfter.Value.TotalSeconds:0.#} s as it asked" : "with backoff")} before trying again.");
            if (status == 408)
                return Make(FailureKind.Transient, FailureReason.Timeout, $"{provider} timed out reading the request ({reply}).");
            if (status >= 500)
                return Make(FailureKind.Transient, FailureReason.ServerBusy, $"{provider} had a server error ({reply}).");
            if (status == 401 || status == 403)
                return Make(FailureKind.Permanent, FailureReason.Authentication,
                    $"{provider} refused the credentials ({reply}). Check the key and its permission to send mail.");
            if (status == 413)
                return Make(FailureKind.Permanent, FailureReason.MessageTooLarge, $"{provider} refused the message as too large ({reply}).");
            return Make(FailureKind.Permanent, FailureReason.Rejected, $"{provider} refused the message ({reply}).");
        }

        /// <summary>Classifies what the HTTP stack threw (not cancellation: that is the caller's or the timeout's).</summary>
        public static Failure FromException(string provider, Endpoint endpoint, Exception error, bool bodySent)
        {
            for (var e = error; e != null; e = e.InnerException)
            {
                if (e is System.Security.Authentication.AuthenticationException tls)
                    return new Failure(FailureKind.Permanent, FailureReason.Certificate,
                        $"The TLS handshake with {provider} at {endpoint} failed: {tls.Message} Check the address and that its certificate is trusted.") { Remedy = Remedy.ProviderAddress | Remedy.TrustCertificate };
            }
            if (Find<HttpRequestException>(error) == null && Find<IOException>(error) == null && Find<SocketException>(error) == null)
                return new Failure(FailureKind.Permanent, FailureReason.Protocol, $"Unexpected error from {provider} at {endpoint}: {error.Message}");
            var socket = Find<SocketException>(error);
            var cause = socket != null ? $"{socket.Message} ({socket.SocketErrorCode})" : Innermost(error).Message;
            var message = $"Network error talking to {provider} at {endpoint}: {cause}";
            return bodySent
                ? new Failure(FailureKind.Ambiguous, FailureReason.Network, message + " The whole request had been sent, so the message may have been accepted.")
                : new Failure(FailureKind.Transient, FailureReason.Network, message);
        }

        /// <summary>Retry-After (seconds or an HTTP date), else X-RateLimit-Reset (Unix seconds, SendGrid's header).</summary>
        public static TimeSpan? RetryAfter(HttpResponseHeaders headers, DateTimeOffset now)
        {
            var retryAfter = headers.RetryAfter;
            if (retryAfter?.Delta is TimeSpan delta) return delta < TimeSpan.Zero ? TimeSpan.Zero : delta;
            if (retryAfter?.Date is DateTimeOffset date) return date > now ? date - now : TimeSpan.Zero;
            if (headers.TryGetValues("X-RateLimit-Reset", out var values)
                && long.TryParse(values.FirstOrDefault(), NumberStyles.Integer, CultureInfo.InvariantCulture, out var epoch))
            {
                var reset = DateTimeOffset.FromUnixTimeSeconds(epoch);
                return reset > now ? reset - now : TimeSpan.Zero;
            }
            return null;
        }

        private static string Phrase(int status) =>
            Enum.IsDefined(typeof(System.Net.HttpStatusCode), status) ? ((System.Net.HttpStatusCode)status).ToString() : "";

        private static T? Find<T>(Exception error) where T : Exception
        {
            for (var e = error; e != null; e = e.InnerException) if (e is T t) return t;
            return null;
        }

        private static Exception Innermost(Exception error)
        {
            var e = error;
            while (e.InnerException != null && (e is HttpRequestException || e is IOException || e is AggregateException)) e = e.InnerException;
            return e;
        }
    }
}
