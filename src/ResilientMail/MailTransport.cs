using System;
using System.Management.Automation;
using System.Net;
using System.Security;
using ResilientMail.Core;
using ResilientMail.Core.Delivery;
using ResilientMail.Core.Identity;
using ResilientMail.Core.Transports;
using ResilientMail.Core.Transports.SendGrid;
using ResilientMail.Core.Transports.Ses;
using ResilientMail.Internal;

namespace ResilientMail
{
    public enum MailTransportKind { Smtp, PickupDirectory, SendGrid, Ses, Graph }

    /// <summary>
    /// A validated, reusable transport (New-MailTransport): a secret-free description of where mail goes (Core's, the one
    /// the journal stores) and the secret, held privately. Secrets (an SMTP password, a SendGrid API key, AWS keys) are
    /// not properties, so printing, Format-List *, ConvertTo-Json or Export-Clixml never show them.
    /// </summary>
    public sealed class MailTransport
    {
        public const string SendGridKeyVariable = SendGridDescription.KeyVariable;
        private readonly TransportDescription _description;
        private readonly PSCredential? _credential;
        // A SendGrid API key, or an SMTP OAuth2 access token.
        private readonly SecureString? _token;
        // A client secret, a certificate object or a PFX password: what a token source needs and the journal never holds.
        private readonly TokenSecrets? _tokenSecrets;
        private TransportSecret? _secret;

        private MailTransport(TransportDescription description, PSCredential? credential = null, SecureString? token = null, string? credentialSource = null, TokenSecrets? tokenSecrets = null)
        {
            _description = description.Validate();
            _credential = credential;
            _token = token;
            _tokenSecrets = tokenSecrets;
            CredentialSource = credentialSource;
        }

        public MailTransportKind Kind => _description.Kind switch
        {
            TransportKind.PickupDirectory => MailTransportKind.PickupDirectory,
            TransportKind.SendGrid => MailTransportKind.SendGrid,
            TransportKind.Ses => MailTransportKind.Ses,
            TransportKind.Graph => MailTransportKind.Graph,
            _ => MailTransportKind.Smtp,
        };

        public string? SmtpServer => (_description as SmtpDescription)?.Host;
        public int Port => (_description as SmtpDescription)?.EffectivePort ?? 0;
        public MailSecurity Security => _description is SmtpDescription s ? OutputMapping.Of(s.Security) : MailSecurity.Auto;
        public bool SkipCertificateCheck => (_description as SmtpDescription)?.SkipCertificateCheck == true;
        /// <summary>The certificate's revocation status is not asked for (an internal CA whose CRL cannot be reached); all else is checked.</summary>
        public bool SkipRevocationCheck => (_description as SmtpDescription)?.SkipRevocationCheck == true;
        /// <summary>The delivery status notifications (DSN) asked of the server for each recipient.</summary>
        public System.Net.Mail.DeliveryNotificationOptions DeliveryNotificationOption =>
            _description is SmtpDescription s ? OutputMapping.Of(s.DeliveryNotification) : System.Net.Mail.DeliveryNotificationOptions.None;
        /// <summary>The SMTP user name only (for OAuth2, the mailbox the token was issued for).</summary>
        public string? UserName => (_description as SmtpDescription)?.UserName;
        /// <summary>SMTP authenticates with an OAuth2 access token (XOAUTH2).</summary>
        public bool UsesOAuth => (_description as SmtpDescription)?.UsesOAuth == true || _description is GraphDescription;
        public bool HasCredential => _credential != null || _token != null || _tokenSecrets != null;
        /// <summary>Microsoft Graph: the mailbox that sends, and Graph's address.</summary>
        public string? Mailbox => (_description as GraphDescription)?.Mailbox;
        public Uri? GraphEndpoint => (_description as GraphDescription)?.BaseUri;
        /// <summary>Where OAuth2 tokens come from, in words (never a secret): "Microsoft Entra app ... with certificate 3A5C...", "the managed identity ...".</summary>
        public string? TokensFrom => Tokens?.ToString();
        public string? TenantId => Tokens?.TenantId;
        public string? ClientId => Tokens?.ClientId;
        public string? CertificateThumbprint => Tokens?.CertificateThumbprint;
        /// <summary>Tokens are renewed by the module (an app registration, a managed identity, a service account), not passed in.</summary>
        public bool RenewsTokens => Tokens != null && Tokens.Kind != TokenKind.Given;
        private OAuthSettings? Tokens => _description switch { GraphDescription g => g.OAuth, SmtpDescription s when s.UsesOAuth => s.OAuth ?? new OAuthSettings { Kind = TokenKind.Given }, _ => null };
        /// <summary>Where the secret comes from, in words: "parameter", "environment variable SENDGRID_API_KEY", "AWS profile mailer", ...</summary>
        public string? CredentialSource { get; }
        public TimeSpan Timeout => _description.Timeout;
        public string? PickupDirectory => (_description as PickupDescription)?.Directory;
        /// <summary>SendGrid's API root.</summary>
        public Uri? BaseUri => (_description as SendGridDescription)?.BaseUri;
        /// <summary>SES region, endpoint override and profile.</summary>
        public string? Region => (_description as SesDescription)?.Region;
        public Uri? EndpointUrl => (_description as SesDescription)?.EndpointUrl;
        public string? ProfileName => (_description as SesDescription)?.ProfileName;

        /// <summary>The description the journal stores (no secret).</summary>
        internal TransportDescription Description => _description;

        /// <summary>The secret was passed in, so a resumed campaign must be handed this transport again.</summary>
        internal bool NeedsCallerSecret => _description.NeedsCallerSecret;

        public override string ToString() => _description switch
        {
            SendGridDescription _ => $"{_description} (key from {CredentialSource})",
            SesDescription _ => $"{_description} (credentials from {CredentialSource})",
            _ => _description.ToString(),
        };

        /// <summary>Microsoft Graph sendMail as <paramref name="mailbox"/>, with tokens from <paramref name="tokens"/>.</summary>
        internal static MailTransport Graph(string mailbox, Uri? endpoint, OAuthSettings tokens, TokenSecrets? secrets, SecureString? token, TimeSpan timeout)
        {
            var description = new GraphDescription
            {
                Mailbox = (mailbox ?? "").Trim(),
                BaseUri = endpoint ?? Core.Transports.Graph.GraphOptions.DefaultBaseUri,
                OAuth = tokens,
                Timeout = timeout,
                Secret = tokens.SecretSource,
            };
            return Checked(new MailTransport(description, null, token, tokens.SecretSource == SecretSource.Caller ? "parameter" : tokens.ToString(), secrets));
        }

        /// <summary>This SMTP transport signing in as <paramref name="user"/> with tokens the module obtains and renews.</summary>
        internal MailTransport WithTokens(string user, OAuthSettings tokens, TokenSecrets? secrets)
        {
            var smtp = (SmtpDescription)_description;
            var description = smtp with { UserName = user.Trim(), UsesOAuth = true, OAuth = tokens, Secret = tokens.SecretSource };
            return Checked(new MailTransport(description, null, null, tokens.SecretSource == SecretSource.Caller ? "parameter" : tokens.ToString(), secrets));
        }

        /// <summary>Opens the transport once, without a network call, so that a missing certificate or key file shows now.</summary>
        private static MailTransport Checked(MailTransport t)
        {
            using (t.Open(null)) { }
            return t;
        }

        /// <summary>An SMTP transport; port 0 picks the usual one for the TLS mode (465, 587, else 25).</summary>
        public static MailTransport Smtp(string server, int port, MailSecurity security, PSCredential? credential, bool skipCertificateCheck, TimeSpan timeout) =>
            Smtp(server, port, security, credential, null, null, skipCertificateCheck, timeout);

        /// <summary>An SMTP transport that signs in with a password, or with an OAuth2 access token as <paramref name="oauthUser"/>.</summary>
        public static MailTransport Smtp(string server, int port, MailSecurity security, PSCredential? credential, string? oauthUser, SecureString? oauthToken, bool skipCertificateCheck, TimeSpan timeout) =>
            Smtp(server, port, security, credential, oauthUser, oauthToken, skipCertificateCheck, false, timeout);

        /// <summary>... and, with <paramref name="skipRevocationCheck"/>, without asking the CA whether the certificate was revoked.</summary>
        public static MailTransport Smtp(string server, int port, MailSecurity security, PSCredential? credential, string? oauthUser, SecureString? oauthToken,
            bool skipCertificateCheck, bool skipRevocationCheck, TimeSpan timeout) =>
            Smtp(server, port, security, credential, oauthUser, oauthToken, skipCertificateCheck, skipRevocationCheck, System.Net.Mail.DeliveryNotificationOptions.None, timeout);

        /// <summary>... asking the server for delivery status notifications (DSN) as Send-MailMessage's -DeliveryNotificationOption does.</summary>
        public static MailTransport Smtp(string server, int port, MailSecurity security, PSCredential? credential, string? oauthUser, SecureString? oauthToken,
            bool skipCertificateCheck, bool skipRevocationCheck, System.Net.Mail.DeliveryNotificationOptions notify, TimeSpan timeout)
        {
            if (credential != null && credential.Password == null) throw new ArgumentException("The credential has no password.");
            if (oauthToken != null && credential != null) throw new ArgumentException("Use -Credential (a password) or an OAuth2 token, not both.");
            if (oauthToken != null && oauthToken.Length == 0) throw new ArgumentException("The OAuth2 token is empty.");
            if (oauthToken != null && string.IsNullOrWhiteSpace(oauthUser))
                throw new ArgumentException("An OAuth2 token needs the mailbox it was issued for: pass -UserName, or -OAuthCredential (user name and token).");
            var description = new SmtpDescription
            {
                Host = (server ?? "").Trim(),
                Port = port,
                Security = OutputMapping.Of(security),
                SkipCertificateCheck = skipCertificateCheck,
                SkipRevocationCheck = skipRevocationCheck,
                DeliveryNotification = OutputMapping.Of(notify),
                UserName = oauthToken != null ? oauthUser!.Trim() : credential?.UserName,
                UsesOAuth = oauthToken != null,
                Timeout = timeout,
                Secret = credential != null || oauthToken != null ? SecretSource.Caller : SecretSource.None,
            };
            var t = new MailTransport(description, credential, oauthToken, oauthToken != null ? "OAuth2 token (parameter)" : credential != null ? "parameter" : null);
            description.Options(t.Secret()); // the same checks a send makes, now
            return t;
        }

        public static MailTransport Pickup(string directory) =>
            new MailTransport(new PickupDescription { Directory = new PickupDirectoryTransport(directory).Directory });

        /// <summary>SendGrid: the key from <paramref name="apiKey"/>, else a credential's password, else SENDGRID_API_KEY.</summary>
        public static MailTransport SendGrid(SecureString? apiKey, Uri? baseUri, TimeSpan timeout)
        {
            bool fromEnvironment = apiKey == null || apiKey.Length == 0;
            if (fromEnvironment && string.IsNullOrWhiteSpace(Environment.GetEnvironmentVariable(SendGridKeyVariable)))
                throw new ArgumentException($"No SendGrid API key: pass -ApiKey (a SecureString, e.g. Read-Host -AsSecureString) or -Credential, or set the {SendGridKeyVariable} environment variable.");
            var t = new MailTransport(new SendGridDescription
            {
                BaseUri = baseUri ?? SendGridOptions.DefaultBaseUri,
                Timeout = timeout,
                Secret = fromEnvironment ? SecretSource.Environment : SecretSource.Caller,
            }, null, fromEnvironment ? null : apiKey, fromEnvironment ? "environment variable " + SendGridKeyVariable : "parameter");
            using (t.Open(null)) { } // validates the address now rather than at the first send
            return t;
        }

        /// <summary>Amazon SES: explicit keys (user = access key id, password = secret), else the named profile, else the standard AWS chain.</summary>
        public static MailTransport Ses(string? region, string? profileName, PSCredential? credential, Uri? endpointUrl, TimeSpan timeout)
        {
            if (credential != null && profileName != null) throw new ArgumentException("Use -Credential or -ProfileName, not both.");
            var description = new SesDescription
            {
                Region = region,
                ProfileName = string.IsNullOrWhiteSpace(profileName) ? null : profileName!.Trim(),
                EndpointUrl = endpointUrl,
                Timeout = timeout,
                Secret = credential != null ? SecretSource.Caller : SecretSource.Ambient,
            };
            description.Validate();
            var options = description.Options(Secret(credential, null));
            description = description with { Region = options.ResolveRegion() };
            options.CheckCredentials(); // fails now, with advice, when there are none
            return new MailTransport(description, credential, null,
                credential != null ? "parameter" : description.ProfileName != null ? "AWS profile " + description.ProfileName : "the standard AWS credential chain");
        }

        /// <summary>Rebuilds a transport from a journal's description, whose secret (if any) is found again where it came from.</summary>
        internal static MailTransport FromDescription(TransportDescription d)
        {
            if (d.NeedsCallerSecret) throw new InvalidOperationException("The secret was passed as a parameter and is never stored.");
            return d switch
            {
                PickupDescription p => Pickup(p.Directory),
                SendGridDescription g => SendGrid(null, g.BaseUri, g.Timeout),
                SesDescription s => Ses(s.Region, s.ProfileName, null, s.EndpointUrl, s.Timeout),
                _ => new MailTransport(d),
            };
        }

        /// <summary>A new connection-holding transport for one sender (each campaign worker gets its own).</summary>
        internal IMailTransport Open(DeliveryEventSink? events) => _description.Open(Secret(), events);

        // One secret for the transport's life: its token source (and the token it holds) is shared by every run and worker.
        private TransportSecret Secret()
        {
            if (_secret != null) return _secret;
            var basic = Secret(_credential, _token);
            // Always a new instance (never TransportSecret.None): the token sources it holds belong to this transport alone.
            return _secret = new TransportSecret
            {
                Password = basic.Password, Token = basic.Token, AccessKeyId = basic.AccessKeyId, SecretAccessKey = basic.SecretAccessKey,
                ClientSecret = _tokenSecrets?.ClientSecret == null ? null : new Secret(new NetworkCredential("", _tokenSecrets.ClientSecret).Password),
                Certificate = _tokenSecrets?.Certificate,
                CertificatePassword = _tokenSecrets?.CertificatePassword == null ? null : new Secret(new NetworkCredential("", _tokenSecrets.CertificatePassword).Password),
            };
        }

        private static TransportSecret Secret(PSCredential? credential, SecureString? token) =>
            credential == null && token == null ? TransportSecret.None : new TransportSecret
            {
                Password = credential?.GetNetworkCredential(),
                Token = token == null ? null : new Secret(new NetworkCredential("", token).Password),
                AccessKeyId = credential?.UserName,
                SecretAccessKey = credential == null ? null : new Secret(credential.GetNetworkCredential().Password),
            };
    }

    /// <summary>The secret parts of a token sign-in, held by the transport and never shown.</summary>
    internal sealed class TokenSecrets
    {
        public SecureString? ClientSecret { get; set; }
        public System.Security.Cryptography.X509Certificates.X509Certificate2? Certificate { get; set; }
        public SecureString? CertificatePassword { get; set; }
    }
}
