using System;
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
