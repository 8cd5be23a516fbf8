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
            PSCredential? oauthCredential, string? userName, SecureString? oauthToken, bool skipCertificateCheck, bool skipRevocationCheck, TimeSpan timeout,
            System.Net.Mail.DeliveryNotificationOptions notify = System.Net.Mail.DeliveryNotificationOptions.None, string errorId = "InvalidSmtpSettings")
        {
            var (security, resolvedPort) = Resolve(cmdlet, useSsl, useStartTls, options, port);
            var (user, token) = OAuth(cmdlet, oauthCredential, userName, oauthToken);
            try
            {
                return MailTransport.Smtp(server, resolvedPort, security, credential, user, token, skipCertificateCheck, skipRevocationCheck, notify, timeout);
            }
            catch (ArgumentException ex)
            {
                cmdlet.ThrowTerminatingError(new ErrorRecord(ex, errorId, ErrorCategory.InvalidArgument, server));
                throw; // not reached
            }
        }

        /// <summary>
        /// -UseSsl means what it means in Send-MailMessage: TLS is required; it starts from the first byte on port 465 and
        /// with STARTTLS on any other port (25 when none is given, Send-MailMessage's default). -UseStartTls is STARTTLS
        /// (587 when no port is given). Both at once is an error; -SecureSocketOptions is the exact choice.
        /// </summary>
        public static (MailSecurity Security, int Port) Resolve(Cmdlet cmdlet, bool useSsl, bool useStartTls, MailSecurity options, int port)
        {
            if (useSsl && useStartTls)
                cmdlet.ThrowTerminatingError(new ErrorRecord(new ArgumentException("-UseSsl and -UseStartTls cannot be used together."), "ConflictingTlsOptions", ErrorCategory.InvalidArgument, null));
            if (useSsl) return port == 465 ? (MailSecurity.SslOnConnect, 465) : (MailSecurity.StartTls, port == 0 ? 25 : port);
            if (useStartTls) return (MailSecurity.StartTls, port);
            return (options, port);
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
