using System;
using System.Threading;
using System.Collections.Generic;
using System.Linq;
using System.Net;
using System.Net.Security;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using MailKit;
using MailKit.Net.Smtp;
using MailKit.Security;
using MimeKit;
using ResilientMail.Core.Resilience;

namespace ResilientMail.Core.Transports
{
    /// <summary>Why the server's certificate was refused, in terms a person can act on.</summary>
    public sealed record CertificateProblem(SslPolicyErrors Errors, X509ChainStatusFlags Chain)
    {
        /// <summary>The name this machine connected to.</summary>
        public string? Host { get; init; }
        public string? Subject { get; init; }
        public string? Issuer { get; init; }
        public DateTime? NotAfter { get; init; }
        public IReadOnlyList<string> Names { get; init; } = new string[0];
        public bool SelfSigned => Subject != null && Subject == Issuer;
        public bool NameMismatch => (Errors & SslPolicyErrors.RemoteCertificateNameMismatch) != 0;
        public bool Expired => (Chain & X509ChainStatusFlags.NotTimeValid) != 0;
        /// <summary>Only the revocation check failed: the chain is trusted but the CA's CRL or OCSP server did not answer.</summary>
        public bool RevocationUnknown =>
            (Chain & (X509ChainStatusFlags.RevocationStatusUnknown | X509ChainStatusFlags.OfflineRevocation)) != 0 &&
            (Chain & ~(X509ChainStatusFlags.RevocationStatusUnknown | X509ChainStatusFlags.OfflineRevocation)) == 0 && !NameMismatch;
        public bool Untrusted => (Chain & (X509ChainStatusFlags.UntrustedRoot | X509ChainStatusFlags.PartialChain)) != 0;

        internal static CertificateProblem From(string? host, X509Certificate? certificate, X509Chain? chain, SslPolicyErrors errors)
        {
            var flags = X509ChainStatusFlags.NoError;
            if (chain != null) foreach (var s in chain.ChainStatus) flags |= s.Status;
            var cert = certificate as X509Certificate2 ?? (certificate != null ? new X509Certificate2(certificate) : null);
            var names = new List<string>();
            if (cert != null)
            {
                var cn = cert.GetNameInfo(X509NameType.DnsName, false);
                if (!string.IsNullOrEmpty(cn)) names.Add(cn);
                foreach (var ext in cert.Extensions)
                {
                    if (ext.Oid?.Value != "2.5.29.17") continue; // subjectAltName
                    foreach (var part in new System.Security.Cryptography.AsnEncodedData(ext.Oid, ext.RawData).Format(false).Split(','))
                    {
                        var p = part.Trim();
                        int eq = p.IndexOfAny(new[] { '=', ':' });
                        if (p.StartsWith("DNS", StringComparison.OrdinalIgnoreCase) && eq > 0) names.Add(p.Substring(eq + 1).Trim());
                    }
                }
            }
            return new CertificateProblem(errors, flags)
            {
                Host = host,
                Subject = cert?.Subject,
                Issuer = cert?.Issuer,
                NotAfter = cert?.NotAfter,
                Names = names.Distinct(StringComparer.OrdinalIgnoreCase).ToArray(),
            };
        }
    }

    /// <summary>
    /// MailKit's client with the two things the engine needs from a transaction: every refused recipient (instead
    /// of the first one failing the whole message) and, when a certificate is refused, why.
    /// </summary>
    internal sealed class EnvelopeSmtpClient : SmtpClient
    {
        public EnvelopeSmtpClient(bool skipCertificateCheck, bool skipRevocationCheck = false)
        {
            // An internal CA whose CRL cannot be reached: everything else about the certificate is still checked.
            if (skipRevocationCheck) CheckCertificateRevocation = false;
            if (skipCertificateCheck)
            {
                CheckCertificateRevocation = false;
                ServerCertificateValidationCallback = (sender, certificate, chain, errors) => true;
            }
            else
            {
                // MailKit's own rules decide; the callback only remembers why it said no.
                ServerCertificateValidationCallback = (sender, certificate, chain, errors) =>
                {
                    bool valid = DefaultServerCertificateValidationCallback(sender, certificate, chain, errors);
                    CertificateProblem = valid ? null : CertificateProblem.From(sender as string, certificate, chain, errors);
                    return valid;
                };
            }
        }

        public CertificateProblem? CertificateProblem { get; private set; }

        /// <summary>Recipients refused in the transaction under way.</summary>
        public List<(MailboxAddress Mailbox, SmtpResponse Response)> Refused { get; } = new List<(MailboxAddress, SmtpResponse)>();

        private SendAttempt? _attempt;
        private CancellationToken _token;

        /// <summary>The attempt whose transaction comes next: its hand-over is waited for at the point of no return.</summary>
        public void Attempt(SendAttempt attempt, CancellationToken cancellationToken)
        {
            _attempt = attempt;
            _token = cancellationToken;
        }

        /// <summary>
        /// A recipient is taken: the data comes next, and with its final dot the server may deliver. So the message's
        /// hand-over record must be durable by now; it was written while the envelope was on the wire. (MailKit calls
        /// this synchronously; the wait is short, bounded by <see cref="SendAttempt.HandOverPatience"/>.)
        /// </summary>
        protected override void OnRecipientAccepted(MimeMessage message, MailboxAddress mailbox, SmtpResponse response)
        {
            base.OnRecipientAccepted(message, mailbox, response);
            var attempt = _attempt;
            _attempt = null; // once a transaction
            attempt?.WaitForHandOver(_token);
        }

        protected override void OnRecipientNotAccepted(MimeMessage message, MailboxAddress mailbox, SmtpResponse response)
        {
            // 421: the server is closing the connection; nothing more can happen in this session.
            if (response.StatusCode == SmtpStatusCode.ServiceNotAvailable) base.OnRecipientNotAccepted(message, mailbox, response);
            Refused.Add((mailbox, response));
        }

        /// <summary>The NOTIFY asked for each recipient (DSN); null for none.</summary>
        public DeliveryStatusNotification? Notify { get; set; }

        protected override DeliveryStatusNotification? GetDeliveryStatusNotifications(MimeMessage message, MailboxAddress mailbox) => Notify;

        public bool OffersDsn => (Capabilities & SmtpCapabilities.Dsn) != 0;
        public bool OffersSmtpUtf8 => (Capabilities & SmtpCapabilities.UTF8) != 0;
        public bool OffersEightBitMime => (Capabilities & SmtpCapabilities.EightBitMime) != 0;
    }

    /// <summary>How the engine logs in with a password: one SASL mechanism, chosen before the first AUTH.</summary>
    internal static class SmtpLogin
    {
        // MailKit's own order of preference (strongest first), without the ones a password cannot serve (GSSAPI, OAuth).
        private static readonly string[] Preferred =
        {
            "SCRAM-SHA-512-PLUS", "SCRAM-SHA-512", "SCRAM-SHA-256-PLUS", "SCRAM-SHA-256", "SCRAM-SHA-1-PLUS", "SCRAM-SHA-1",
            "NTLM", "DIGEST-MD5", "CRAM-MD5", "PLAIN", "LOGIN",
        };

        /// <summary>
        /// The one mechanism to try, or null when the server offers none this client can use. MailKit's own
        /// Authenticate(credentials) falls through to the next mechanism after a 535, so one wrong password would be
        /// counted twice (AUTH PLAIN, then AUTH LOGIN) by a lockout policy.
        /// </summary>
        public static SaslMechanism? Choose(IEnumerable<string> offered, NetworkCredential credential)
        {
            var set = new HashSet<string>(offered, StringComparer.OrdinalIgnoreCase);
            foreach (var name in Preferred)
            {
                if (!set.Contains(name) || !SaslMechanism.IsSupported(name)) continue;
                var mechanism = SaslMechanism.Create(name, Encoding.UTF8, credential);
                if (mechanism != null) return mechanism;
            }
            return null;
        }
    }

    /// <summary>Envelope rules that do not depend on the server's answers.</summary>
    internal static class Envelope
    {
        /// <summary>To, Cc and Bcc, each address once (a server may refuse the second RCPT TO of one address).</summary>
        public static List<MailboxAddress> Recipients(MimeMessage message)
        {
            var seen = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
            var all = new List<MailboxAddress>();
            foreach (var m in message.To.Mailboxes.Concat(message.Cc.Mailboxes).Concat(message.Bcc.Mailboxes))
                if (seen.Add(m.Address)) all.Add(m);
            return all;
        }

        /// <summary>A local part beyond ASCII can only travel with SMTPUTF8 (RFC 6531 3.4); a non-ASCII domain has an ASCII (IDNA) form.</summary>
        public static bool NeedsSmtpUtf8(MailboxAddress mailbox) => mailbox.LocalPart.Any(c => c > 127);

        public static bool NeedsSmtpUtf8(MimeMessage message, MailboxAddress sender, IEnumerable<MailboxAddress> recipients) =>
            NeedsSmtpUtf8(sender) || recipients.Any(NeedsSmtpUtf8) || message.From.Mailboxes.Concat(message.ReplyTo.Mailboxes).Any(NeedsSmtpUtf8);

        /// <summary>An RCPT TO reply that caps recipients per transaction: the rest go in another one at once.</summary>
        public static bool TooManyRecipients(SmtpResponse response) =>
            (int)response.StatusCode == 452 && (response.Response ?? "").TrimStart().StartsWith("4.5.3", StringComparison.Ordinal) ||
            (int)response.StatusCode == 452 && (response.Response ?? "").IndexOf("too many recipients", StringComparison.OrdinalIgnoreCase) >= 0;
    }
}
