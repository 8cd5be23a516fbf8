using System;
using System.Management.Automation;
using System.Security;
using ResilientMail.Internal;

namespace ResilientMail.Commands
{
    /// <summary>Makes a reusable, validated transport (SMTP, Microsoft Graph, SendGrid, Amazon SES or a pickup directory) for Send-ResilientMail and Start-MailCampaign.</summary>
    [Cmdlet(VerbsCommon.New, "MailTransport", DefaultParameterSetName = "Smtp")]
    [OutputType(typeof(MailTransport))]
    public sealed class NewMailTransportCommand : PSCmdlet
    {
        [Parameter(Mandatory = true, Position = 0, ParameterSetName = "Smtp")]
        [Alias("ComputerName")]
        [ValidateNotNullOrEmpty]
        public string SmtpServer { get; set; } = "";

        [Parameter(ParameterSetName = "Smtp")]
        [ValidateRange(0, 65535)]
        public int Port { get; set; }

        /// <summary>SMTP: the login. SendGrid: the password is the API key. SES: user = access key id, password = secret access key.</summary>
        [Parameter(ParameterSetName = "Smtp")]
        [Parameter(ParameterSetName = "SendGrid")]
        [Parameter(ParameterSetName = "Ses")]
        [Credential]
        public PSCredential? Credential { get; set; }

        [Parameter(ParameterSetName = "Smtp")]
        public MailSecurity SecureSocketOptions { get; set; } = MailSecurity.Auto;

        [Parameter(ParameterSetName = "Smtp")]
        public SwitchParameter UseStartTls { get; set; }

        [Parameter(ParameterSetName = "Smtp")]
        public SwitchParameter UseSsl { get; set; }

        [Parameter(ParameterSetName = "Smtp")]
        public SwitchParameter SkipCertificateCheck { get; set; }

        /// <summary>Do not ask the CA whether the certificate was revoked (an internal CA whose CRL cannot be reached); everything else is still checked.</summary>
        [Parameter(ParameterSetName = "Smtp")]
        public SwitchParameter SkipRevocationCheck { get; set; }

        /// <summary>Delivery status notifications (DSN) to ask of the server, as Send-MailMessage's: None, OnSuccess, OnFailure, Delay, Never.</summary>
        [Parameter(ParameterSetName = "Smtp")]
        [Alias("DNO")]
        public System.Net.Mail.DeliveryNotificationOptions DeliveryNotificationOption { get; set; }

        /// <summary>An OAuth2 access token you fetched (SMTP XOAUTH2 with -UserName, or Graph): used until it expires, never renewed.</summary>
        [Parameter(ParameterSetName = "Smtp")]
        [Parameter(ParameterSetName = "Graph")]
        [Alias("AccessToken")]
        public SecureString? OAuthToken { get; set; }

        /// <summary>The mailbox an OAuth2 token was issued for, or that tokens are obtained for.</summary>
        [Parameter(ParameterSetName = "Smtp")]
        [ValidateNotNullOrEmpty]
        public string? UserName { get; set; }

        /// <summary>Send through Microsoft Graph (POST /users/{mailbox}/sendMail) instead of SMTP.</summary>
        [Parameter(Mandatory = true, ParameterSetName = "Graph")]
        public SwitchParameter Graph { get; set; }

        /// <summary>The Microsoft 365 mailbox that sends through Graph (its address or object id).</summary>
        [Parameter(Mandatory = true, ParameterSetName = "Graph")]
        [ValidateNotNullOrEmpty]
        public string Mailbox { get; set; } = "";

        /// <summary>Graph's address with its version, for national clouds: https://graph.microsoft.us/v1.0, https://microsoftgraph.chinacloudapi.cn/v1.0.</summary>
        [Parameter(ParameterSetName = "Graph")]
        public Uri? GraphEndpoint { get; set; }

        /// <summary>The Microsoft Entra tenant of the app registration: its id or a domain (contoso.onmicrosoft.com).</summary>
        [Parameter(ParameterSetName = "Smtp")] [Parameter(ParameterSetName = "Graph")] [ValidateNotNullOrEmpty]
        public string? TenantId { get; set; }

        /// <summary>The app registration's application (client) id.</summary>
        [Parameter(ParameterSetName = "Smtp")] [Parameter(ParameterSetName = "Graph")] [ValidateNotNullOrEmpty] [Alias("ApplicationId", "AppId")]
        public string? ClientId { get; set; }

        /// <summary>The app registration's client secret (its Value), as a SecureString.</summary>
        [Parameter(ParameterSetName = "Smtp")] [Parameter(ParameterSetName = "Graph")]
        public SecureString? ClientSecret { get; set; }

        /// <summary>The thumbprint of the app's certificate in Cert:\CurrentUser\My or Cert:\LocalMachine\My (with its private key).</summary>
        [Parameter(ParameterSetName = "Smtp")] [Parameter(ParameterSetName = "Graph")] [ValidateNotNullOrEmpty]
        public string? CertificateThumbprint { get; set; }

        /// <summary>A PFX file holding the app's certificate and private key.</summary>
        [Parameter(ParameterSetName = "Smtp")] [Parameter(ParameterSetName = "Graph")] [ValidateNotNullOrEmpty]
        public string? CertificatePath { get; set; }

        /// <summary>The PFX file's password.</summary>
        [Parameter(ParameterSetName = "Smtp")] [Parameter(ParameterSetName = "Graph")]
        public SecureString? CertificatePassword { get; set; }

        /// <summary>The app's certificate as an object (Get-Item Cert:\CurrentUser\My\THUMBPRINT), with its private key.</summary>
        [Parameter(ParameterSetName = "Smtp")] [Parameter(ParameterSetName = "Graph")]
        public System.Security.Cryptography.X509Certificates.X509Certificate2? Certificate { get; set; }

        /// <summary>Get tokens from this Azure resource's managed identity (Azure Automation, a VM, Arc, App Service).</summary>
        [Parameter(ParameterSetName = "Smtp")] [Parameter(ParameterSetName = "Graph")]
        public SwitchParameter ManagedIdentity { get; set; }

        /// <summary>A user-assigned managed identity's client id (implies -ManagedIdentity).</summary>
        [Parameter(ParameterSetName = "Smtp")] [Parameter(ParameterSetName = "Graph")] [ValidateNotNullOrEmpty]
        public string? ManagedIdentityClientId { get; set; }

        /// <summary>Microsoft Entra's sign-in address for a national cloud: https://login.microsoftonline.us, https://login.chinacloudapi.cn.</summary>
        [Parameter(ParameterSetName = "Smtp")] [Parameter(ParameterSetName = "Graph")]
        public Uri? AuthorityHost { get; set; }

        /// <summary>Google Workspace: a service account's JSON key with domain-wide delegation; SMTP signs in (XOAUTH2) as -UserName.</summary>
        [Parameter(ParameterSetName = "Smtp")] [ValidateNotNullOrEmpty]
        public string? GoogleServiceAccountKeyPath { get; set; }

        /// <summary>An OAuth2 token as a credential: the user name is the mailbox, the password the access token.</summary>
        [Parameter(ParameterSetName = "Smtp")]
        public PSCredential? OAuthCredential { get; set; }

        [Parameter]
        [TimeSpanArgument]
        public TimeSpan Timeout { get; set; } = Core.Defaults.Timeout;

        /// <summary>Write each message as an .eml file into this folder instead of sending it.</summary>
        [Parameter(Mandatory = true, ParameterSetName = "Pickup")]
        [ValidateNotNullOrEmpty]
        public string PickupDirectory { get; set; } = "";

        [Parameter(Mandatory = true, ParameterSetName = "SendGrid")]
        public SwitchParameter SendGrid { get; set; }

        [Parameter(ParameterSetName = "SendGrid")]
        public SecureString? ApiKey { get; set; }

        [Parameter(ParameterSetName = "SendGrid")]
        public Uri? BaseUri { get; set; }

        [Parameter(Mandatory = true, ParameterSetName = "Ses")]
        public SwitchParameter Ses { get; set; }

        [Parameter(ParameterSetName = "Ses")]
        [ValidateNotNullOrEmpty]
        [ArgumentCompleter(typeof(SesRegionCompleter))]
        public string? Region { get; set; }

        [Parameter(ParameterSetName = "Ses")]
        [ValidateNotNullOrEmpty]
        public string? ProfileName { get; set; }

        [Parameter(ParameterSetName = "Ses")]
        public Uri? EndpointUrl { get; set; }

        protected override void EndProcessing()
        {
            try
            {
                switch (ParameterSetName)
                {
                    case "Pickup":
                        WriteObject(MailTransport.Pickup(GetUnresolvedProviderPathFromPSPath(PickupDirectory)));
                        return;
                    case "SendGrid":
                        if (ApiKey != null && Credential != null) throw new ArgumentException("Use -ApiKey or -Credential, not both.");
                        WriteObject(MailTransport.SendGrid(ApiKey ?? Credential?.Password, BaseUri, Timeout));
                        return;
                    case "Ses":
                        WriteObject(MailTransport.Ses(Region, ProfileName, Credential, EndpointUrl, Timeout));
                        return;
                    case "Graph":
                        var (graphTokens, graphSecrets) = Tokens().Resolve(graph: true);
                        WriteObject(MailTransport.Graph(Mailbox, GraphEndpoint, graphTokens, graphSecrets, OAuthToken, Timeout));
                        return;
                    default:
                        var tokens = Tokens();
                        if (tokens.Any && (OAuthToken != null || OAuthCredential != null))
                            throw new ArgumentException("A token of your own (-OAuthToken, -OAuthCredential) and the parameters that get tokens (-TenantId, -ClientId, -ClientSecret, a certificate, -ManagedIdentity, -GoogleServiceAccountKeyPath) cannot be used together.");
                        bool obtained = tokens.Any;
                        var smtp = SmtpParameters.Transport(this, SmtpServer, Port, UseSsl, UseStartTls, SecureSocketOptions, Credential,
                            OAuthCredential, UserName, obtained ? null : OAuthToken, SkipCertificateCheck, SkipRevocationCheck, Timeout, DeliveryNotificationOption, errorId: "InvalidTransport");
                        if (obtained)
                        {
                            if (Credential != null || OAuthCredential != null) throw new ArgumentException("Tokens obtained by the module replace -Credential and -OAuthCredential: use one.");
                            if (UserName == null) throw new ArgumentException("SMTP with OAuth signs in as a mailbox: give it with -UserName.");
                            var (smtpTokens, smtpSecrets) = tokens.Resolve(graph: false);
                            smtp = smtp.WithTokens(UserName, smtpTokens, smtpSecrets);
                        }
                        WriteObject(smtp);
                        return;
                }
            }
            catch (Core.Resilience.SettingException ex)
            {
                ThrowTerminatingError(new ErrorRecord(new ArgumentException(Errors.Explain(ex), ex), "InvalidTransport", ErrorCategory.InvalidArgument, null));
            }
            catch (Exception ex) when (ex is ArgumentException || ex is System.IO.IOException || ex is UnauthorizedAccessException || ex is UriFormatException)
            {
                ThrowTerminatingError(new ErrorRecord(ex, "InvalidTransport", ErrorCategory.InvalidArgument, null));
            }
        }

        private TokenParameters Tokens() => new TokenParameters
        {
            TenantId = TenantId, ClientId = ClientId, ClientSecret = ClientSecret, CertificateThumbprint = CertificateThumbprint,
            CertificatePath = CertificatePath == null ? null : GetUnresolvedProviderPathFromPSPath(CertificatePath), CertificatePassword = CertificatePassword,
            Certificate = Certificate, ManagedIdentity = ManagedIdentity, ManagedIdentityClientId = ManagedIdentityClientId, AuthorityHost = AuthorityHost,
            GoogleKeyPath = GoogleServiceAccountKeyPath == null ? null : GetUnresolvedProviderPathFromPSPath(GoogleServiceAccountKeyPath),
            Token = ParameterSetName == "Graph" ? OAuthToken : null,
        };
    }
}
