using System;
using System.Linq;
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
            var message = error is MailDeliveryException ? failure.Message : error.Message;
            var remedies = Remedies(failure.Remedy);
            return new ErrorRecord(error, id, category, target)
            {
                // What the user sees: what happened (Core's words), then which parameter changes it (this layer's).
                ErrorDetails = new ErrorDetails(remedies == null ? message : message + " " + remedies)
                {
                    RecommendedAction = string.Join(" ", new[] { Advice(failure), remedies }.Where(t => t != null)),
                },
            };
        }

        /// <summary>A failure's message with the parameters that fix it: for messages this layer composes (a pause, a stop).</summary>
        public static string Explain(Failure failure) => Explain(failure.Message, failure);

        /// <summary><paramref name="text"/> (which tells of <paramref name="failure"/>), then the parameters that fix it.</summary>
        public static string Explain(string text, Failure? failure)
        {
            var remedies = failure == null ? null : Remedies(failure.Remedy);
            return remedies == null ? text : text.TrimEnd() + " " + remedies;
        }

        /// <summary>
        /// The same error as Send-MailMessage raises it: its exception an SmtpException (SmtpFailedRecipientException for a
        /// refused recipient), with ours inside, so that "catch [System.Net.Mail.SmtpException]" in an old script still works.
        /// </summary>
        public static ErrorRecord AsSmtpException(ErrorRecord record)
        {
            var message = record.ErrorDetails?.Message ?? record.Exception.Message;
            System.Net.Mail.SmtpException smtp = record.FullyQualifiedErrorId.StartsWith("RecipientRejected", StringComparison.Ordinal) && record.TargetObject is string address
                ? new System.Net.Mail.SmtpFailedRecipientException(message, address, record.Exception)
                : new System.Net.Mail.SmtpException(message, record.Exception);
            var id = record.FullyQualifiedErrorId;
            int comma = id.IndexOf(',');
            return new ErrorRecord(smtp, comma > 0 ? id.Substring(0, comma) : id, record.CategoryInfo.Category, record.TargetObject) { ErrorDetails = record.ErrorDetails };
        }

        /// <summary>A campaign that cannot start: one stable id per problem, and the parameter that fixes it.</summary>
        public static ErrorRecord For(Core.Campaigns.CampaignSetupError e, object? target)
        {
            var (id, category, advice) = e.Problem switch
            {
                Core.Campaigns.CampaignSetupProblem.NotFound => ("CampaignNotFound", ErrorCategory.ObjectNotFound, (string?)null),
                Core.Campaigns.CampaignSetupProblem.MissingFrom => ("MissingFrom", ErrorCategory.InvalidArgument, "Pass -From."),
                Core.Campaigns.CampaignSetupProblem.MissingSubject => ("MissingSubject", ErrorCategory.InvalidArgument, "Pass -Subject."),
                Core.Campaigns.CampaignSetupProblem.MissingTransport => ("MissingTransport", ErrorCategory.InvalidArgument, "Pass -Transport (see New-MailTransport)."),
                Core.Campaigns.CampaignSetupProblem.TemplateUnreadable => ("TemplateUnreadable", ErrorCategory.ReadError, "Check -BodyPath and -HtmlBodyPath."),
                Core.Campaigns.CampaignSetupProblem.AttachmentNotFound => ("AttachmentNotFound", ErrorCategory.InvalidArgument, "Check -Attachments."),
                Core.Campaigns.CampaignSetupProblem.CredentialRequired => ("CredentialRequired", ErrorCategory.AuthenticationError, "Pass -Transport again (New-MailTransport ...)."),
                _ => ("InvalidCampaign", ErrorCategory.InvalidArgument, null),
            };
            return new ErrorRecord(new InvalidOperationException(advice == null ? e.Message : $"{e.Message} {advice}", e), id, category, target);
        }

        /// <summary>A Core setting error with the parameter that sets it.</summary>
        public static string Explain(SettingException ex) => ex.Setting switch
        {
            "Region" => ex.Message + " Pass -Region.",
            "Credentials" => ex.Message + " Pass -ProfileName, or -Credential (user name: the access key id; password: the secret access key).",
            "TenantId" or "ClientId" or "Mailbox" or "CertificateThumbprint" or "CertificatePath" or "ClientSecret" or "AuthorityHost" or "GraphEndpoint" or "UserName" => ex.Message + $" (-{ex.Setting})",
            "GoogleKeyPath" => ex.Message + " (-GoogleServiceAccountKeyPath)",
            "Certificate" => ex.Message + " (-CertificateThumbprint, -CertificatePath or -Certificate)",
            _ => ex.Message,
        };

        /// <summary>Core's remedies, in this module's parameters.</summary>
        private static string? Remedies(Remedy remedy)
        {
            if (remedy == Remedy.None) return null;
            var parts = new System.Collections.Generic.List<string>();
            if ((remedy & Remedy.ServerAddress) != 0) parts.Add("Check -SmtpServer and -Port (or the transport's address).");
            if ((remedy & Remedy.TlsMode) != 0) parts.Add("Match the TLS mode to the port: -UseSsl (TLS from the start) on 465, -UseStartTls on 587, -SecureSocketOptions Auto or None for a server without TLS.");
            if ((remedy & Remedy.TrustCertificate) != 0) parts.Add("Trust the server's certificate (or its CA) on this machine.");
            if ((remedy & Remedy.SkipCertificateCheck) != 0) parts.Add("-SkipCertificateCheck accepts any certificate (test servers, or a relay on your own network).");
            if ((remedy & Remedy.Credentials) != 0) parts.Add("Pass -Credential, or an OAuth2 token (-UserName with -OAuthToken).");
            if ((remedy & Remedy.StartTlsForAuth) != 0) parts.Add("Use -UseStartTls (port 587) to sign in after STARTTLS, or leave out -Credential if the server needs none.");
            if ((remedy & Remedy.WaitLonger) != 0) parts.Add("-ConnectionWaitTimeout waits longer.");
            if ((remedy & Remedy.ProviderAddress) != 0) parts.Add("Check -BaseUri (SendGrid) or -EndpointUrl (SES), and any proxy in between.");
            if ((remedy & Remedy.AsciiSender) != 0) parts.Add("Use an ASCII address in -From and -ReplyTo.");
            if ((remedy & Remedy.Microsoft365) != 0) parts.Add("Set-ups that work without a password: New-MailTransport -Graph -Mailbox <address> with -ManagedIdentity, or -TenantId and -ClientId with -CertificateThumbprint or -ClientSecret; " +
                "or SMTP with the same token parameters and -UserName. Get-Help about_ResilientMail, section MICROSOFT 365, walks through each.");
            if ((remedy & Remedy.GoogleWorkspace) != 0) parts.Add("New-MailTransport -SmtpServer smtp.gmail.com -UseStartTls -UserName <mailbox> -GoogleServiceAccountKeyPath <key.json>; Get-Help about_ResilientMail, section GOOGLE WORKSPACE.");
            if ((remedy & Remedy.SkipRevocationCheck) != 0) parts.Add("-SkipRevocationCheck skips only the revocation check (the certificate must still be trusted and match the name); -SkipCertificateCheck would turn off every check.");
            return string.Join(" ", parts);
        }

        /// <summary>
        /// The errors for a message that did not reach everyone: one per refused address when recipients had their own
        /// fates (each names its address), else one for the message.
        /// </summary>
        public static System.Collections.Generic.IEnumerable<ErrorRecord> ForResult(Core.Delivery.DeliveryResult result, object? target)
        {
            var failure = result.Failure!;
            if (result.Refused.Count > 0 && (result.Refused.Count > 1 || result.Delivered.Count > 0 || failure.Refused != null))
            {
                foreach (var refused in result.Refused)
                    yield return For(new MailDeliveryException(refused.Failure, result.Error), refused.Failure, refused.Address);
            }
            else
            {
                yield return For(result.Error!, failure, target);
            }
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
            FailureReason.Throttled => "The server or provider is limiting how fast this account sends: give -RateLimit at or below its limit, or raise the account's sending quota; Start-MailCampaign without -RateLimit finds and keeps the pace the server allows.",
            FailureReason.ServerBusy when failure.Kind == FailureKind.Transient => "The server deferred it (greylisting, a policy or a busy server), past the quick retries. Send-ResilientMail keeps no message for later, so that its results stay in input order: send it again later, or use Start-MailCampaign, which sets such messages aside in its journal and tries them again on a longer schedule (-DeferralInterval, -DeferralLimit) while the rest goes on.",
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
