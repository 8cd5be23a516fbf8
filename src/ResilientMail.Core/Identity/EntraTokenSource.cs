using System;
using System.Threading;
using System.Threading.Tasks;
using Azure.Core;
using Azure.Identity;
using ResilientMail.Core.Resilience;
using ResilientMail.Core.Transports;

namespace ResilientMail.Core.Identity
{
    /// <summary>
    /// Microsoft Entra tokens through Azure.Identity (MSAL underneath): client credentials with a secret or a certificate
    /// (a signed client assertion), or the managed identity of the Azure resource (on Azure Automation and App Service the
    /// IDENTITY_ENDPOINT/IDENTITY_HEADER protocol, on a VM the instance metadata service, on Arc its agent).
    /// Azure.Core's own retries are off: the engine retries a token request like any other network call.
    /// </summary>
    internal sealed class EntraTokenSource : TokenSource
    {
        private readonly OAuthSettings _settings;
        private readonly TransportSecret _secret;
        private readonly string _scope;
        private readonly TimeSpan _timeout;
        private readonly Func<TokenCredential>? _factory;
        private TokenCredential? _credential;

        public EntraTokenSource(OAuthSettings settings, TransportSecret secret, string scope, TimeSpan timeout, TimeProvider? time) : base(time)
        {
            _settings = settings;
            _secret = secret;
            _scope = scope;
            _timeout = timeout;
            if (settings.Kind == TokenKind.Certificate) settings.LoadCertificate(secret); // a missing certificate is a setting error now, not at the first send
        }

        /// <summary>With another credential (fake-time tests).</summary>
        internal EntraTokenSource(OAuthSettings settings, Func<TokenCredential> factory, string scope, TimeProvider? time) : base(time)
        {
            _settings = settings;
            _secret = TransportSecret.None;
            _scope = scope;
            _factory = factory;
        }

        public override string Description => _settings.ToString();

        protected override void OnInvalidated() => _credential = null; // a new credential has an empty cache

        protected override async Task<IssuedToken> ObtainAsync(CancellationToken cancellationToken)
        {
            var credential = _credential ??= _factory?.Invoke() ?? Create();
            try
            {
                var token = await credential.GetTokenAsync(new TokenRequestContext(new[] { _scope }), cancellationToken).ConfigureAwait(false);
                return new IssuedToken(new Secret(token.Token), token.ExpiresOn);
            }
            catch (Exception ex) when (!(ex is OperationCanceledException) || !cancellationToken.IsCancellationRequested)
            {
                throw new MailDeliveryException(TokenFailures.FromEntra(ex, _settings, _scope), ex);
            }
        }

        private TokenCredential Create()
        {
            T Configure<T>(T options) where T : TokenCredentialOptions
            {
                options.AuthorityHost = _settings.AuthorityHost ?? OAuthSettings.PublicCloud;
                options.Retry.MaxRetries = 0;
                options.Retry.NetworkTimeout = _timeout;
                return options;
            }
            switch (_settings.Kind)
            {
                case TokenKind.ClientSecret:
                    var secret = _secret.ClientSecret ?? throw new SettingException("ClientSecret", "No client secret was given.");
                    return new ClientSecretCredential(_settings.TenantId, _settings.ClientId, secret.Reveal(),
                        Configure(new ClientSecretCredentialOptions { DisableInstanceDiscovery = !_settings.DiscoverInstance }));
                case TokenKind.Certificate:
                    return new ClientCertificateCredential(_settings.TenantId, _settings.ClientId, _settings.LoadCertificate(_secret),
                        Configure(new ClientCertificateCredentialOptions { DisableInstanceDiscovery = !_settings.DiscoverInstance, SendCertificateChain = false }));
                default:
                    var id = _settings.ManagedIdentityClientId != null ? ManagedIdentityId.FromUserAssignedClientId(_settings.ManagedIdentityClientId) : ManagedIdentityId.SystemAssigned;
                    return new ManagedIdentityCredential(Configure(new ManagedIdentityCredentialOptions(id)));
            }
        }
    }
}
