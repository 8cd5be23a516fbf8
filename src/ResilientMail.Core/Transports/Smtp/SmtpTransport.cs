using System;
using System.Collections.Generic;
using System.Linq;
using System.Net;
using System.Threading;
using System.Threading.Tasks;
using MailKit;
using MailKit.Net.Smtp;
using MailKit.Security;
using MimeKit;
using ResilientMail.Core.Delivery;
using ResilientMail.Core.Identity;
using ResilientMail.Core.Resilience;

namespace ResilientMail.Core.Transports
{
    public enum SmtpSecurity
    {
        /// <summary>SSL on connect for port 465, else STARTTLS when the server offers it.</summary>
        Auto,
        None,
        StartTls,
        SslOnConnect,
    }

    /// <summary>Delivery status notifications (RFC 3461) asked of the server for each recipient.</summary>
    [Flags]
    public enum DeliveryNotification { None = 0, OnSuccess = 1, OnFailure = 2, Delay = 4, Never = 8 }

    public sealed record SmtpOptions
    {
        public string Host { get; init; } = "";
        public int Port { get; init; } = 25;
        public SmtpSecurity Security { get; init; } = SmtpSecurity.Auto;
        /// <summary>Accept any server certificate. For test servers only.</summary>
        public bool SkipCertificateCheck { get; init; }
        /// <summary>Do not ask the CA whether the certificate was revoked (its CRL or OCSP responder cannot be reached); all else is checked.</summary>
        public bool SkipRevocationCheck { get; init; }
        /// <summary>DSN (NOTIFY=...) for every recipient, when the server offers it; None asks for nothing.</summary>
        public DeliveryNotification DeliveryNotification { get; init; }
        public NetworkCredential? Credential { get; init; }
        /// <summary>An OAuth2 access token: SASL XOAUTH2 as <see cref="OAuthUser"/> instead of a password (Microsoft 365, Gmail).</summary>
        public Secret? OAuthToken { get; init; }
        /// <summary>Tokens obtained and renewed by the module (Microsoft Entra, Google); wins over <see cref="OAuthToken"/>.</summary>
        public TokenSource? OAuthTokens { get; init; }
        public string? OAuthUser { get; init; }

        internal TokenSource? Tokens => OAuthTokens ?? (OAuthToken != null ? new GivenToken(OAuthToken) : null);
        public TimeSpan Timeout { get; init; } = Defaults.Timeout;
        /// <summary>The name sent in EHLO; MailKit picks the machine's name when null.</summary>
        public string? LocalDomain { get; init; }

        public SmtpOptions Validate()
        {
            if (string.IsNullOrWhiteSpace(Host)) throw new ArgumentException("An SMTP server name is required.", nameof(Host));
            if (Port < 1 || Port > 65535) throw new ArgumentOutOfRangeException(nameof(Port), Port, "Port must be 1-65535.");
            if (Timeout <= TimeSpan.Zero) throw new ArgumentOutOfRangeException(nameof(Timeout), Timeout, "Timeout must be greater than zero.");
            if ((OAuthToken != null || OAuthTokens != null) && string.IsNullOrWhiteSpace(OAuthUser)) throw new ArgumentException("An OAuth2 token needs the user name (the mailbox) it was issued for.", nameof(OAuthUser));
            if ((OAuthToken != null || OAuthTokens != null) && Credential != null) throw new ArgumentException("Use a password credential or an OAuth2 token, not both.", nameof(OAuthToken));
            return this;
        }
    }

    /// <summary>SMTP through MailKit over one connection kept for as long as the transport lives.</summary>
    public sealed class SmtpTransport : IMailTransport, IWaitsForHandOver
    {
        private readonly SmtpOptions _options;
        private readonly DeliveryEventSink? _events;
        private EnvelopeSmtpClient? _client;
        private CertificateProblem? _lastCertificateProblem;
        private bool _everConnected;
        private bool _freshSessionNext;
        private readonly TokenSource? _tokens;

        public SmtpTransport(SmtpOptions options, DeliveryEventSink? events = null)
        {
            _options = (options ?? throw new ArgumentNullException(nameof(options))).Validate();
            _events = events;
            _tokens = _options.Tokens;
            Endpoint = new Endpoint(_options.Host, _options.Port);
        }

        public string Description => $"smtp://{Endpoint} ({_options.Security}{(_tokens != null ? ", OAuth2" : _options.Credential != null ? ", authenticated" : "")})";
        public Endpoint Endpoint { get; }
        public TimeSpan Timeout => _options.Timeout;

        /// <summary>How many times a connection was opened (the first one included).</summary>
        public int ConnectionsOpened { get; private set; }

        public async Task<Receipt> SendAsync(MimeMessage message, SendAttempt attempt, CancellationToken cancellationToken)
        {
            try
            {
                // A server decides its access and policy tables (greylisting, rate limits, a block being lifted) per session:
                // after a deferral the next attempt comes in a new session, as a mail server's queue would.
                if (_freshSessionNext) { _freshSessionNext = false; await CloseAsync(cancellationToken).ConfigureAwait(false); }
                var client = await ConnectedClientAsync(cancellationToken).ConfigureAwait(false);
                var receipt = await SendTransactionsAsync(client, message, attempt, cancellationToken).ConfigureAwait(false);
                if (receipt.Refused.Any(r => r.Failure.Kind == FailureKind.Transient)) _freshSessionNext = true;
                return receipt;
            }
            catch (OperationCanceledException)
            {
                Drop(); // the conversation is in an unknown state
                throw;
            }
            catch (HandOverException)
            {
                Drop(); // stopped between the envelope and the data: this transaction is not to be finished
                throw;
            }
            catch (Exception ex) when (!(ex is MailDeliveryException))
            {
                var failure = SmtpFailureClassifier.Classify(ex, attempt.BodySent, _lastCertificateProblem);
                // A refused command leaves the session usable (MailKit resets it); anything else, and 421, does not. A
                // deferral (4xx) keeps it for now but the retry goes in a fresh one; a permanent refusal keeps it for the next message.
                if (!(ex is SmtpCommandException command) || command.StatusCode == SmtpStatusCode.ServiceNotAvailable)
                    Drop();
                else if (failure.Kind == FailureKind.Transient)
                    _freshSessionNext = true;
                throw new MailDeliveryException(failure, ex);
            }
        }

        /// <summary>
        /// One message, as a mail server relays it: every recipient has its own fate. Refused recipients are noted and
        /// the rest get the message; recipients over the server's per-transaction cap (452 4.5.3) go in further
        /// transactions at once; an address that needs SMTPUTF8 is refused here when the server does not offer it.
        /// </summary>
        private async Task<Receipt> SendTransactionsAsync(EnvelopeSmtpClient client, MimeMessage message, SendAttempt attempt, CancellationToken cancellationToken)
        {
            var sender = message.Sender ?? message.From.Mailboxes.FirstOrDefault()
                ?? throw new MailDeliveryException(new Failure(FailureKind.Permanent, FailureReason.SenderRejected, "The message has no sender (From)."));
            var pending = new List<MailboxAddress>(attempt.Recipients ?? Envelope.Recipients(message));
            var format = Standard;
            if (Envelope.NeedsSmtpUtf8(message, sender, pending))
            {
                if (client.OffersSmtpUtf8 && client.OffersEightBitMime)
                {
                    format = International;
                }
                else
                {
                    var why = $"{Endpoint} does not offer SMTPUTF8, which an address with characters beyond ASCII before the @ needs (RFC 6531)";
                    if (Envelope.NeedsSmtpUtf8(sender) || message.From.Mailboxes.Concat(message.ReplyTo.Mailboxes).Any(Envelope.NeedsSmtpUtf8))
                        throw new MailDeliveryException(new Failure(FailureKind.Permanent, FailureReason.SenderRejected,
                            $"The sender address cannot be sent: {why}. Use an ASCII sender and Reply-To address, or a server that offers SMTPUTF8.") { Remedy = Remedy.AsciiSender });
                    foreach (var r in pending.Where(Envelope.NeedsSmtpUtf8))
                        attempt.Refuse(new RecipientRefusal(r.Address, new Failure(FailureKind.Permanent, FailureReason.RecipientRejected,
                            $"Not sent to {r.Address}: {why}. Use the recipient's ASCII address, or a server that offers SMTPUTF8.")));
                    pending.RemoveAll(Envelope.NeedsSmtpUtf8);
                    if (pending.Count == 0) throw new MailDeliveryException(Refusals.AllRefused(attempt.Refused));
                }
            }

            string? replies = null;
            while (pending.Count > 0)
            {
                client.Refused.Clear();
                client.Attempt(attempt, cancellationToken); // its hand-over is waited for once a recipient is taken, before the data
                string reply;
                try
                {
                    reply = await client.SendAsync(format, message, sender, pending, cancellationToken, new BodyProgress(attempt)).ConfigureAwait(false);
                }
                catch (SmtpCommandException ex) when (ex.ErrorCode == SmtpErrorCode.MessageNotAccepted && client.Refused.Count > 0)
                {
                    // No recipient of this transaction was taken (MailKit then says "No recipients were accepted").
                    attempt.Settle(new string[0], client.Refused.Select(r => Refusals.Of(r.Mailbox, r.Response)));
                    if (attempt.Refused.Any(r => r.Failure.Kind == FailureKind.Transient)) _freshSessionNext = true;
                    throw new MailDeliveryException(Refusals.AllRefused(attempt.Refused), ex);
                }
                replies = replies == null ? reply : replies + " | " + reply;
                if (client.Refused.Count == 0)
                {
                    // The usual case: everyone taken in one transaction.
                    attempt.Settle(pending.Count == 1 ? new[] { pending[0].Address } : pending.Select(p => p.Address).ToArray(), Receipt.NoRefusals);
                    break;
                }
                var refused = new HashSet<MailboxAddress>(client.Refused.Select(r => r.Mailbox));
                var capped = client.Refused.Where(r => Envelope.TooManyRecipients(r.Response)).Select(r => r.Mailbox).ToList();
                attempt.Settle(pending.Where(p => !refused.Contains(p)).Select(p => p.Address).ToArray(),
                               client.Refused.Where(r => !Envelope.TooManyRecipients(r.Response)).Select(r => Refusals.Of(r.Mailbox, r.Response)).ToArray());
                pending = capped;
            }
            return new Receipt(message.MessageId ?? "", replies ?? "") { Refused = attempt.Refused };
        }

        // MailKit's own defaults for a transport: Bcc (and Resent-Bcc) travel in the envelope only, never as a header the
        // other recipients would see.
        private static readonly FormatOptions Standard = Create(international: false);
        private static readonly FormatOptions International = Create(international: true);

        private static FormatOptions Create(bool international)
        {
            var options = FormatOptions.Default.Clone();
            options.HiddenHeaders.Add(HeaderId.ContentLength);
            options.HiddenHeaders.Add(HeaderId.ResentBcc);
            options.HiddenHeaders.Add(HeaderId.Bcc);
            options.NewLineFormat = NewLineFormat.Dos;
            options.International = international;
            return options;
        }

        private async Task<EnvelopeSmtpClient> ConnectedClientAsync(CancellationToken cancellationToken)
        {
            if (_client != null && _client.IsConnected) return _client;
            Drop();
            var client = new EnvelopeSmtpClient(_options.SkipCertificateCheck, _options.SkipRevocationCheck)
            {
                Timeout = (int)Math.Min(int.MaxValue, _options.Timeout.TotalMilliseconds),
                Notify = ToMailKit(_options.DeliveryNotification),
            };
            if (_options.LocalDomain != null) client.LocalDomain = _options.LocalDomain;
            _client = client;
            try
            {
                await client.ConnectAsync(_options.Host, _options.Port, ToMailKit(_options.Security), cancellationToken).ConfigureAwait(false);
            }
            catch (SmtpCommandException greeting) when (greeting.StatusCode == SmtpStatusCode.ServiceNotAvailable)
            {
                // 421 instead of 220: the server will not take this connection now (often a limit on connections per client).
                Drop();
                var failure = SmtpFailureClassifier.FromReply(421, greeting.Message);
                throw new MailDeliveryException(failure with
                {
                    RefusedConnection = true,
                    Message = $"{Endpoint} refused a new connection at its greeting ({failure.ServerReply}); it may limit how many connections one client may hold.",
                }, greeting);
            }
            finally
            {
                _lastCertificateProblem = client.CertificateProblem;
            }
            ConnectionsOpened++;
            string? user = null;
            if (_tokens != null)
            {
                user = _options.OAuthUser!;
                await SignInWithTokenAsync(client, user, _tokens, cancellationToken).ConfigureAwait(false);
                user += " (OAuth2)";
            }
            else if (_options.Credential != null)
            {
                // One mechanism, one try: MailKit's Authenticate(credentials) would try the next mechanism after a 535,
                // and a lockout policy counts both.
                var mechanism = SmtpLogin.Choose(client.AuthenticationMechanisms, _options.Credential);
                if (mechanism == null) await client.AuthenticateAsync(_options.Credential, cancellationToken).ConfigureAwait(false);
                else
                {
                    try
                    {
                        await client.AuthenticateAsync(mechanism, cancellationToken).ConfigureAwait(false);
                    }
                    catch (MailKit.Security.AuthenticationException ex)
                    {
                        throw new MailDeliveryException(SmtpFailureClassifier.BasicAuthOff(ex.Message, _options.Host, _options.Credential.UserName) ??
                            new Failure(FailureKind.Permanent, FailureReason.Authentication,
                            $"The SMTP server refused the credentials for {_options.Credential.UserName} (AUTH {mechanism.MechanismName}, tried once): {ex.Message}")
                            { ServerReply = ex.Message }, ex);
                    }
                }
                user = _options.Credential.UserName;
            }
            if (_options.DeliveryNotification != DeliveryNotification.None && !client.OffersDsn && !_dsnWarned)
            {
                _dsnWarned = true; // once per transport, not per reconnect
                _events?.Invoke(new DeliveryEvent(DeliveryEventKind.Warning,
                    $"{Endpoint} does not offer DSN (RFC 3461): the delivery notifications asked for ({_options.DeliveryNotification}) are not requested; the mail is sent without them."));
            }
            var tls = client.IsSecure ? $", {client.SslProtocol}" : ", not encrypted";
            _events?.Invoke(new DeliveryEvent(_everConnected ? DeliveryEventKind.Reconnect : DeliveryEventKind.Connect,
                $"{(_everConnected ? "Reconnected" : "Connected")} to {Endpoint}{tls}{(user != null ? ", authenticated as " + user : "")}."));
            _everConnected = true;
            return client;
        }

        public async Task CloseAsync(CancellationToken cancellationToken)
        {
            var client = _client;
            if (client == null) return;
            try
            {
                if (client.IsConnected) await client.DisconnectAsync(true, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception)
            {
                // Closing is best effort: the server may already be gone.
            }
            finally
            {
                Drop();
            }
        }

        private void Drop()
        {
            var client = _client;
            _client = null;
            client?.Dispose();
        }

        public void Dispose() => Drop();

        private bool _dsnWarned;

        private static DeliveryStatusNotification? ToMailKit(DeliveryNotification notify)
        {
            if (notify == DeliveryNotification.None) return null;
            if ((notify & DeliveryNotification.Never) != 0) return DeliveryStatusNotification.Never;
            var flags = (DeliveryStatusNotification)0;
            if ((notify & DeliveryNotification.OnSuccess) != 0) flags |= DeliveryStatusNotification.Success;
            if ((notify & DeliveryNotification.OnFailure) != 0) flags |= DeliveryStatusNotification.Failure;
            if ((notify & DeliveryNotification.Delay) != 0) flags |= DeliveryStatusNotification.Delay;
            return flags;
        }

        /// <summary>
        /// SASL XOAUTH2 with the source's token. A refused token that the source can renew (it expired early, or was
        /// revoked) is renewed and tried once more on the same connection; a second refusal stops the run.
        /// </summary>
        private static async Task SignInWithTokenAsync(SmtpClient client, string user, TokenSource tokens, CancellationToken cancellationToken)
        {
            for (int round = 0; ; round++)
            {
                var token = await tokens.GetAsync(cancellationToken).ConfigureAwait(false);
                try
                {
                    await client.AuthenticateAsync(new SaslMechanismOAuth2(user, token.Value.Reveal()), cancellationToken).ConfigureAwait(false);
                    return;
                }
                catch (MailKit.Security.AuthenticationException ex) when (round == 0 && tokens.Invalidate(token))
                {
                    _ = ex; // renewed below
                }
                catch (MailKit.Security.AuthenticationException ex)
                {
                    var renewal = tokens.CanRenew
                        ? $"a token just obtained from {tokens.Description} was refused too. Check that the app may send as {user} " +
                          "(Microsoft 365: the SMTP.SendAsApp permission with admin consent, the app's service principal registered with New-ServicePrincipal, " +
                          "Add-MailboxPermission -User <its object id> -AccessRights FullAccess; Google: domain-wide delegation with the https://mail.google.com/ scope)."
                        : "access tokens expire (often after an hour): get a new one, or let the module obtain and renew them (an app registration, a managed identity, a service account).";
                    throw new MailDeliveryException(new Failure(FailureKind.Permanent, FailureReason.Authentication,
                        $"The SMTP server refused the OAuth2 token for {user}: {ex.Message} {char.ToUpperInvariant(renewal[0])}{renewal.Substring(1)}")
                        { ServerReply = ex.Message, Remedy = Remedy.Microsoft365 }, ex);
                }
            }
        }

        private static SecureSocketOptions ToMailKit(SmtpSecurity security) => security switch
        {
            SmtpSecurity.None => SecureSocketOptions.None,
            SmtpSecurity.StartTls => SecureSocketOptions.StartTls,
            SmtpSecurity.SslOnConnect => SecureSocketOptions.SslOnConnect,
            _ => SecureSocketOptions.Auto,
        };

        /// <summary>Notes when the last byte of the message has been written, so a later failure is known to be ambiguous.</summary>
        private sealed class BodyProgress : ITransferProgress
        {
            private readonly SendAttempt _attempt;
            public BodyProgress(SendAttempt attempt) => _attempt = attempt;

            public void Report(long bytesTransferred, long totalSize)
            {
                if (totalSize > 0 && bytesTransferred >= totalSize) _attempt.MarkBodySent();
            }

            public void Report(long bytesTransferred)
            {
                // MailKit reports a total whenever it sends a message; without one nothing can be concluded.
            }
        }
    }
}
