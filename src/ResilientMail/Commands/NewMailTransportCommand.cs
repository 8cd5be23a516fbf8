using System;
using System.Management.Automation;
using System.Security;
using ResilientMail.Internal;

namespace ResilientMail.Commands
{
    /// <summary>Makes a reusable, validated transport (SMTP, SendGrid, Amazon SES or a pickup directory) for Send-ResilientMail and Start-MailCampaign.</summary>
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

        /// <summary>An OAuth2 access token for SMTP (XOAUTH2), used with -UserName, instead of a password.</summary>
        [Parameter(ParameterSetName = "Smtp")]
        public SecureString? OAuthToken { get; set; }

        /// <summary>The mailbox an OAuth2 token was issued for.</summary>
        [Parameter(ParameterSetName = "Smtp")]
        [ValidateNotNullOrEmpty]
        public string? UserName { get; set; }

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
                    default:
                        WriteObject(SmtpParameters.Transport(this, SmtpServer, Port, UseSsl, UseStartTls, SecureSocketOptions, Credential,
                            OAuthCredential, UserName, OAuthToken, SkipCertificateCheck, SkipRevocationCheck, Timeout, DeliveryNotificationOption, errorId: "InvalidTransport"));
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
    }
}
