using System;
using System.Collections.Generic;
using System.Security;
using System.Security.Cryptography.X509Certificates;
using ResilientMail.Core.Identity;

namespace ResilientMail.Internal
{
    /// <summary>
    /// New-MailTransport's token parameters, turned into how tokens are obtained (Core's <see cref="OAuthSettings"/>, what
    /// the journal stores) and the secret parts (held by the transport). One way of signing in at a time; a bad
    /// combination is an ArgumentException that names the parameters.
    /// </summary>
    internal sealed class TokenParameters
    {
        public string? TenantId { get; set; }
        public string? ClientId { get; set; }
        public SecureString? ClientSecret { get; set; }
        public string? CertificateThumbprint { get; set; }
        public string? CertificatePath { get; set; }
        public SecureString? CertificatePassword { get; set; }
        public X509Certificate2? Certificate { get; set; }
        public bool ManagedIdentity { get; set; }
        public string? ManagedIdentityClientId { get; set; }
        public Uri? AuthorityHost { get; set; }
        public string? GoogleKeyPath { get; set; }
        /// <summary>A token fetched by the caller (-OAuthToken / -AccessToken).</summary>
        public SecureString? Token { get; set; }

        /// <summary>Whether any way of getting tokens was asked for.</summary>
        public bool Any => Ways().Count > 0 || TenantId != null || ClientId != null || AuthorityHost != null || CertificatePassword != null || ManagedIdentityClientId != null;

        private List<string> Ways()
        {
            var ways = new List<string>();
            if (ClientSecret != null) ways.Add("-ClientSecret");
            if (CertificateThumbprint != null || CertificatePath != null || Certificate != null) ways.Add("-CertificateThumbprint/-CertificatePath/-Certificate");
            if (ManagedIdentity || ManagedIdentityClientId != null) ways.Add("-ManagedIdentity");
            if (GoogleKeyPath != null) ways.Add("-GoogleServiceAccountKeyPath");
            if (Token != null) ways.Add("-OAuthToken");
            return ways;
        }

        /// <summary>How the tokens are obtained, and their secret parts; throws ArgumentException for a combination that cannot work.</summary>
        public (OAuthSettings Settings, TokenSecrets? Secrets) Resolve(bool graph)
        {
            var ways = Ways();
            if (ways.Count == 0)
                throw new ArgumentException(graph
                    ? "Microsoft Graph needs a way to get tokens: -ManagedIdentity, or -TenantId and -ClientId with -CertificateThumbprint, -CertificatePath, -Certificate or -ClientSecret (or a token of your own with -AccessToken)."
                    : "-TenantId and -ClientId need -ClientSecret, -CertificateThumbprint, -CertificatePath or -Certificate.");
            if (ways.Count > 1) throw new ArgumentException($"Use one way of getting tokens, not {string.Join(" and ", ways)}.");
            int certificates = (CertificateThumbprint != null ? 1 : 0) + (CertificatePath != null ? 1 : 0) + (Certificate != null ? 1 : 0);
            if (certificates > 1) throw new ArgumentException("Use one of -CertificateThumbprint, -CertificatePath and -Certificate.");
            if (CertificatePassword != null && CertificatePath == null) throw new ArgumentException("-CertificatePassword goes with -CertificatePath (a PFX file).");
            if (Certificate != null && !Certificate.HasPrivateKey) throw new ArgumentException($"The certificate {Certificate.Thumbprint} has no private key: signing in needs it.");
            bool entraApp = ClientSecret != null || certificates > 0;
            if (!entraApp && (TenantId != null || ClientId != null) && !(ManagedIdentity && TenantId == null))
                throw new ArgumentException("-TenantId and -ClientId name an app registration: give it -ClientSecret or a certificate. A user-assigned managed identity is chosen with -ManagedIdentityClientId.");
            if (GoogleKeyPath != null && graph) throw new ArgumentException("Microsoft Graph takes Microsoft Entra tokens: -GoogleServiceAccountKeyPath is for SMTP (smtp.gmail.com).");

            var kind = ClientSecret != null ? TokenKind.ClientSecret : certificates > 0 ? TokenKind.Certificate
                : ManagedIdentity || ManagedIdentityClientId != null ? TokenKind.ManagedIdentity : GoogleKeyPath != null ? TokenKind.GoogleServiceAccount : TokenKind.Given;
            var settings = new OAuthSettings
            {
                Kind = kind,
                TenantId = entraApp ? TenantId?.Trim() : null,
                ClientId = entraApp ? ClientId?.Trim() : null,
                CertificateThumbprint = CertificateThumbprint?.Trim(),
                CertificatePath = CertificatePath,
                CertificateFromCaller = Certificate != null || CertificatePassword != null,
                ManagedIdentityClientId = ManagedIdentityClientId?.Trim(),
                AuthorityHost = kind == TokenKind.ManagedIdentity ? null : AuthorityHost,
                GoogleKeyPath = GoogleKeyPath,
            }.Validate();
            var secrets = ClientSecret != null || Certificate != null || CertificatePassword != null
                ? new TokenSecrets { ClientSecret = ClientSecret, Certificate = Certificate, CertificatePassword = CertificatePassword }
                : null;
            return (settings, secrets);
        }
    }
}
