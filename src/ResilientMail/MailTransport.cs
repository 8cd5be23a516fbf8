using System;
using System.Management.Automation;
using System.Net;
using System.Security;
using ResilientMail.Core;
using ResilientMail.Core.Campaigns;
using ResilientMail.Core.Delivery;
using ResilientMail.Core.Transports;
using ResilientMail.Core.Transports.SendGrid;
using ResilientMail.Core.Transports.Ses;

namespace ResilientMail
{
    public enum MailTransportKind { Smtp, PickupDirectory, SendGrid, Ses }

    /// <summary>
    /// A validated, reusable description of where mail goes (New-MailTransport). Secrets (an SMTP password,
    /// a SendGrid API key, AWS keys) are held privately: they are not properties, so printing, Format-List *,
    /// ConvertTo-Json or Export-Clixml never show them.
    /// </summary>
    public sealed class MailTransport
    {
        public const string SendGridKeyVariable = "SENDGRID_API_KEY";
        private readonly PSCredential? _credential;
        // A SendGrid API key, or an SMTP OAuth2 access token.
        private readonly SecureString? _apiKey;

        private MailTransport(MailTransportKind kind, PSCredential? credential, SecureString? apiKey = null)
        {
            Kind = kind;
            _credential = credential;
            _apiKey = apiKey;
        }

        public MailTransportKind Kind { get; }
        public string? SmtpServer { get; private set; }
        public int Port { get; private set; }
        public MailSecurity Security { get; private set; }
        public bool SkipCertificateCheck { get; private set; }
        /// <summary>The SMTP user name only (for OAuth2, the mailbox the token was issued for).</summary>
        public string? UserName => Kind == MailTransportKind.Smtp ? _credential?.UserName ?? OAuthUser : null;
        /// <summary>SMTP authenticates with an OAuth2 access token (XOAUTH2).</summary>
        public bool UsesOAuth => Kind == MailTransportKind.Smtp && _apiKey != null;
        private string? OAuthUser { get; set; }
        public bool HasCredential => _credential != null || _apiKey != null;
        /// <summary>Where the secret comes from, in words: "parameter", "environment variable SENDGRID_API_KEY", "AWS profile mailer", ...</summary>
        public string? CredentialSource { get; private set; }
        public TimeSpan Timeout { get; private set; } = Defaults.Timeout;
        public string? PickupDirectory { get; private set; }
        /// <summary>SendGrid's API root.</summary>
        public Uri? BaseUri { get; private set; }
        /// <summary>SES region, endpoint override and profile.</summary>
        public string? Region { get; private set; }
        public Uri? EndpointUrl { get; private set; }
        public string? ProfileName { get; private set; }

        private string? _secretFrom;

        /// <summary>The secret was passed in, so a resumed campaign must be handed this transport again.</summary>
        internal bool NeedsCallerSecret => _secretFrom == "Parameter";

        public override string ToString() => Kind switch
        {
            MailTransportKind.PickupDirectory => $"pickup directory {PickupDirectory}",
            MailTransportKind.SendGrid => $"SendGrid {BaseUri} (key from {CredentialSource})",
            MailTransportKind.Ses => $"Amazon SES {Region}{(EndpointUrl != null ? " at " + EndpointUrl : "")} (credentials from {CredentialSource})",
            _ => $"smtp://{SmtpServer}:{Port} ({Security}{(UserName != null ? ", user " + UserName : "")}{(UsesOAuth ? ", OAuth2" : "")})",
        };

        /// <summary>An SMTP transport; port 0 picks the usual one for the TLS mode (465, 587, else 25).</summary>
        public static MailTransport Smtp(string server, int port, MailSecurity security, PSCredential? credential, bool skipCertificateCheck, TimeSpan timeout) =>
            Smtp(server, port, security, credential, null, null, skipCertificateCheck, timeout);

        /// <summary>An SMTP transport that signs in with a password, or with an OAuth2 access token as <paramref name="oauthUser"/>.</summary>
        public static MailTransport Smtp(string server, int port, MailSecurity security, PSCredential? credential, string? oauthUser, SecureString? oauthToken, bool skipCertificateCheck, TimeSpan timeout)
        {
            if (string.IsNullOrWhiteSpace(server)) throw new ArgumentException("An SMTP server name is required.");
            CheckTimeout(timeout);
            if (credential != null && credential.Password == null) throw new ArgumentException("The credential has no password.");
            if (oauthToken != null && credential != null) throw new ArgumentException("Use -Credential (a password) or an OAuth2 token, not both.");
            if (oauthToken != null && oauthToken.Length == 0) throw new ArgumentException("The OAuth2 token is empty.");
            if (oauthToken != null && string.IsNullOrWhiteSpace(oauthUser))
                throw new ArgumentException("An OAuth2 token needs the mailbox it was issued for: pass -UserName, or -OAuthCredential (user name and token).");
            var t = new MailTransport(MailTransportKind.Smtp, credential, oauthToken)
            {
                OAuthUser = oauthToken != null ? oauthUser!.Trim() : null,
                SmtpServer = server.Trim(),
                Port = port != 0 ? port : security == MailSecurity.SslOnConnect ? 465 : security == MailSecurity.StartTls ? 587 : 25,
                Security = security,
                SkipCertificateCheck = skipCertificateCheck,
                Timeout = timeout,
                CredentialSource = oauthToken != null ? "OAuth2 token (parameter)" : credential != null ? "parameter" : null,
                _secretFrom = credential != null || oauthToken != null ? "Parameter" : null,
            };
            t.SmtpOptions().Validate();
            return t;
        }

        public static MailTransport Pickup(string directory) => new MailTransport(MailTransportKind.PickupDirectory, null)
        {
            PickupDirectory = new PickupDirectoryTransport(directory).Directory,
        };

        /// <summary>SendGrid: the key from <paramref name="apiKey"/>, else a credential's password, else SENDGRID_API_KEY.</summary>
        public static MailTransport SendGrid(SecureString? apiKey, Uri? baseUri, TimeSpan timeout)
        {
            CheckTimeout(timeout);
            string from = "Parameter";
            if (apiKey == null || apiKey.Length == 0)
            {
                var env = Environment.GetEnvironmentVariable(SendGridKeyVariable);
                if (string.IsNullOrWhiteSpace(env))
                    throw new ArgumentException($"No SendGrid API key: pass -ApiKey (a SecureString, e.g. Read-Host -AsSecureString) or -Credential, or set the {SendGridKeyVariable} environment variable.");
                apiKey = ToSecure(env!.Trim());
                from = "Environment";
            }
            var uri = baseUri ?? SendGridOptions.DefaultBaseUri;
            var t = new MailTransport(MailTransportKind.SendGrid, null, apiKey)
            {
                BaseUri = uri,
                Timeout = timeout,
                CredentialSource = from == "Environment" ? "environment variable " + SendGridKeyVariable : "parameter",
                _secretFrom = from,
            };
            using (t.Open(null)) { } // validates the address now rather than at the first send
            return t;
        }

        /// <summary>Amazon SES: explicit keys (user = access key id, password = secret), else the named profile, else the standard AWS chain.</summary>
        public static MailTransport Ses(string? region, string? profileName, PSCredential? credential, Uri? endpointUrl, TimeSpan timeout)
        {
            CheckTimeout(timeout);
            if (credential != null && profileName != null) throw new ArgumentException("Use -Credential or -ProfileName, not both.");
            var options = new SesOptions
            {
                Region = region,
                ProfileName = string.IsNullOrWhiteSpace(profileName) ? null : profileName!.Trim(),
                EndpointUrl = endpointUrl,
                AccessKeyId = credential?.UserName,
                SecretAccessKey = credential == null ? null : new Secret(credential.GetNetworkCredential().Password),
                Timeout = timeout,
            };
            var resolved = options.ResolveRegion();
            options.CheckCredentials(); // fails now, with advice, when there are none
            return new MailTransport(MailTransportKind.Ses, credential)
            {
                Region = resolved,
                ProfileName = options.ProfileName,
                EndpointUrl = endpointUrl,
                Timeout = timeout,
                CredentialSource = credential != null ? "parameter" : options.ProfileName != null ? "AWS profile " + options.ProfileName : "the standard AWS credential chain",
                _secretFrom = credential != null ? "Parameter" : null,
            };
        }

        /// <summary>Rebuilds a transport from a journal's settings; a secret passed as a parameter must come from the caller.</summary>
        internal static MailTransport FromSettings(TransportSettings s)
        {
            switch (s.Kind)
            {
                case nameof(MailTransportKind.PickupDirectory):
                    return Pickup(s.PickupDirectory ?? throw new InvalidOperationException("The journal names no pickup directory."));
                case nameof(MailTransportKind.SendGrid):
                    return SendGrid(null, s.BaseUri != null ? new Uri(s.BaseUri) : null, TimeSpan.FromSeconds(s.TimeoutSeconds));
                case nameof(MailTransportKind.Ses):
                    return Ses(s.Region, s.ProfileName, null, s.EndpointUrl != null ? new Uri(s.EndpointUrl) : null, TimeSpan.FromSeconds(s.TimeoutSeconds));
                default:
                    Enum.TryParse<MailSecurity>(s.Security, out var security);
                    return Smtp(s.Host ?? "", s.Port, security, null, s.SkipCertificateCheck, TimeSpan.FromSeconds(s.TimeoutSeconds));
            }
        }

        internal TransportSettings Settings() => new TransportSettings
        {
            Kind = Kind.ToString(),
            Host = SmtpServer,
            Port = Port,
            Security = Kind == MailTransportKind.Smtp ? Security.ToString() : null,
            SkipCertificateCheck = SkipCertificateCheck,
            UserName = UserName,
            TimeoutSeconds = Timeout.TotalSeconds,
            PickupDirectory = PickupDirectory,
            BaseUri = BaseUri?.ToString(),
            Region = Region,
            EndpointUrl = EndpointUrl?.ToString(),
            ProfileName = ProfileName,
            SecretFrom = _secretFrom,
        };

        private SmtpOptions SmtpOptions() => new SmtpOptions
        {
            Host = SmtpServer ?? "",
            Port = Port,
            Security = (SmtpSecurity)(int)Security,
            SkipCertificateCheck = SkipCertificateCheck,
            Credential = _credential?.GetNetworkCredential(),
            OAuthToken = UsesOAuth ? new Secret(new NetworkCredential("", _apiKey).Password) : null,
            OAuthUser = OAuthUser,
            Timeout = Timeout,
        };

        /// <summary>A new connection-holding transport for one sender (each campaign worker gets its own).</summary>
        internal IMailTransport Open(DeliveryEventSink? events) => Kind switch
        {
            MailTransportKind.PickupDirectory => new PickupDirectoryTransport(PickupDirectory!) { Timeout = Timeout },
            MailTransportKind.SendGrid => new SendGridTransport(new SendGridOptions
            {
                ApiKey = new Secret(new NetworkCredential("", _apiKey).Password),
                BaseUri = BaseUri!,
                Timeout = Timeout,
            }),
            MailTransportKind.Ses => new SesTransport(new SesOptions
            {
                Region = Region,
                ProfileName = ProfileName,
                EndpointUrl = EndpointUrl,
                AccessKeyId = _credential?.UserName,
                SecretAccessKey = _credential == null ? null : new Secret(_credential.GetNetworkCredential().Password),
                Timeout = Timeout,
            }),
            _ => new SmtpTransport(SmtpOptions(), events),
        };

        private static void CheckTimeout(TimeSpan timeout)
        {
            if (timeout <= TimeSpan.Zero) throw new ArgumentOutOfRangeException(nameof(timeout), timeout, "The timeout must be greater than zero.");
        }

        private static SecureString ToSecure(string value)
        {
            var s = new SecureString();
            foreach (var c in value) s.AppendChar(c);
            s.MakeReadOnly();
            return s;
        }
    }
}
