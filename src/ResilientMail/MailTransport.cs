using System;
using System.Management.Automation;
using System.Net;
using ResilientMail.Core.Campaigns;
using ResilientMail.Core.Delivery;
using ResilientMail.Core.Transports;

namespace ResilientMail
{
    public enum MailTransportKind { Smtp, PickupDirectory }

    /// <summary>
    /// A validated, reusable description of where mail goes (New-MailTransport). The credential is held
    /// privately: it is not a property, so printing, Format-List * or Export-Clixml never show it.
    /// </summary>
    public sealed class MailTransport
    {
        private readonly PSCredential? _credential;

        private MailTransport(MailTransportKind kind, PSCredential? credential)
        {
            Kind = kind;
            _credential = credential;
        }

        public MailTransportKind Kind { get; }
        public string? SmtpServer { get; private set; }
        public int Port { get; private set; }
        public MailSecurity Security { get; private set; }
        public bool SkipCertificateCheck { get; private set; }
        /// <summary>The user name only.</summary>
        public string? UserName => _credential?.UserName;
        public bool HasCredential => _credential != null;
        public TimeSpan Timeout { get; private set; } = TimeSpan.FromSeconds(30);
        public string? PickupDirectory { get; private set; }

        public override string ToString() => Kind == MailTransportKind.PickupDirectory
            ? $"pickup directory {PickupDirectory}"
            : $"smtp://{SmtpServer}:{Port} ({Security}{(UserName != null ? ", user " + UserName : "")})";

        /// <summary>An SMTP transport; port 0 picks the usual one for the TLS mode (465, 587, else 25).</summary>
        public static MailTransport Smtp(string server, int port, MailSecurity security, PSCredential? credential, bool skipCertificateCheck, TimeSpan timeout)
        {
            if (string.IsNullOrWhiteSpace(server)) throw new ArgumentException("An SMTP server name is required.");
            if (timeout <= TimeSpan.Zero) throw new ArgumentOutOfRangeException(nameof(timeout), timeout, "The timeout must be greater than zero.");
            if (credential != null && credential.Password == null) throw new ArgumentException("The credential has no password.");
            var t = new MailTransport(MailTransportKind.Smtp, credential)
            {
                SmtpServer = server.Trim(),
                Port = port != 0 ? port : security == MailSecurity.SslOnConnect ? 465 : security == MailSecurity.StartTls ? 587 : 25,
                Security = security,
                SkipCertificateCheck = skipCertificateCheck,
                Timeout = timeout,
            };
            t.SmtpOptions().Validate();
            return t;
        }

        public static MailTransport Pickup(string directory) => new MailTransport(MailTransportKind.PickupDirectory, null)
        {
            PickupDirectory = new PickupDirectoryTransport(directory).Directory,
        };

        /// <summary>Rebuilds a transport from a journal's settings; a credential must come from the caller.</summary>
        internal static MailTransport FromSettings(TransportSettings s, PSCredential? credential)
        {
            if (s.Kind == nameof(MailTransportKind.PickupDirectory)) return Pickup(s.PickupDirectory ?? throw new InvalidOperationException("The journal names no pickup directory."));
            Enum.TryParse<MailSecurity>(s.Security, out var security);
            return Smtp(s.Host ?? "", s.Port, security, credential, s.SkipCertificateCheck, TimeSpan.FromSeconds(s.TimeoutSeconds));
        }

        internal TransportSettings Settings() => new TransportSettings
        {
            Kind = Kind.ToString(),
            Host = SmtpServer,
            Port = Port,
            Security = Security.ToString(),
            SkipCertificateCheck = SkipCertificateCheck,
            UserName = UserName,
            TimeoutSeconds = Timeout.TotalSeconds,
            PickupDirectory = PickupDirectory,
        };

        private SmtpOptions SmtpOptions() => new SmtpOptions
        {
            Host = SmtpServer ?? "",
            Port = Port,
            Security = (SmtpSecurity)(int)Security,
            SkipCertificateCheck = SkipCertificateCheck,
            Credential = _credential?.GetNetworkCredential(),
            Timeout = Timeout,
        };

        /// <summary>A new connection-holding transport for one sender (each campaign worker gets its own).</summary>
        internal IMailTransport Open(DeliveryEventSink? events) => Kind == MailTransportKind.PickupDirectory
            ? new PickupDirectoryTransport(PickupDirectory!) { Timeout = Timeout }
            : new SmtpTransport(SmtpOptions(), events);
    }
}
