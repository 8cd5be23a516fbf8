using System;
using System.Net;
using System.Text.Json;
using System.Text.Json.Serialization;
using System.Collections.Concurrent;
using ResilientMail.Core.Delivery;
using ResilientMail.Core.Identity;
using ResilientMail.Core.Resilience;
using ResilientMail.Core.Transports.Graph;
using ResilientMail.Core.Transports.SendGrid;
using ResilientMail.Core.Transports.Ses;

namespace ResilientMail.Core.Transports
{
    public enum TransportKind { Smtp, PickupDirectory, SendGrid, Ses, Graph }

    /// <summary>Where a transport's secret comes from, so that a campaign resumed by name knows whether it can find it again.</summary>
    public enum SecretSource
    {
        /// <summary>No secret (a pickup folder, an SMTP relay without AUTH).</summary>
        None,
        /// <summary>Passed in by the caller: a resume must be handed the transport again.</summary>
        Caller,
        /// <summary>An environment variable (SENDGRID_API_KEY), read again on resume.</summary>
        Environment,
        /// <summary>Found by the provider's own chain (an AWS profile, SSO, a role), found again on resume.</summary>
        Ambient,
    }

    /// <summary>The secret half of a transport: never serialised, never printed.</summary>
    public sealed class TransportSecret
    {
        public static readonly TransportSecret None = new TransportSecret();

        /// <summary>SMTP AUTH with a password.</summary>
        public NetworkCredential? Password { get; init; }
        /// <summary>A SendGrid API key, or an SMTP OAuth2 access token.</summary>
        public Secret? Token { get; init; }
        /// <summary>Explicit AWS keys.</summary>
        public string? AccessKeyId { get; init; }
        public Secret? SecretAccessKey { get; init; }
        /// <summary>A Microsoft Entra app registration's client secret.</summary>
        public Secret? ClientSecret { get; init; }
        /// <summary>A certificate (with its private key) passed in as an object.</summary>
        public System.Security.Cryptography.X509Certificates.X509Certificate2? Certificate { get; init; }
        /// <summary>The password of a PFX file.</summary>
        public Secret? CertificatePassword { get; init; }

        private readonly ConcurrentDictionary<string, TokenSource> _tokens = new ConcurrentDictionary<string, TokenSource>();

        /// <summary>
        /// The one token source for a scope, made on first use: every connection a run opens with this secret (each
        /// campaign worker's) shares one token and renews it once.
        /// </summary>
        public TokenSource TokensFor(string scope, OAuthSettings settings, Func<TokenSource> make)
        {
            if (ReferenceEquals(this, None)) return make(); // the shared empty secret holds nothing, not even a token source
            return _tokens.GetOrAdd(scope + "|" + settings, _ => make());
        }
    }

    /// <summary>Exchange Online's sending limits for one mailbox, applied to Graph and smtp.office365.com unless overridden.</summary>
    public static class Microsoft365Limits
    {
        /// <summary>Messages a minute per mailbox.</summary>
        public static readonly RateLimit MessageRate = new RateLimit(30, TimeSpan.FromMinutes(1));
        /// <summary>Recipients a day (a rolling 24 hours) per mailbox.</summary>
        public const int RecipientsPerDay = 10000;
        /// <summary>Concurrent Graph requests per mailbox.</summary>
        public const int ConcurrentRequests = GraphTransport.MaxConcurrentRequests;
    }

    /// <summary>
    /// Where mail goes, without any secret: what the journal stores so that a campaign resumes by name, and what opens a
    /// live transport (with the secret). One record per kind holds that kind's defaults, port rules and validation.
    /// </summary>
    [JsonConverter(typeof(TransportDescriptionJson))]
    public abstract record TransportDescription
    {
        public abstract TransportKind Kind { get; }
        /// <summary>The limit on one attempt.</summary>
        public TimeSpan Timeout { get; init; } = Defaults.Timeout;
        public SecretSource Secret { get; init; }

        /// <summary>A resume must be handed the transport again, since its secret is never stored.</summary>
        public virtual bool NeedsCallerSecret => Secret == SecretSource.Caller;

        /// <summary>The provider's own limit on messages per window, the pace when none is asked for (Microsoft 365: 30 a minute).</summary>
        public virtual RateLimit? ProviderRate => null;
        /// <summary>The provider's limit on recipients in a rolling 24 hours (Microsoft 365: 10,000 per mailbox).</summary>
        public virtual int? RecipientsPerDay => null;
        /// <summary>The most connections or requests at once the provider serves for one sender (Graph: 4 per mailbox).</summary>
        public virtual int? MaxConcurrency => null;

        /// <summary>Throws <see cref="ArgumentException"/> for a setting that cannot work; returns this.</summary>
        public virtual TransportDescription Validate()
        {
            if (Timeout <= TimeSpan.Zero) throw new ArgumentOutOfRangeException(nameof(Timeout), Timeout, "The timeout must be greater than zero.");
            return this;
        }

        /// <summary>A new, connection-holding transport for one sender (each campaign worker gets its own).</summary>
        public abstract IMailTransport Open(TransportSecret secret, DeliveryEventSink? events);
    }

    public sealed record SmtpDescription : TransportDescription
    {
        public override TransportKind Kind => TransportKind.Smtp;
        public string Host { get; init; } = "";
        /// <summary>0 when not given: <see cref="DefaultPort"/> for the TLS mode.</summary>
        public int Port { get; init; }
        public SmtpSecurity Security { get; init; } = SmtpSecurity.Auto;
        /// <summary>Accept any server certificate. For test servers only.</summary>
        public bool SkipCertificateCheck { get; init; }
        /// <summary>Skip only the revocation check.</summary>
        public bool SkipRevocationCheck { get; init; }
        /// <summary>Delivery status notifications asked of the server (DSN).</summary>
        public DeliveryNotification DeliveryNotification { get; init; }
        /// <summary>The user name only (for OAuth2 the mailbox); the password or token is never here.</summary>
        public string? UserName { get; init; }
        /// <summary>Signs in with an OAuth2 access token (XOAUTH2) rather than a password.</summary>
        public bool UsesOAuth { get; init; }
        /// <summary>How the tokens are obtained (and renewed); null with <see cref="UsesOAuth"/> for a token passed in.</summary>
        public OAuthSettings? OAuth { get; init; }

        private OAuthSettings TokenSettings => OAuth ?? new OAuthSettings { Kind = TokenKind.Given };

        /// <summary>Exchange Online's SMTP submission endpoints (smtp.office365.com, and its national-cloud names).</summary>
        public bool IsExchangeOnline => Host.EndsWith(".office365.com", StringComparison.OrdinalIgnoreCase) || Host.EndsWith(".office365.us", StringComparison.OrdinalIgnoreCase)
            || Host.EndsWith(".partner.outlook.cn", StringComparison.OrdinalIgnoreCase);

        public override RateLimit? ProviderRate => IsExchangeOnline ? Microsoft365Limits.MessageRate : null;
        public override int? RecipientsPerDay => IsExchangeOnline ? Microsoft365Limits.RecipientsPerDay : null;

        /// <summary>The token scope for SMTP AUTH XOAUTH2: Gmail's mail scope, or Exchange Online's (national clouds by host).</summary>
        public string OAuthScope => TokenSettings.Kind == TokenKind.GoogleServiceAccount ? GoogleTokenSource.MailScope
            : Host.EndsWith(".office365.us", StringComparison.OrdinalIgnoreCase) ? "https://outlook.office365.us/.default"
            : Host.EndsWith(".partner.outlook.cn", StringComparison.OrdinalIgnoreCase) ? "https://partner.outlook.cn/.default"
            : "https://outlook.office365.com/.default";

        /// <summary>The usual port of a TLS mode: 465 for TLS from the first byte, 587 for STARTTLS, else 25.</summary>
        public static int DefaultPort(SmtpSecurity security) => security == SmtpSecurity.SslOnConnect ? 465 : security == SmtpSecurity.StartTls ? 587 : 25;

        public int EffectivePort => Port != 0 ? Port : DefaultPort(Security);

        // An SMTP user signs in with something the journal does not hold, unless the tokens come from what it does
        // (a managed identity, a certificate in the store, a service account key file).
        public override bool NeedsCallerSecret => UsesOAuth ? TokenSettings.SecretSource == SecretSource.Caller : base.NeedsCallerSecret || UserName != null;

        public override TransportDescription Validate()
        {
            base.Validate();
            if (string.IsNullOrWhiteSpace(Host)) throw new ArgumentException("An SMTP server name is required.");
            if (Port < 0 || Port > 65535) throw new ArgumentOutOfRangeException(nameof(Port), Port, "Port must be 1-65535.");
            if (UsesOAuth && string.IsNullOrWhiteSpace(UserName)) throw new ArgumentException("An OAuth2 token needs the mailbox it was issued for.");
            OAuth?.Validate();
            return this;
        }

        public SmtpOptions Options(TransportSecret secret) => new SmtpOptions
        {
            Host = Host,
            Port = EffectivePort,
            Security = Security,
            SkipCertificateCheck = SkipCertificateCheck,
            SkipRevocationCheck = SkipRevocationCheck,
            DeliveryNotification = DeliveryNotification,
            Credential = UsesOAuth ? null : secret.Password,
            OAuthTokens = UsesOAuth ? secret.TokensFor(OAuthScope, TokenSettings, () => TokenSettings.Open(secret, OAuthScope, UserName, Timeout)) : null,
            OAuthUser = UsesOAuth ? UserName : null,
            Timeout = Timeout,
        }.Validate();

        public override IMailTransport Open(TransportSecret secret, DeliveryEventSink? events) => new SmtpTransport(Options(secret), events);

        public override string ToString() => $"smtp://{Host}:{EffectivePort} ({Security}{(UserName != null ? ", user " + UserName : "")}{(UsesOAuth ? ", OAuth2 from " + TokenSettings : "")})";
    }

    /// <summary>Microsoft Graph sendMail as one mailbox, with tokens the module obtains and renews.</summary>
    public sealed record GraphDescription : TransportDescription
    {
        public override TransportKind Kind => TransportKind.Graph;
        public string Mailbox { get; init; } = "";
        public Uri BaseUri { get; init; } = GraphOptions.DefaultBaseUri;
        public OAuthSettings OAuth { get; init; } = new OAuthSettings { Kind = TokenKind.ManagedIdentity };

        public override bool NeedsCallerSecret => OAuth.SecretSource == SecretSource.Caller;
        public override RateLimit? ProviderRate => Microsoft365Limits.MessageRate;
        public override int? RecipientsPerDay => Microsoft365Limits.RecipientsPerDay;
        public override int? MaxConcurrency => Microsoft365Limits.ConcurrentRequests;

        public string Scope => GraphOptions.ScopeFor(BaseUri);

        public override TransportDescription Validate()
        {
            base.Validate();
            if (string.IsNullOrWhiteSpace(Mailbox)) throw new SettingException("Mailbox", "Microsoft Graph sends from a mailbox: name it (its address, or its object id).");
            if (!BaseUri.IsAbsoluteUri || (BaseUri.Scheme != Uri.UriSchemeHttps && !BaseUri.IsLoopback))
                throw new SettingException("GraphEndpoint", $"The Graph address must be https, not '{BaseUri}'.");
            if (OAuth.Kind == TokenKind.GoogleServiceAccount) throw new SettingException("GoogleKeyPath", "Microsoft Graph takes Microsoft Entra tokens, not a Google service account.");
            OAuth.Validate();
            return this;
        }

        public override IMailTransport Open(TransportSecret secret, DeliveryEventSink? events) => new GraphTransport(new GraphOptions
        {
            Mailbox = Mailbox,
            BaseUri = BaseUri,
            Timeout = Timeout,
            Tokens = secret.TokensFor(Scope, OAuth, () => OAuth.Open(secret, Scope, Mailbox, Timeout)),
        });

        public override string ToString() => $"Microsoft Graph as {Mailbox}{(BaseUri != GraphOptions.DefaultBaseUri ? " at " + BaseUri : "")} (tokens from {OAuth})";
    }

    public sealed record PickupDescription : TransportDescription
    {
        public override TransportKind Kind => TransportKind.PickupDirectory;
        public string Directory { get; init; } = "";

        public override TransportDescription Validate()
        {
            base.Validate();
            if (string.IsNullOrWhiteSpace(Directory)) throw new ArgumentException("A pickup directory is required.");
            return this;
        }

        public override IMailTransport Open(TransportSecret secret, DeliveryEventSink? events) => new PickupDirectoryTransport(Directory) { Timeout = Timeout };

        public override string ToString() => $"pickup directory {Directory}";
    }

    public sealed record SendGridDescription : TransportDescription
    {
        public const string KeyVariable = "SENDGRID_API_KEY";
        public override TransportKind Kind => TransportKind.SendGrid;
        public Uri BaseUri { get; init; } = SendGridOptions.DefaultBaseUri;

        public override IMailTransport Open(TransportSecret secret, DeliveryEventSink? events) =>
            new SendGridTransport(new SendGridOptions { ApiKey = secret.Token ?? FromEnvironment(), BaseUri = BaseUri, Timeout = Timeout });

        /// <summary>SENDGRID_API_KEY, when the key was not passed in.</summary>
        public static Secret FromEnvironment()
        {
            var env = System.Environment.GetEnvironmentVariable(KeyVariable);
            if (string.IsNullOrWhiteSpace(env)) throw new ArgumentException($"No SendGrid API key: none was passed, and the {KeyVariable} environment variable is not set.");
            return new Secret(env!.Trim());
        }

        public override string ToString() => $"SendGrid {BaseUri}";
    }

    public sealed record SesDescription : TransportDescription
    {
        public override TransportKind Kind => TransportKind.Ses;
        public string? Region { get; init; }
        public Uri? EndpointUrl { get; init; }
        public string? ProfileName { get; init; }

        public SesOptions Options(TransportSecret secret) => new SesOptions
        {
            Region = Region,
            ProfileName = ProfileName,
            EndpointUrl = EndpointUrl,
            AccessKeyId = secret.AccessKeyId,
            SecretAccessKey = secret.SecretAccessKey,
            Timeout = Timeout,
        };

        public override IMailTransport Open(TransportSecret secret, DeliveryEventSink? events) => new SesTransport(Options(secret));

        public override string ToString() => $"Amazon SES {Region}{(EndpointUrl != null ? " at " + EndpointUrl : "")}{(ProfileName != null ? ", profile " + ProfileName : "")}";
    }

    /// <summary>
    /// The journal's form of a description: one flat object with its "kind", the shape every journal so far has used, so
    /// that journals of the previous version resume here and journals written here resume there.
    /// </summary>
    internal sealed class TransportDescriptionJson : JsonConverter<TransportDescription>
    {
        private sealed class Wire
        {
            public string Kind { get; set; } = "Smtp";
            public string? Host { get; set; }
            public int Port { get; set; }
            public string? Security { get; set; }
            public bool SkipCertificateCheck { get; set; }
            public bool? SkipRevocationCheck { get; set; }
            public string? DeliveryNotification { get; set; }
            public string? UserName { get; set; }
            public bool? UsesOAuth { get; set; }
            public double TimeoutSeconds { get; set; } = Defaults.Timeout.TotalSeconds;
            public string? PickupDirectory { get; set; }
            public string? BaseUri { get; set; }
            public string? Region { get; set; }
            public string? EndpointUrl { get; set; }
            public string? ProfileName { get; set; }
            public string? Mailbox { get; set; }
            public string? TokenKind { get; set; }
            public string? TenantId { get; set; }
            public string? ClientId { get; set; }
            public string? CertificateThumbprint { get; set; }
            public string? CertificatePath { get; set; }
            public bool? CertificateFromCaller { get; set; }
            public string? ManagedIdentityClientId { get; set; }
            public string? AuthorityHost { get; set; }
            public string? GoogleKeyPath { get; set; }
            /// <summary>"Parameter", "Environment", or null (none, or an ambient chain): the previous version's words.</summary>
            public string? SecretFrom { get; set; }
        }

        private static readonly JsonSerializerOptions Options = new JsonSerializerOptions
        {
            DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
            PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
            PropertyNameCaseInsensitive = true,
        };

        public override TransportDescription Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
        {
            var w = JsonSerializer.Deserialize<Wire>(ref reader, Options) ?? new Wire();
            var timeout = TimeSpan.FromSeconds(w.TimeoutSeconds > 0 ? w.TimeoutSeconds : Defaults.Timeout.TotalSeconds);
            var secret = w.SecretFrom switch
            {
                "Parameter" => SecretSource.Caller,
                "Environment" => SecretSource.Environment,
                _ => SecretSource.None,
            };
            OAuthSettings? oauth = w.TokenKind != null && Enum.TryParse<TokenKind>(w.TokenKind, out var tokenKind) ? new OAuthSettings
            {
                Kind = tokenKind, TenantId = w.TenantId, ClientId = w.ClientId, CertificateThumbprint = w.CertificateThumbprint, CertificatePath = w.CertificatePath,
                CertificateFromCaller = w.CertificateFromCaller == true, ManagedIdentityClientId = w.ManagedIdentityClientId,
                AuthorityHost = w.AuthorityHost != null ? new Uri(w.AuthorityHost) : null, GoogleKeyPath = w.GoogleKeyPath,
            } : null;
            switch (w.Kind)
            {
                case nameof(TransportKind.Graph):
                    return new GraphDescription
                    {
                        Mailbox = w.Mailbox ?? "", BaseUri = w.BaseUri != null ? new Uri(w.BaseUri) : GraphOptions.DefaultBaseUri, OAuth = oauth ?? new OAuthSettings { Kind = TokenKind.Given },
                        Timeout = timeout, Secret = (oauth ?? new OAuthSettings { Kind = TokenKind.Given }).SecretSource,
                    };
                case nameof(TransportKind.PickupDirectory):
                    return new PickupDescription { Directory = w.PickupDirectory ?? "", Timeout = timeout, Secret = secret };
                case nameof(TransportKind.SendGrid):
                    return new SendGridDescription { BaseUri = w.BaseUri != null ? new Uri(w.BaseUri) : SendGridOptions.DefaultBaseUri, Timeout = timeout, Secret = secret };
                case nameof(TransportKind.Ses):
                    return new SesDescription
                    {
                        Region = w.Region, EndpointUrl = w.EndpointUrl != null ? new Uri(w.EndpointUrl) : null, ProfileName = w.ProfileName,
                        Timeout = timeout, Secret = secret == SecretSource.None ? SecretSource.Ambient : secret,
                    };
                default:
                    Enum.TryParse<SmtpSecurity>(w.Security, out var security);
                    return new SmtpDescription
                    {
                        Host = w.Host ?? "", Port = w.Port, Security = security, SkipCertificateCheck = w.SkipCertificateCheck, SkipRevocationCheck = w.SkipRevocationCheck == true,
                        DeliveryNotification = Enum.TryParse<DeliveryNotification>(w.DeliveryNotification, out var notify) ? notify : DeliveryNotification.None, UserName = w.UserName,
                        UsesOAuth = w.UsesOAuth == true, OAuth = oauth, Timeout = timeout, Secret = oauth?.SecretSource ?? secret,
                    };
            }
        }

        public override void Write(Utf8JsonWriter writer, TransportDescription value, JsonSerializerOptions options)
        {
            var w = new Wire
            {
                Kind = value.Kind.ToString(),
                TimeoutSeconds = value.Timeout.TotalSeconds,
                SecretFrom = value.Secret switch { SecretSource.Caller => "Parameter", SecretSource.Environment => "Environment", _ => null },
            };
            void Tokens(OAuthSettings? o)
            {
                if (o == null) return;
                w.TokenKind = o.Kind.ToString(); w.TenantId = o.TenantId; w.ClientId = o.ClientId; w.CertificateThumbprint = o.CertificateThumbprint;
                w.CertificatePath = o.CertificatePath; w.CertificateFromCaller = o.CertificateFromCaller ? true : (bool?)null;
                w.ManagedIdentityClientId = o.ManagedIdentityClientId; w.AuthorityHost = o.AuthorityHost?.ToString(); w.GoogleKeyPath = o.GoogleKeyPath;
            }
            switch (value)
            {
                case SmtpDescription s:
                    w.Host = s.Host; w.Port = s.EffectivePort; w.Security = s.Security.ToString(); w.SkipCertificateCheck = s.SkipCertificateCheck;
                    w.UserName = s.UserName; w.UsesOAuth = s.UsesOAuth ? true : (bool?)null; w.SkipRevocationCheck = s.SkipRevocationCheck ? true : (bool?)null;
                    w.DeliveryNotification = s.DeliveryNotification == DeliveryNotification.None ? null : s.DeliveryNotification.ToString();
                    Tokens(s.OAuth);
                    break;
                case GraphDescription m: w.Mailbox = m.Mailbox; w.BaseUri = m.BaseUri.ToString(); Tokens(m.OAuth); break;
                case PickupDescription p: w.PickupDirectory = p.Directory; break;
                case SendGridDescription g: w.BaseUri = g.BaseUri.ToString(); break;
                case SesDescription a: w.Region = a.Region; w.EndpointUrl = a.EndpointUrl?.ToString(); w.ProfileName = a.ProfileName; break;
            }
            JsonSerializer.Serialize(writer, w, Options);
        }
    }
}
