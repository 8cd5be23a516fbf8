using System;
using System.Management.Automation;
using ResilientMail.Core.Messages;
using ResilientMail.Core.Resilience;

namespace ResilientMail.Internal
{
    /// <summary>Stable ErrorIds and categories: tests and users' scripts match on these, so they do not change.</summary>
    internal static class Errors
    {
        public static ErrorRecord For(MessageValidationException ex, object? target)
        {
            var (id, category) = ex.Problem switch
            {
                ValidationProblem.MissingPlaceholder => ("MissingPlaceholder", ErrorCategory.InvalidData),
                ValidationProblem.InvalidAddress => ("InvalidAddress", ErrorCategory.InvalidArgument),
                ValidationProblem.HeaderInjection => ("HeaderInjection", ErrorCategory.InvalidData),
                ValidationProblem.InvalidHeader => ("InvalidHeader", ErrorCategory.InvalidArgument),
                ValidationProblem.AttachmentNotFound => ("AttachmentNotFound", ErrorCategory.ObjectNotFound),
                ValidationProblem.MissingRecipient => ("MissingRecipient", ErrorCategory.InvalidArgument),
                _ => ("InvalidMessage", ErrorCategory.InvalidData),
            };
            return new ErrorRecord(ex, id, category, target);
        }

        public static ErrorRecord For(Exception error, Failure failure, object? target)
        {
            var (id, category) = Classify(failure);
            return new ErrorRecord(error, id, category, target)
            {
                ErrorDetails = new ErrorDetails(failure.Message) { RecommendedAction = Advice(failure) },
            };
        }

        private static (string, ErrorCategory) Classify(Failure failure)
        {
            if (failure.Kind == FailureKind.Ambiguous) return ("DeliveryUncertain", ErrorCategory.OperationTimeout);
            switch (failure.Reason)
            {
                case FailureReason.Authentication: return ("AuthenticationFailed", ErrorCategory.AuthenticationError);
                case FailureReason.Certificate: return ("TlsHandshakeFailed", ErrorCategory.SecurityError);
                case FailureReason.ConnectivityLost: return ("ConnectivityLost", ErrorCategory.ConnectionError);
                case FailureReason.RecipientRejected: return ("RecipientRejected", ErrorCategory.InvalidArgument);
                case FailureReason.SenderRejected: return ("SenderRejected", ErrorCategory.PermissionDenied);
                case FailureReason.Rejected: return ("MessageRejected", ErrorCategory.InvalidOperation);
                case FailureReason.MessageTooLarge: return ("MessageTooLarge", ErrorCategory.LimitsExceeded);
                case FailureReason.ProviderSuspended: return ("SendingPaused", ErrorCategory.PermissionDenied);
                case FailureReason.Protocol: return ("ProtocolError", ErrorCategory.ProtocolError);
                case FailureReason.Timeout: return ("RetriesExhausted", ErrorCategory.OperationTimeout);
                case FailureReason.Network: return ("RetriesExhausted", ErrorCategory.ConnectionError);
                default: return ("RetriesExhausted", ErrorCategory.ResourceUnavailable);
            }
        }

        private static string? Advice(Failure failure) => failure.Reason switch
        {
            FailureReason.Authentication => "Check the credentials given to New-MailTransport (SMTP: -Credential and that the server allows SMTP AUTH; SendGrid: -ApiKey and its Mail Send permission; SES: the keys or -ProfileName, the region and the clock).",
            FailureReason.ProviderSuspended => "The provider has stopped sending for this account; resolve it with the provider, then run again (campaigns resume where they paused).",
            FailureReason.Throttled => "The provider is rate limiting this account; lower -RateLimit or raise the account's sending quota.",
            FailureReason.Certificate => "Check -Port and the TLS mode (465 is SslOnConnect, 587 is StartTls), trust the server's certificate, or for a test server use -SkipCertificateCheck.",
            FailureReason.ConnectivityLost => "Check the network path to the server, then run the command again for the messages that were not sent.",
            FailureReason.RecipientRejected => "Check the recipient's address; the server will not take mail for it.",
            FailureReason.MessageTooLarge => "Make the message smaller (fewer or smaller attachments, or a link to a file share instead); the server's limit is in its reply or its EHLO SIZE.",
            FailureReason.SenderRejected => "Check -From: the server (or provider) does not let this account send as that address, or the sender's domain is not verified.",
            FailureReason.Timeout when failure.Kind == FailureKind.Transient => "The server did not answer in time: check that it is up and not overloaded; -Timeout allows each attempt longer.",
            FailureReason.Network when failure.Kind == FailureKind.Transient => "Check -SmtpServer (or the transport's address) and port, that the server is running, and the network path (VPN, firewall, proxy).",
            _ when failure.Kind == FailureKind.Ambiguous => "Check whether the message arrived before sending it again (-RetryUncertain retries such sends automatically).",
            _ => null,
        };
    }
}
