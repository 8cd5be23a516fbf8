using System;
using System.IO;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Text.RegularExpressions;
using MailKit;
using MailKit.Net.Smtp;
using MailKit.Security;

namespace ResilientMail.Core.Resilience
{
    /// <summary>SMTP failure classes (DESIGN.md, "Failure classes"): 4yz and 4.x.x retry, 5yz and 5.x.x do not.</summary>
    public static class SmtpFailureClassifier
    {
        private static readonly Regex EnhancedCode = new Regex(@"^\s*([245])\.\d{1,3}\.\d{1,3}\b", RegexOptions.CultureInvariant);

        /// <param name="error">What the SMTP client threw.</param>
        /// <param name="bodySent">The whole message had been written when it failed, so the server may have taken it.</param>
        public static Failure Classify(Exception error, bool bodySent)
        {
            switch (error)
            {
                case SmtpCommandException command:
                    return FromReply((int)command.StatusCode, command.Message, command.ErrorCode);
                case MailKit.Security.AuthenticationException auth:
                    return new Failure(FailureKind.Permanent, FailureReason.Authentication,
                        $"The SMTP server refused the credentials: {auth.Message}") { ServerReply = auth.Message };
                case SslHandshakeException tls:
                    return new Failure(FailureKind.Permanent, FailureReason.Certificate,
                        "The TLS handshake failed: the server's certificate is not trusted or the TLS mode does not match the port. " +
                        "Trust the certificate, check -Port and the TLS mode, or (test servers only) use -SkipCertificateCheck. " + FirstLine(tls.Message));
                case System.Security.Authentication.AuthenticationException tls2:
                    return new Failure(FailureKind.Permanent, FailureReason.Certificate,
                        "The TLS handshake failed: " + tls2.Message + " Trust the certificate or (test servers only) use -SkipCertificateCheck.");
                case NotSupportedException unsupported when unsupported.Message.IndexOf("STARTTLS", StringComparison.OrdinalIgnoreCase) >= 0:
                    return new Failure(FailureKind.Permanent, FailureReason.Certificate,
                        "The server does not offer STARTTLS, so the connection cannot be encrypted as asked. Use the port that offers it " +
                        "(usually 587), -UseSsl for port 465 (TLS from the start), or -SecureSocketOptions Auto or None for a server without TLS.");
                case NotSupportedException unsupported when unsupported.Message.IndexOf("authentication", StringComparison.OrdinalIgnoreCase) >= 0:
                    return new Failure(FailureKind.Permanent, FailureReason.Authentication,
                        "The server does not offer SMTP AUTH on this connection, so the credentials cannot be used. Many servers offer it only " +
                        "after STARTTLS (-UseStartTls, port 587); or leave out -Credential if the server needs none.");
                case SmtpProtocolException protocol:
                    return Network($"The SMTP conversation broke off: {protocol.Message}", bodySent);
                case ServiceNotAuthenticatedException notAuthenticated:
                    return new Failure(FailureKind.Permanent, FailureReason.Authentication,
                        $"The SMTP server requires authentication ({notAuthenticated.Message}): pass -Credential, or an OAuth2 token (-UserName with -OAuthToken).")
                        { ServerReply = notAuthenticated.Message };
                case ServiceNotConnectedException:
                    return Network("The SMTP connection was lost.", bodySent);
                case SocketException socket when socket.SocketErrorCode == SocketError.ConnectionRefused:
                    return Network("The SMTP server refused the connection: nothing is listening on that port. Check -SmtpServer and -Port, and that the server is running.", bodySent);
                case SocketException socket when socket.SocketErrorCode == SocketError.HostNotFound || socket.SocketErrorCode == SocketError.NoData || socket.SocketErrorCode == SocketError.TryAgain:
                    return Network($"The SMTP server's name could not be resolved ({socket.SocketErrorCode}). Check the spelling of -SmtpServer and the DNS settings.", bodySent);
                case SocketException socket:
                    return Network($"Network error talking to the SMTP server: {socket.Message} ({socket.SocketErrorCode}).", bodySent);
                case IOException io:
                    return Network($"Network error talking to the SMTP server: {io.InnerException?.Message ?? io.Message}", bodySent);
                case TimeoutException:
                case OperationCanceledException:
                    return bodySent
                        ? new Failure(FailureKind.Ambiguous, FailureReason.Timeout, "The server did not answer after the whole message was sent; it may have been delivered.")
                        : new Failure(FailureKind.Transient, FailureReason.Timeout, "The SMTP server did not answer in time.");
                default:
                    return new Failure(FailureKind.Permanent, FailureReason.Protocol, error.Message);
            }
        }

        /// <summary>Classifies an SMTP reply. The enhanced status code, when present, decides the class.</summary>
        public static Failure FromReply(int statusCode, string text, SmtpErrorCode errorCode = SmtpErrorCode.UnexpectedStatusCode)
        {
            var reply = $"{statusCode} {text}".Trim();
            var enhanced = EnhancedCode.Match(text ?? "");
            int cls = enhanced.Success ? enhanced.Groups[1].Value[0] - '0' : statusCode / 100;

            if (statusCode == 535 || statusCode == 534 || statusCode == 530 && text != null && text.IndexOf("auth", StringComparison.OrdinalIgnoreCase) >= 0)
                return new Failure(FailureKind.Permanent, FailureReason.Authentication, $"Authentication failed: {reply}") { ServerReply = reply, StatusCode = statusCode };

            if (cls == 4)
                return new Failure(FailureKind.Transient, FailureReason.ServerBusy, $"The server deferred the message: {reply}") { ServerReply = reply, StatusCode = statusCode };

            var reason = errorCode switch
            {
                SmtpErrorCode.RecipientNotAccepted => FailureReason.RecipientRejected,
                SmtpErrorCode.SenderNotAccepted => FailureReason.SenderRejected,
                _ => FailureReason.Rejected,
            };
            var what = reason switch
            {
                FailureReason.RecipientRejected => "The server rejected the recipient",
                FailureReason.SenderRejected => "The server rejected the sender",
                _ => "The server rejected the message",
            };
            return new Failure(FailureKind.Permanent, reason, $"{what}: {reply}") { ServerReply = reply, StatusCode = statusCode };
        }

        private static Failure Network(string message, bool bodySent) => bodySent
            ? new Failure(FailureKind.Ambiguous, FailureReason.Network, message + " The whole message had been sent, so it may have been delivered.")
            : new Failure(FailureKind.Transient, FailureReason.Network, message);

        private static string FirstLine(string s)
        {
            var i = s.IndexOfAny(new[] { '\r', '\n' });
            return i < 0 ? s : s.Substring(0, i);
        }
    }
}
