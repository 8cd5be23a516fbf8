using System;
using System.IO;
using System.Linq;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using ResilientMail.Core.Resilience;
using ResilientMail.Core.Transports;

namespace ResilientMail.Core.Identity
{
    /// <summary>How a transport gets its OAuth2 tokens.</summary>
    public enum TokenKind
    {
        /// <summary>A token the caller fetched: used until refused, never renewed.</summary>
        Given,
        /// <summary>A Microsoft Entra app registration with a client secret.</summary>
        ClientSecret,
        /// <summary>A Microsoft Entra app registration with a certificate (store thumbprint, PFX file, or an object).</summary>
        Certificate,
        /// <summary>The managed identity of the Azure resource this runs on (Automation account, VM, Arc, App Service).</summary>
        ManagedIdentity,
        /// <summary>A Google service account key with domain-wide delegation, acting as the mailbox.</summary>
        GoogleServiceAccount,
    }

    /// <summary>
    /// What it takes to get a token, without the secret: what the journal stores (tenant, client id, thumbprint, key file,
    /// "managed identity"), so that a campaign resumed by name can obtain tokens again. The secret half (a client secret,
    /// a certificate object, a PFX password, a given token) is in <see cref="TransportSecret"/> and never stored.
    /// </summary>
    public sealed record OAuthSettings
    {
        /// <summary>Microsoft Entra's public cloud; national clouds have their own (login.microsoftonline.us, login.chinacloudapi.cn).</summary>
        public static readonly Uri PublicCloud = new Uri("https://login.microsoftonline.com/");
        private static readonly string[] KnownAuthorities = { "login.microsoftonline.com", "login.microsoftonline.us", "login.chinacloudapi.cn", "login.partner.microsoftonline.cn" };

        public TokenKind Kind { get; init; }
        public string? TenantId { get; init; }
        public string? ClientId { get; init; }
        /// <summary>A certificate found again in Cert:\CurrentUser\My or Cert:\LocalMachine\My.</summary>
        public string? CertificateThumbprint { get; init; }
        /// <summary>A PFX file read again on resume (with its password only when one was given: then the caller must give it again).</summary>
        public string? CertificatePath { get; init; }
        /// <summary>The certificate (or the PFX's password) was passed in as an object: a resume must be handed the transport again.</summary>
        public bool CertificateFromCaller { get; init; }
        /// <summary>A user-assigned managed identity's client id; null for the system-assigned one.</summary>
        public string? ManagedIdentityClientId { get; init; }
        /// <summary>Microsoft Entra's sign-in host; null for the public cloud.</summary>
        public Uri? AuthorityHost { get; init; }
        public string? GoogleKeyPath { get; init; }

        /// <summary>Whether a resume can obtain tokens again without the caller: only what the journal does not hold needs them.</summary>
        public SecretSource SecretSource => Kind switch
        {
            TokenKind.Given => SecretSource.Caller,
            TokenKind.ClientSecret => SecretSource.Caller,
            TokenKind.Certificate => CertificateFromCaller ? SecretSource.Caller : SecretSource.Ambient,
            _ => SecretSource.Ambient,
        };

        public bool IsMicrosoft => Kind == TokenKind.ClientSecret || Kind == TokenKind.Certificate || Kind == TokenKind.ManagedIdentity;

        public OAuthSettings Validate()
        {
            switch (Kind)
            {
                case TokenKind.ClientSecret:
                case TokenKind.Certificate:
                    if (string.IsNullOrWhiteSpace(TenantId)) throw new SettingException("TenantId", "A Microsoft Entra app registration needs the tenant (its id, or a domain such as contoso.onmicrosoft.com).");
                    if (string.IsNullOrWhiteSpace(ClientId)) throw new SettingException("ClientId", "A Microsoft Entra app registration needs its application (client) id.");
                    if (Kind == TokenKind.Certificate && CertificateThumbprint == null && CertificatePath == null && !CertificateFromCaller)
                        throw new SettingException("Certificate", "A certificate sign-in needs the certificate: a thumbprint in the certificate store, a PFX file, or the certificate itself.");
                    break;
                case TokenKind.GoogleServiceAccount:
                    if (string.IsNullOrWhiteSpace(GoogleKeyPath)) throw new SettingException("GoogleKeyPath", "A Google service account needs its JSON key file.");
                    break;
            }
            if (AuthorityHost != null && (!AuthorityHost.IsAbsoluteUri || AuthorityHost.Scheme != Uri.UriSchemeHttps))
                throw new SettingException("AuthorityHost", $"The Microsoft Entra sign-in address must be an https address, not '{AuthorityHost}'.");
            return this;
        }

        /// <summary>Never a secret: "Microsoft Entra app 0f1e… in tenant contoso.onmicrosoft.com with certificate 3A5C…".</summary>
        public override string ToString() => Kind switch
        {
            TokenKind.Given => "an access token passed in",
            TokenKind.ClientSecret => $"Microsoft Entra app {ClientId} in tenant {TenantId} with a client secret",
            TokenKind.Certificate => $"Microsoft Entra app {ClientId} in tenant {TenantId} with certificate {CertificateThumbprint ?? (CertificatePath != null ? Path.GetFileName(CertificatePath) : "(passed in)")}",
            TokenKind.ManagedIdentity => ManagedIdentityClientId != null ? $"the managed identity {ManagedIdentityClientId}" : "the managed identity of this Azure resource",
            _ => $"Google service account key {Path.GetFileName(GoogleKeyPath ?? "")}",
        };

        /// <summary>A source of tokens for <paramref name="scope"/> (e.g. https://graph.microsoft.com/.default), renewed by itself.</summary>
        /// <param name="user">The mailbox a Google service account acts as (domain-wide delegation).</param>
        public TokenSource Open(TransportSecret secret, string scope, string? user, TimeSpan timeout)
        {
            Validate();
            switch (Kind)
            {
                case TokenKind.Given:
                    return new GivenToken(secret.Token ?? throw new SettingException("Token", "No access token was given."));
                case TokenKind.GoogleServiceAccount:
                    if (string.IsNullOrWhiteSpace(user)) throw new SettingException("UserName", "A Google service account sends as a mailbox of the domain: name it.");
                    return new GoogleTokenSource(GoogleKeyPath!, scope, user!, null);
                default:
                    return new EntraTokenSource(this, secret, scope, timeout, null);
            }
        }

        /// <summary>Instance discovery asks the public cloud about the host; a host it does not know (Azure Stack, a test) is taken as given.</summary>
        internal bool DiscoverInstance => AuthorityHost == null || KnownAuthorities.Contains(AuthorityHost.Host, StringComparer.OrdinalIgnoreCase);

        /// <summary>The certificate to sign the client assertion with: the one passed in, the PFX file, or the store's.</summary>
        internal X509Certificate2 LoadCertificate(TransportSecret secret)
        {
            if (secret.Certificate != null) return secret.Certificate;
            if (CertificatePath != null)
            {
                if (!File.Exists(CertificatePath)) throw new SettingException("CertificatePath", $"The certificate file '{CertificatePath}' does not exist.");
                try
                {
                    var flags = RuntimeInformation.IsOSPlatform(OSPlatform.OSX) ? X509KeyStorageFlags.DefaultKeySet : (X509KeyStorageFlags)32; // EphemeralKeySet: the key never touches the disk
                    var pfx = new X509Certificate2(CertificatePath, secret.CertificatePassword?.Reveal(), flags);
                    if (!pfx.HasPrivateKey) throw new SettingException("CertificatePath", $"The certificate file '{CertificatePath}' has no private key: a PFX (PKCS #12) with the key is needed to sign in.");
                    return pfx;
                }
                catch (CryptographicException ex)
                {
                    throw new SettingException("CertificatePath", $"The certificate file '{CertificatePath}' cannot be read ({ex.Message}): is it a PFX, and is the password right?", ex);
                }
            }
            var thumbprint = new string((CertificateThumbprint ?? "").Where(Uri.IsHexDigit).ToArray());
            foreach (var location in new[] { StoreLocation.CurrentUser, StoreLocation.LocalMachine })
            {
                try
                {
                    using var store = new X509Store(StoreName.My, location);
                    store.Open(OpenFlags.ReadOnly | OpenFlags.OpenExistingOnly);
                    var found = store.Certificates.Find(X509FindType.FindByThumbprint, thumbprint, false);
                    foreach (var c in found)
                    {
                        if (c.HasPrivateKey) return c;
                    }
                    if (found.Count > 0)
                        throw new SettingException("CertificateThumbprint", $"The certificate {thumbprint} in Cert:\\{location}\\My has no private key this account can use.");
                }
                catch (CryptographicException) { } // that store does not exist here (LocalMachine on Linux)
            }
            throw new SettingException("CertificateThumbprint", $"No certificate with thumbprint {thumbprint} is in Cert:\\CurrentUser\\My or Cert:\\LocalMachine\\My of this account.");
        }
    }
}
