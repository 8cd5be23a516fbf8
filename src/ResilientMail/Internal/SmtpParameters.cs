using System;
using System.Management.Automation;

namespace ResilientMail.Internal
{
    internal static class SmtpParameters
    {
        /// <summary>-UseSsl and -UseStartTls are short forms of -SecureSocketOptions; both at once is an error.</summary>
        public static MailSecurity Resolve(Cmdlet cmdlet, bool useSsl, bool useStartTls, MailSecurity options)
        {
            if (useSsl && useStartTls)
                cmdlet.ThrowTerminatingError(new ErrorRecord(new ArgumentException("-UseSsl and -UseStartTls cannot be used together."), "ConflictingTlsOptions", ErrorCategory.InvalidArgument, null));
            if (useSsl) return MailSecurity.SslOnConnect;
            if (useStartTls) return MailSecurity.StartTls;
            return options;
        }
    }
}
