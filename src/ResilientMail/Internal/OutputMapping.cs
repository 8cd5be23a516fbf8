using System;
using System.Linq;
using ResilientMail.Core.Delivery;

namespace ResilientMail.Internal
{
    /// <summary>Core's statuses to the PowerShell-facing twins, by name (never by ordinal): a new member on one side is an error here.</summary>
    internal static class OutputMapping
    {
        public static MailDeliveryStatus Of(DeliveryStatus status) => status switch
        {
            DeliveryStatus.Sent => MailDeliveryStatus.Sent,
            DeliveryStatus.Failed => MailDeliveryStatus.Failed,
            DeliveryStatus.Uncertain => MailDeliveryStatus.Uncertain,
            DeliveryStatus.PartiallySent => MailDeliveryStatus.PartiallySent,
            _ => throw new ArgumentOutOfRangeException(nameof(status), status, "A delivery status without a PowerShell twin."),
        };

        public static MailDeliveryResult Result(DeliveryResult result, string subject) => new MailDeliveryResult
        {
            To = result.Recipients,
            Status = Of(result.Status),
            Delivered = result.Delivered.ToArray(),
            Refused = result.Refused.Select(r => $"{r.Address}: {r.Failure.ServerReply ?? r.Failure.Message}").ToArray(),
            Attempts = result.Attempts,
            MessageId = result.MessageId,
            ServerReply = result.ServerReply,
            Error = result.Failure?.Message,
            FailureKind = result.Failure?.Kind.ToString(),
            Duration = result.Duration,
            Subject = subject,
            Timestamp = DateTimeOffset.Now,
        };

        /// <summary>A record that could not become a message: failed, nothing sent.</summary>
        public static MailDeliveryResult Refused(string to, string subject, string error) => new MailDeliveryResult
        {
            To = to, Status = MailDeliveryStatus.Failed, Error = error, FailureKind = "Permanent", Subject = subject, Timestamp = DateTimeOffset.Now,
        };

        public static Core.Messages.MessagePriority Of(MailPriority priority) => priority switch
        {
            MailPriority.Normal => Core.Messages.MessagePriority.Normal,
            MailPriority.Low => Core.Messages.MessagePriority.Low,
            MailPriority.High => Core.Messages.MessagePriority.High,
            _ => throw new ArgumentOutOfRangeException(nameof(priority), priority, "A priority without a Core twin."),
        };

        public static Core.Transports.SmtpSecurity Of(MailSecurity security) => security switch
        {
            MailSecurity.Auto => Core.Transports.SmtpSecurity.Auto,
            MailSecurity.None => Core.Transports.SmtpSecurity.None,
            MailSecurity.StartTls => Core.Transports.SmtpSecurity.StartTls,
            MailSecurity.SslOnConnect => Core.Transports.SmtpSecurity.SslOnConnect,
            _ => throw new ArgumentOutOfRangeException(nameof(security), security, "A TLS mode without a Core twin."),
        };

        public static MailSecurity Of(Core.Transports.SmtpSecurity security) => security switch
        {
            Core.Transports.SmtpSecurity.Auto => MailSecurity.Auto,
            Core.Transports.SmtpSecurity.None => MailSecurity.None,
            Core.Transports.SmtpSecurity.StartTls => MailSecurity.StartTls,
            Core.Transports.SmtpSecurity.SslOnConnect => MailSecurity.SslOnConnect,
            _ => throw new ArgumentOutOfRangeException(nameof(security), security, "A TLS mode without a PowerShell twin."),
        };

        public static CampaignRecipientResult Result(string campaign, Core.Campaigns.CampaignOutcome o) => new CampaignRecipientResult
        {
            Campaign = campaign, To = o.To, Key = o.Key, Status = Of(o.Status), Attempts = o.Attempts, MessageId = o.MessageId,
            ServerReply = o.ServerReply, Error = o.Failure?.Message ?? o.Note, Duration = o.Duration, Row = o.Row,
        };

        /// <summary>Send-MailMessage's flags (its Never is a large flag value of its own) to Core's.</summary>
        public static Core.Transports.DeliveryNotification Of(System.Net.Mail.DeliveryNotificationOptions o)
        {
            var n = Core.Transports.DeliveryNotification.None;
            if ((o & System.Net.Mail.DeliveryNotificationOptions.Never) == System.Net.Mail.DeliveryNotificationOptions.Never) return Core.Transports.DeliveryNotification.Never;
            if ((o & System.Net.Mail.DeliveryNotificationOptions.OnSuccess) != 0) n |= Core.Transports.DeliveryNotification.OnSuccess;
            if ((o & System.Net.Mail.DeliveryNotificationOptions.OnFailure) != 0) n |= Core.Transports.DeliveryNotification.OnFailure;
            if ((o & System.Net.Mail.DeliveryNotificationOptions.Delay) != 0) n |= Core.Transports.DeliveryNotification.Delay;
            return n;
        }

        public static System.Net.Mail.DeliveryNotificationOptions Of(Core.Transports.DeliveryNotification n)
        {
            if ((n & Core.Transports.DeliveryNotification.Never) != 0) return System.Net.Mail.DeliveryNotificationOptions.Never;
            var o = System.Net.Mail.DeliveryNotificationOptions.None;
            if ((n & Core.Transports.DeliveryNotification.OnSuccess) != 0) o |= System.Net.Mail.DeliveryNotificationOptions.OnSuccess;
            if ((n & Core.Transports.DeliveryNotification.OnFailure) != 0) o |= System.Net.Mail.DeliveryNotificationOptions.OnFailure;
            if ((n & Core.Transports.DeliveryNotification.Delay) != 0) o |= System.Net.Mail.DeliveryNotificationOptions.Delay;
            return o;
        }

        public static CampaignRecipientStatus Of(Core.Campaigns.CampaignRecipientStatus status) => status switch
        {
            Core.Campaigns.CampaignRecipientStatus.Sent => CampaignRecipientStatus.Sent,
            Core.Campaigns.CampaignRecipientStatus.Failed => CampaignRecipientStatus.Failed,
            Core.Campaigns.CampaignRecipientStatus.Uncertain => CampaignRecipientStatus.Uncertain,
            Core.Campaigns.CampaignRecipientStatus.Duplicate => CampaignRecipientStatus.Duplicate,
            _ => throw new ArgumentOutOfRangeException(nameof(status), status, "A campaign status without a PowerShell twin."),
        };
    }
}
