using System;
using System.Collections.Generic;
using System.Linq;
using System.IO;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Text.RegularExpressions;
using MailKit;
using MailKit.Net.Smtp;
using MailKit.Security;

namespace ResilientMail.Core.Resilience
{
    /// <summary>SMTP failure classes (DESIGN.md, "Failure classes"): the basic code decides, 4yz retry and 5yz do not.</summary>
    public static class SmtpFailureClassifier
    {
        private static readonly Regex RateText = new Regex(@"\brate\b|rate.limit|too (much|many) (mail|messages|recipients|connections|requests)|\blimit|exceed|slow down|throttl",
            RegexOptions.IgnoreCase | RegexOptions.CultureInvariant);
        private static readonly Regex Greylist = new Regex(@"gr[ae]y.?list", RegexOptions.IgnoreCase | RegexOptions.CultureInvariant);
        private static readonly Regex Wait = new Regex(@"\b(?:in|after|for)\s+(\d{1,6})\s*(s|secs?|seconds?|m|mins?|minutes?)\b",
            RegexOptions.IgnoreCase | RegexOptions.CultureInvariant);

        /// <summary>
        /// The wait a 4xx reply states in words ("try again in 60 seconds", "greylisted for 5 minutes"), as Postal and many
        /// greylisting services say it; null when it states none.
        /// </summary>
        public static TimeSpan? StatedWait(string? text)
        {
            var m = Wait.Match(text ?? "");
            if (!m.Success) return null;
            int n = int.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);
            if (n <= 0) return null;
            return char.ToLowerInvariant(m.Groups[2].Value[0]) == 'm' ? TimeSpan.FromMinutes(n) : TimeSpan.FromSeconds(n);
        }

        private static readonly Regex EnhancedCode = new Regex(@"^\s*([245])\.(\d{1,3}\.\d{1,3})\b", RegexOptions.CultureInvariant);

        /// <param name="error">What the SMTP client threw.</param>
        /// <param name="bodySent">The whole message had been written when it failed, so the server may have taken it.</param>
        /// <param name="certificate">Why the server's certificate was refused, when the TLS handshake failed on it.</param>
        public static Failure Classify(Exception error, bool bodySent, Transports.CertificateProblem? certificate = null)
        {
            switch (error)
            {
                case SmtpCommandException command:
                    return FromReply((int)command.StatusCode, command.Message, command.ErrorCode);
                case MailKit.Security.AuthenticationException auth:
                    return new Failure(FailureKind.Permanent, FailureReason.Authentication,
                        $"The SMTP server refused the credentials: {auth.Message}") { ServerReply = auth.Message };
                case SslHandshakeException tls when certificate != null:
                    return new Failure(FailureKind.Permanent, FailureReason.Certificate, Certificates.Explain(certificate)) { ServerReply = FirstLine(tls.Message), Remedy = Certificates.Remedies(certificate) };
                case SslHandshakeException tls:
                    return new Failure(FailureKind.Permanent, FailureReason.Certificate,
                        "The TLS handshake failed before any certificate was checked: the TLS mode does not match the port (465 is TLS from the first byte, " +
                        "587 and 25 start plain and use STARTTLS), or the server and this machine share no TLS version. " + FirstLine(tls.Message)) { Remedy = Remedy.TlsMode };
                case System.Security.Authentication.AuthenticationException tls2 when certificate != null:
                    return new Failure(FailureKind.Permanent, FailureReason.Certificate, Certificates.Explain(certificate)) { ServerReply = tls2.Message, Remedy = Certificates.Remedies(certificate) };
                case System.Security.Authentication.AuthenticationException tls2:
                    return new Failure(FailureKind.Permanent, FailureReason.Certificate,
                        "The TLS handshake failed: " + tls2.Message + " Check that the TLS mode matches the port (465: TLS from the start; 587/25: STARTTLS), " +
                        "and that this machine trusts the server's certificate.") { Remedy = Remedy.TlsMode | Remedy.TrustCertificate | Remedy.SkipCertificateCheck };
                case NotSupportedException unsupported when unsupported.Message.IndexOf("STARTTLS", StringComparison.OrdinalIgnoreCase) >= 0:
                    return new Failure(FailureKind.Permanent, FailureReason.Certificate,
                        "The server does not offer STARTTLS, so the connection cannot be encrypted as asked. Use the port that offers it " +
                        "(usually 587), TLS from the start for port 465, or no TLS (or TLS only when offered) for a server without it.") { Remedy = Remedy.TlsMode };
                case NotSupportedException unsupported when unsupported.Message.IndexOf("authentication", StringComparison.OrdinalIgnoreCase) >= 0:
                    return new Failure(FailureKind.Permanent, FailureReason.Authentication,
                        "The server does not offer SMTP AUTH on this connection, so the credentials cannot be used. Many servers offer it only " +
                        "after STARTTLS (port 587); or sign in with nothing if the server needs no credentials.") { Remedy = Remedy.StartTlsForAuth };
                case SmtpProtocolException protocol:
                    return Network($"The SMTP conversation broke off: {protocol.Message}", bodySent);
                case ServiceNotAuthenticatedException notAuthenticated:
                    return new Failure(FailureKind.Permanent, FailureReason.Authentication,
                        $"The SMTP server requires authentication ({notAuthenticated.Message}): sign in with a password or an OAuth2 token.")
                        { ServerReply = notAuthenticated.Message, Remedy = Remedy.Credentials };
                case ServiceNotConnectedException:
                    return Network("The SMTP connection was lost.", bodySent);
                case SocketException socket when socket.SocketErrorCode == SocketError.ConnectionRefused:
                    return Network("The SMTP server refused the connection: nothing is listening on that port. Check the server's name and port, and that it is running.", bodySent) with { Remedy = Remedy.ServerAddress };
                case SocketException socket when socket.SocketErrorCode == SocketError.HostNotFound || socket.SocketErrorCode == SocketError.NoData || socket.SocketErrorCode == SocketError.TryAgain:
                    return Network($"The SMTP server's name could not be resolved ({socket.SocketErrorCode}). Check the spelling of the server's name and the DNS settings.", bodySent) with { Remedy = Remedy.ServerAddress };
                case SocketException socket:
                    return Network($"Network error talking to the SMTP server: {socket.Message} ({socket.SocketErrorCode}).", bodySent);
                case IOException io:
                    return Network($"Network error talking to the SMTP server: {io.InnerException?.Message ?? io.Message}", bodySent);
                case TimeoutException:
                case OperationCanceledException:
                    return bodySent
                        ? new Failure(FailureKind.Ambiguous, FailureReason.Timeout, "The server did not answer after the whole message was sent; it may have been delivered.")
                        : new Failure(FailureKind.Transient, FailureReason.Timeout, "The SMTP server did not answer in time.");
                default:
                    return new Failure(FailureKind.Permanent, FailureReason.Protocol, error.Message);
            }
        }

        /// <summary>
        /// Classifies an SMTP reply. The basic code decides the class (RFC 5321 4.2.1: 4yz transient, 5yz permanent);
        /// an enhanced status code (RFC 3463) only refines the reason: greylisting servers answer 451 4.7.1 or 451 5.7.1,
        /// and either one is worth trying again.
        /// </summary>
        public static Failure FromReply(int statusCode, string text, SmtpErrorCode errorCode = SmtpErrorCode.UnexpectedStatusCode)
        {
            var reply = $"{statusCode} {text}".Trim();
            var enhanced = EnhancedCode.Match(text ?? "");
            string? detail = enhanced.Success ? enhanced.Groups[2].Value : null; // "3.4" of 5.3.4
            int cls = statusCode / 100;

            if (BasicAuthOff(reply, null, null) is Failure off) return off with { StatusCode = statusCode };
            if (statusCode == 535 || statusCode == 534 || statusCode == 530 && text != null && text.IndexOf("auth", StringComparison.OrdinalIgnoreCase) >= 0)
                return new Failure(FailureKind.Permanent, FailureReason.Authentication, $"Authentication failed: {reply}") { ServerReply = reply, StatusCode = statusCode };

            // Size: 552 (RFC 5321 exceeded storage allocation, sent at MAIL FROM by servers that check SIZE) or X.3.4.
            bool tooLarge = detail == "3.4" || statusCode == 552 && (detail == null || detail.StartsWith("3.", StringComparison.Ordinal));
            if (cls == 4)
            {
                var why = detail switch
                {
                    "7.1" => "The server deferred the message (greylisting or a policy that may change)",
                    "5.3" => "The server took fewer recipients in this transaction than were sent",
                    _ when tooLarge => "The server cannot take a message this large right now",
                    _ => "The server deferred the message",
                };
                // A server that limits how fast one client may send (Postfix's "450 4.7.1 Error: too much mail from", a
                // "421 4.7.0 too many messages, slow down") says nothing about the message: the pace is the client's.
                bool rate = !tooLarge && detail != "5.3" && RateText.IsMatch(text ?? "") && !Greylist.IsMatch(text ?? "");
                if (rate) why = "The server limits how fast this client may send";
                return new Failure(FailureKind.Transient, rate ? FailureReason.Throttled : FailureReason.ServerBusy, $"{why}: {reply}")
                    { ServerReply = reply, StatusCode = statusCode, RetryAfter = StatedWait(text) };
            }

            var reason = tooLarge ? FailureReason.MessageTooLarge : errorCode switch
            {
                SmtpErrorCode.RecipientNotAccepted => FailureReason.RecipientRejected,
                SmtpErrorCode.SenderNotAccepted => FailureReason.SenderRejected,
                _ => FailureReason.Rejected,
            };
            var what = reason switch
            {
                FailureReason.MessageTooLarge => "The message is larger than the server accepts",
                FailureReason.RecipientRejected => "The server rejected the recipient",
                FailureReason.SenderRejected => "The server rejected the sender",
                _ => "The server rejected the message",
            };
            return new Failure(FailureKind.Permanent, reason, $"{what}: {reply}") { ServerReply = reply, StatusCode = statusCode };
        }

        /// <summary>
        /// Exchange Online's answers when Basic authentication (a password) is switched off for SMTP AUTH: 535 5.7.139
        /// ("basic authentication is disabled"), 535 5.7.3 (Authentication unsuccessful: also a wrong password there), and
        /// 550 5.7.30 ("Basic authentication is not supported for Client Submission"). The password will never work again,
        /// so say which set-up replaces it. Null for any other reply.
        /// </summary>
        public static Failure? BasicAuthOff(string reply, string? host, string? user)
        {
            bool off = reply.IndexOf("5.7.139", StringComparison.Ordinal) >= 0 || reply.IndexOf("5.7.30", StringComparison.Ordinal) >= 0
                || reply.IndexOf("basic authentication is disabled", StringComparison.OrdinalIgnoreCase) >= 0
                || reply.IndexOf("Basic authentication is not supported", StringComparison.OrdinalIgnoreCase) >= 0;
            bool exchange = host != null && (host.EndsWith(".office365.com", StringComparison.OrdinalIgnoreCase) || host.EndsWith(".outlook.com", StringComparison.OrdinalIgnoreCase));
            bool maybe = exchange && reply.IndexOf("5.7.3 ", StringComparison.Ordinal) >= 0;
            if (!off && !maybe) return null;
            var what = off
                ? $"Microsoft 365 has switched off Basic authentication (a password) for SMTP AUTH{(user != null ? " of " + user : "")}: {reply}"
                : $"Exchange Online refused the password{(user != null ? " of " + user : "")} ({reply}); since Basic authentication for SMTP AUTH is being switched off (from the end of December 2026), it may be that and not the password";
            return new Failure(FailureKind.Permanent, FailureReason.Authentication,
                what + ". A password will not work there again: send through Microsoft Graph with an app registration or a managed identity, " +
                "or keep SMTP and sign in with OAuth (an app registration with SMTP.SendAsApp). about_ResilientMail, section Microsoft 365, shows each set-up.")
                { ServerReply = reply, Remedy = Remedy.Microsoft365 };
        }

        private static Failure Network(string message, bool bodySent) => bodySent
            ? new Failure(FailureKind.Ambiguous, FailureReason.Network, message + " The whole message had been sent, so it may have been delivered.")
            : new Failure(FailureKind.Transient, FailureReason.Network, message);

        private static string FirstLine(string s)
        {
            var i = s.IndexOfAny(new[] { '\r', '\n' });
            return i < 0 ? s : s.Substring(0, i);
        }
    }
}

namespace ResilientMail.Core.Resilience
{
    /// <summary>Recipients refused one by one, and what that means for the whole message.</summary>
    public static class Refusals
    {
        /// <summary>A refused RCPT TO, classified like any reply, and naming the address.</summary>
        internal static RecipientRefusal Of(MimeKit.MailboxAddress mailbox, SmtpResponse response)
        {
            var failure = SmtpFailureClassifier.FromReply((int)response.StatusCode, response.Response, SmtpErrorCode.RecipientNotAccepted);
            var verb = failure.Kind == FailureKind.Transient ? "deferred" : "refused";
            return new RecipientRefusal(mailbox.Address, failure with { Message = $"The server {verb} the recipient {mailbox.Address}: {failure.ServerReply}" });
        }

        /// <summary>
        /// No recipient was taken. One refusal is that recipient's failure; several are summed up: transient when any of
        /// them may be taken later (only those are tried again), permanent otherwise.
        /// </summary>
        public static Failure AllRefused(IReadOnlyList<RecipientRefusal> refused)
        {
            if (refused.Count == 1) return refused[0].Failure with { Refused = refused };
            bool later = refused.Any(r => r.Failure.Kind == FailureKind.Transient);
            var first = refused[0].Failure;
            return new Failure(later ? FailureKind.Transient : FailureKind.Permanent, FailureReason.RecipientRejected,
                $"No recipient was taken: {Describe(refused)}")
            {
                ServerReply = first.ServerReply,
                StatusCode = first.StatusCode,
                Refused = refused,
            };
        }

        /// <summary>"b@example.com (550 5.1.1 No such user), c@example.com (...)".</summary>
        public static string Describe(IEnumerable<RecipientRefusal> refused) =>
            string.Join(", ", refused.Select(r => $"{r.Address} ({r.Failure.ServerReply ?? r.Failure.Message})"));
    }
}

namespace ResilientMail.Core.Resilience
{
    /// <summary>A refused certificate, said the way a sysadmin can act on it.</summary>
    internal static class Certificates
    {
        public static Remedy Remedies(Transports.CertificateProblem p) =>
            p.RevocationUnknown ? Remedy.SkipRevocationCheck
            : Remedy.TrustCertificate | Remedy.SkipCertificateCheck | (p.NameMismatch ? Remedy.ServerAddress : Remedy.None);

        public static string Explain(Transports.CertificateProblem p)
        {
            var host = p.Host ?? "the server";
            if (p.RevocationUnknown)
                return $"The revocation status of the server's certificate could not be checked: the CA's revocation list (CRL) or OCSP responder did not answer " +
                       $"from this machine. The certificate is otherwise trusted ({p.Subject}). Make the CRL/OCSP address reachable (proxy, firewall) " +
                       "or publish the CA's CRL where this machine can read it; the revocation check alone can be skipped (the certificate must still be trusted and match the name).";
            // Every reason at once: a self-signed certificate for another name is both, and either alone would mislead.
            var reasons = new System.Collections.Generic.List<string>();
            var advice = new System.Collections.Generic.List<string>();
            if (p.Untrusted && p.SelfSigned)
            {
                reasons.Add($"it is self-signed ({p.Subject})");
                advice.Add("That is common on internal relays (port 25 with STARTTLS): trust that certificate on this machine (add it to the trusted root certificates), " +
                           "or, for a relay on your own network, skip the certificate check: the connection stays encrypted, without checking who the server is.");
            }
            else if (p.Untrusted)
            {
                reasons.Add($"it was issued by {p.Issuer}, a CA this machine does not trust");
                advice.Add("Install that CA's root certificate on this machine (for a test server, the certificate check can be skipped).");
            }
            if (p.NameMismatch)
            {
                reasons.Add($"it is for {(p.Names.Count > 0 ? string.Join(", ", p.Names) : p.Subject)}, not for {host}");
                advice.Add("Connect by a name the certificate carries, or have the certificate reissued with this name.");
            }
            if (p.Expired)
            {
                reasons.Add($"it is not valid at this time (valid until {p.NotAfter:yyyy-MM-dd HH:mm})");
                advice.Add("Have it renewed on the server, and check this machine's clock.");
            }
            if (reasons.Count == 0)
            {
                reasons.Add($"{p.Chain}{(p.Errors != System.Net.Security.SslPolicyErrors.None ? ", " + p.Errors : "")} ({p.Subject})");
                advice.Add("Trust the issuing CA on this machine (for a test server, the certificate check can be skipped).");
            }
            return $"The server's certificate is not trusted: {string.Join("; and ", reasons)}. {string.Join(" ", advice)}";
        }
    }
}
