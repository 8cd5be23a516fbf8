using System;
using System.Net;
using System.Text.Json;
using System.Text.Json.Serialization;
using ResilientMail.Core.Delivery;
using ResilientMail.Core.Transports.SendGrid;
using ResilientMail.Core.Transports.Ses;

namespace ResilientMail.Core.Transports
{
    public enum TransportKind { Smtp, PickupDirectory, SendGrid, Ses }

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

        /// <summary>The usual port of a TLS mode: 465 for TLS from the first byte, 587 for STARTTLS, else 25.</summary>
        public static int DefaultPort(SmtpSecurity security) => security == SmtpSecurity.SslOnConnect ? 465 : security == SmtpSecurity.StartTls ? 587 : 25;

        public int EffectivePort => Port != 0 ? Port : DefaultPort(Security);

        // An SMTP user always signs in with something the journal does not hold.
        public override bool NeedsCallerSecret => base.NeedsCallerSecret || UserName != null;

        public override TransportDescription Validate()
        {
            base.Validate();
            if (string.IsNullOrWhiteSpace(Host)) throw new ArgumentException("An SMTP server name is required.");
            if (Port < 0 || Port > 65535) throw new ArgumentOutOfRangeException(nameof(Port), Port, "Port must be 1-65535.");
            if (UsesOAuth && string.IsNullOrWhiteSpace(UserName)) throw new ArgumentException("An OAuth2 token needs the mailbox it was issued for.");
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
            OAuthToken = UsesOAuth ? secret.Token : null,
            OAuthUser = UsesOAuth ? UserName : null,
            Timeout = Timeout,
        }.Validate();

        public override IMailTransport Open(TransportSecret secret, DeliveryEventSink? events) => new SmtpTransport(Options(secret), events);

        public override string ToString() => $"smtp://{Host}:{EffectivePort} ({Security}{(UserName != null ? ", user " + UserName : "")}{(UsesOAuth ? ", OAuth2" : "")})";
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
            switch (w.Kind)
            {
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
                        UsesOAuth = w.UsesOAuth == true, Timeout = timeout, Secret = secret,
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
            switch (value)
            {
                case SmtpDescription s:
                    w.Host = s.Host; w.Port = s.EffectivePort; w.Security = s.Security.ToString(); w.SkipCertificateCheck = s.SkipCertificateCheck;
                    w.UserName = s.UserName; w.UsesOAuth = s.UsesOAuth ? true : (bool?)null; w.SkipRevocationCheck = s.SkipRevocationCheck ? true : (bool?)null;
                    w.DeliveryNotification = s.DeliveryNotification == DeliveryNotification.None ? null : s.DeliveryNotification.ToString();
                    break;
                case PickupDescription p: w.PickupDirectory = p.Directory; break;
                case SendGridDescription g: w.BaseUri = g.BaseUri.ToString(); break;
                case SesDescription a: w.Region = a.Region; w.EndpointUrl = a.EndpointUrl?.ToString(); w.ProfileName = a.ProfileName; break;
            }
            JsonSerializer.Serialize(writer, w, Options);
        }
    }
}
