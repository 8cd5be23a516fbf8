using System;
using System.Net;
using System.Threading;
using System.Threading.Tasks;
using MailKit;
using MailKit.Net.Smtp;
using MailKit.Security;
using MimeKit;
using ResilientMail.Core.Delivery;
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

    public sealed record SmtpOptions
    {
        public string Host { get; init; } = "";
        public int Port { get; init; } = 25;
        public SmtpSecurity Security { get; init; } = SmtpSecurity.Auto;
        /// <summary>Accept any server certificate. For test servers only.</summary>
        public bool SkipCertificateCheck { get; init; }
        public NetworkCredential? Credential { get; init; }
        /// <summary>An OAuth2 access token: SASL XOAUTH2 as <see cref="OAuthUser"/> instead of a password (Microsoft 365, Gmail).</summary>
        public Secret? OAuthToken { get; init; }
        public string? OAuthUser { get; init; }
        public TimeSpan Timeout { get; init; } = TimeSpan.FromSeconds(30);
        /// <summary>The name sent in EHLO; MailKit picks the machine's name when null.</summary>
        public string? LocalDomain { get; init; }

        public SmtpOptions Validate()
        {
            if (string.IsNullOrWhiteSpace(Host)) throw new ArgumentException("An SMTP server name is required.", nameof(Host));
            if (Port < 1 || Port > 65535) throw new ArgumentOutOfRangeException(nameof(Port), Port, "Port must be 1-65535.");
            if (Timeout <= TimeSpan.Zero) throw new ArgumentOutOfRangeException(nameof(Timeout), Timeout, "Timeout must be greater than zero.");
            if (OAuthToken != null && string.IsNullOrWhiteSpace(OAuthUser)) throw new ArgumentException("An OAuth2 token needs the user name (the mailbox) it was issued for.", nameof(OAuthUser));
            if (OAuthToken != null && Credential != null) throw new ArgumentException("Use a password credential or an OAuth2 token, not both.", nameof(OAuthToken));
            return this;
        }
    }

    /// <summary>SMTP through MailKit over one connection kept for as long as the transport lives.</summary>
    public sealed class SmtpTransport : IMailTransport
    {
        private readonly SmtpOptions _options;
        private readonly DeliveryEventSink? _events;
        private SmtpClient? _client;
        private bool _everConnected;

        public SmtpTransport(SmtpOptions options, DeliveryEventSink? events = null)
        {
            _options = (options ?? throw new ArgumentNullException(nameof(options))).Validate();
            _events = events;
            Endpoint = new Endpoint(_options.Host, _options.Port);
        }

        public string Description => $"smtp://{Endpoint} ({_options.Security}{(_options.OAuthToken != null ? ", OAuth2" : _options.Credential != null ? ", authenticated" : "")})";
        public Endpoint Endpoint { get; }
        public TimeSpan Timeout => _options.Timeout;

        /// <summary>How many times a connection was opened (the first one included).</summary>
        public int ConnectionsOpened { get; private set; }

        public async Task<Receipt> SendAsync(MimeMessage message, SendAttempt attempt, CancellationToken cancellationToken)
        {
            try
            {
                var client = await ConnectedClientAsync(cancellationToken).ConfigureAwait(false);
                var reply = await client.SendAsync(message, cancellationToken, new BodyProgress(attempt)).ConfigureAwait(false);
                return new Receipt(message.MessageId ?? "", reply);
            }
            catch (OperationCanceledException)
            {
                Drop(); // the conversation is in an unknown state
                throw;
            }
            catch (Exception ex) when (!(ex is MailDeliveryException))
            {
                var failure = SmtpFailureClassifier.Classify(ex, attempt.BodySent);
                // A refused command leaves the session usable (MailKit resets it); anything else, and 421, does not.
                if (!(ex is SmtpCommandException command) || command.StatusCode == SmtpStatusCode.ServiceNotAvailable)
                    Drop();
                throw new MailDeliveryException(failure, ex);
            }
        }

        private async Task<SmtpClient> ConnectedClientAsync(CancellationToken cancellationToken)
        {
            if (_client != null && _client.IsConnected) return _client;
            Drop();
            var client = new SmtpClient { Timeout = (int)Math.Min(int.MaxValue, _options.Timeout.TotalMilliseconds) };
            if (_options.LocalDomain != null) client.LocalDomain = _options.LocalDomain;
            if (_options.SkipCertificateCheck)
            {
                client.CheckCertificateRevocation = false;
                client.ServerCertificateValidationCallback = (sender, certificate, chain, errors) => true;
            }
            _client = client;
            await client.ConnectAsync(_options.Host, _options.Port, ToMailKit(_options.Security), cancellationToken).ConfigureAwait(false);
            ConnectionsOpened++;
            string? user = null;
            if (_options.OAuthToken != null)
            {
                user = _options.OAuthUser!;
                try
                {
                    await client.AuthenticateAsync(new SaslMechanismOAuth2(user, _options.OAuthToken.Reveal()), cancellationToken).ConfigureAwait(false);
                }
                catch (MailKit.Security.AuthenticationException ex)
                {
                    throw new MailDeliveryException(new Failure(FailureKind.Permanent, FailureReason.Authentication,
                        $"The SMTP server refused the OAuth2 token for {user}: {ex.Message} Access tokens expire (often after an hour): get a new one, " +
                        "and check that it was issued for SMTP (Microsoft 365: the SMTP.Send permission; Gmail: the https://mail.google.com/ scope).") { ServerReply = ex.Message }, ex);
                }
                user += " (OAuth2)";
            }
            else if (_options.Credential != null)
            {
                await client.AuthenticateAsync(_options.Credential, cancellationToken).ConfigureAwait(false);
                user = _options.Credential.UserName;
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
