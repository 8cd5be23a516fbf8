using System;
using System.Management.Automation;
using ResilientMail.Internal;

namespace ResilientMail.Commands
{
    /// <summary>Makes a reusable, validated transport (SMTP or a pickup directory) for Send-ResilientMail and Start-MailCampaign.</summary>
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

        [Parameter(ParameterSetName = "Smtp")]
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

        [Parameter]
        [TimeSpanArgument]
        public TimeSpan Timeout { get; set; } = TimeSpan.FromSeconds(30);

        /// <summary>Write each message as an .eml file into this folder instead of sending it.</summary>
        [Parameter(Mandatory = true, ParameterSetName = "Pickup")]
        [ValidateNotNullOrEmpty]
        public string PickupDirectory { get; set; } = "";

        protected override void EndProcessing()
        {
            try
            {
                if (ParameterSetName == "Pickup")
                {
                    WriteObject(MailTransport.Pickup(GetUnresolvedProviderPathFromPSPath(PickupDirectory)));
                    return;
                }
                var security = SmtpParameters.Resolve(this, UseSsl, UseStartTls, SecureSocketOptions);
                WriteObject(MailTransport.Smtp(SmtpServer, Port, security, Credential, SkipCertificateCheck, Timeout));
            }
            catch (Exception ex) when (ex is ArgumentException || ex is System.IO.IOException || ex is UnauthorizedAccessException)
            {
                ThrowTerminatingError(new ErrorRecord(ex, "InvalidTransport", ErrorCategory.InvalidArgument, null));
            }
        }
    }
}
