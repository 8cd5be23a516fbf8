using System;
using System.IO;
using System.Text.Json;
using System.Threading;
using System.Threading.Tasks;
using Google.Apis.Auth.OAuth2;
using ResilientMail.Core.Resilience;

namespace ResilientMail.Core.Identity
{
    /// <summary>
    /// Google Workspace: a service account's signed JWT (Google.Apis.Auth) exchanged at the key's token_uri for a token
    /// that acts as <c>user</c> through domain-wide delegation. The key file is read when the source is made (a setting
    /// error shows at New-MailTransport) and again on resume; only its path is stored.
    /// </summary>
    internal sealed class GoogleTokenSource : TokenSource
    {
        /// <summary>The scope SMTP (XOAUTH2 on smtp.gmail.com) needs.</summary>
        public const string MailScope = "https://mail.google.com/";
        private const string DefaultTokenUri = "https://oauth2.googleapis.com/token";
        private readonly string _keyPath;
        private readonly string _scope;
        private readonly string _user;
        private readonly Key _key;
        private ServiceAccountCredential? _credential;

        public GoogleTokenSource(string keyPath, string scope, string user, TimeProvider? time) : base(time)
        {
            _keyPath = keyPath;
            _scope = scope;
            _user = user;
            _key = Read(keyPath);
        }

        public override string Description => $"Google service account {_key.ClientEmail} acting as {_user}";

        protected override void OnInvalidated() => _credential = null;

        protected override async Task<IssuedToken> ObtainAsync(CancellationToken cancellationToken)
        {
            var credential = _credential ??= new ServiceAccountCredential(
                new ServiceAccountCredential.Initializer(_key.ClientEmail, _key.TokenUri) { User = _user, Scopes = new[] { _scope }, KeyId = _key.KeyId }
                    .FromPrivateKey(_key.PrivateKey));
            try
            {
                var token = await credential.GetAccessTokenForRequestAsync(null, cancellationToken).ConfigureAwait(false);
                var issued = credential.Token;
                var expires = issued?.ExpiresInSeconds is long seconds
                    ? new DateTimeOffset(DateTime.SpecifyKind(issued.IssuedUtc, DateTimeKind.Utc)).AddSeconds(seconds)
                    : Time.GetUtcNow().AddMinutes(30);
                return new IssuedToken(new Secret(token), expires);
            }
            catch (Exception ex) when (!(ex is OperationCanceledException) || !cancellationToken.IsCancellationRequested)
            {
                throw new MailDeliveryException(TokenFailures.FromGoogle(ex, _key.ClientEmail, _user, _scope, new Uri(_key.TokenUri)), ex);
            }
        }

        private sealed record Key(string ClientEmail, string PrivateKey, string? KeyId, string TokenUri);

        private static Key Read(string path)
        {
            if (!File.Exists(path)) throw new SettingException("GoogleKeyPath", $"The service account key file '{path}' does not exist.");
            try
            {
                using var doc = JsonDocument.Parse(File.ReadAllText(path));
                var root = doc.RootElement;
                string? Text(string name) => root.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;
                if (Text("type") != "service_account")
                    throw new SettingException("GoogleKeyPath", $"'{path}' is not a service account key (its \"type\" is '{Text("type")}', not 'service_account'): create a JSON key for the service account in the Google Cloud console.");
                var email = Text("client_email");
                var key = Text("private_key");
                if (string.IsNullOrWhiteSpace(email) || string.IsNullOrWhiteSpace(key))
                    throw new SettingException("GoogleKeyPath", $"The service account key '{path}' has no client_email or private_key.");
                return new Key(email!, key!, Text("private_key_id"), Text("token_uri") ?? DefaultTokenUri);
            }
            catch (JsonException ex)
            {
                throw new SettingException("GoogleKeyPath", $"The service account key '{path}' is not valid JSON: {ex.Message}", ex);
            }
        }
    }
}
