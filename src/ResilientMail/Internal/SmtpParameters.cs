using System;
using System.Management.Automation;
using System.Security;

namespace ResilientMail.Internal
{
    /// <summary>The SMTP parameters New-MailTransport and Send-ResilientMail share, turned into a transport in one place.</summary>
    internal static class SmtpParameters
    {
        /// <summary>An SMTP transport from the parameters; a bad combination or value is a terminating error.</summary>
        public static MailTransport Transport(Cmdlet cmdlet, string server, int port, bool useSsl, bool useStartTls, MailSecurity options, PSCredential? credential,
            PSCredential? oauthCredential, string? userName, SecureString? oauthToken, bool skipCertificateCheck, TimeSpan timeout, string errorId = "InvalidSmtpSettings")
        {
            var security = Resolve(cmdlet, useSsl, useStartTls, options);
            var (user, token) = OAuth(cmdlet, oauthCredential, userName, oauthToken);
            try
            {
                return MailTransport.Smtp(server, port, security, credential, user, token, skipCertificateCheck, timeout);
            }
            catch (ArgumentException ex)
            {
                cmdlet.ThrowTerminatingError(new ErrorRecord(ex, errorId, ErrorCategory.InvalidArgument, server));
                throw; // not reached
            }
        }

        /// <summary>-UseSsl and -UseStartTls are short forms of -SecureSocketOptions; both at once is an error.</summary>
        public static MailSecurity Resolve(Cmdlet cmdlet, bool useSsl, bool useStartTls, MailSecurity options)
        {
            if (useSsl && useStartTls)
                cmdlet.ThrowTerminatingError(new ErrorRecord(new ArgumentException("-UseSsl and -UseStartTls cannot be used together."), "ConflictingTlsOptions", ErrorCategory.InvalidArgument, null));
            if (useSsl) return MailSecurity.SslOnConnect;
            if (useStartTls) return MailSecurity.StartTls;
            return options;
        }

        /// <summary>-OAuthCredential (user name + token) or -UserName with -OAuthToken; both forms at once is an error.</summary>
        public static (string? User, SecureString? Token) OAuth(Cmdlet cmdlet, PSCredential? oauthCredential, string? userName, SecureString? token)
        {
            if (oauthCredential != null && token != null)
                cmdlet.ThrowTerminatingError(new ErrorRecord(new ArgumentException("Use -OAuthCredential or -OAuthToken, not both."), "ConflictingOAuthOptions", ErrorCategory.InvalidArgument, null));
            if (oauthCredential != null) return (oauthCredential.UserName, oauthCredential.Password);
            return (userName, token);
        }
    }
}
