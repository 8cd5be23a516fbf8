using System;
using ResilientMail.Core.Resilience;
using ResilientMail.Core.Transports;

namespace ResilientMail.Core.Campaigns
{
    /// <summary>
    /// A campaign's pace and concurrency within what the provider allows: a user's explicit rate wins; without one the
    /// provider's own limit is the pace (Microsoft 365: 30 messages a minute per mailbox). Concurrency above the
    /// provider's (Graph: 4 requests per mailbox) is capped, with one sentence that says so.
    /// </summary>
    public sealed record ProviderLimits(int Concurrency, RateLimit? Rate, bool RateFromProvider, string? Warning)
    {
        /// <summary>Recipients in a rolling 24 hours before the campaign pauses (null: no cap).</summary>
        public int? RecipientsPerDay { get; init; }

        /// <summary>What the account had already sent in the last 24 hours, by the provider's count (counted as sent now).</summary>
        public int SentLast24Hours { get; init; }
        /// <summary>Where the pace and cap came from, when the provider published them.</summary>
        public string? Source { get; init; }
        /// <summary>Why the account's published quota could not be read (the campaign goes on without it).</summary>
        public string? QuotaProblem { get; init; }

        /// <summary>
        /// A campaign's limits in one step: the provider's own, the account's published quota (read once, when the user
        /// left the pace or the daily cap to the provider, and <paramref name="readQuota"/>), and what the user asked for.
        /// </summary>
        public static async System.Threading.Tasks.Task<ProviderLimits> ForCampaignAsync(TransportDescription transport, Func<IMailTransport> open, bool readQuota,
            int concurrency, RateLimit? asked, int? perDay, System.Threading.CancellationToken cancellationToken)
        {
            ProviderQuota? quota = null;
            string? problem = null;
            if (readQuota && (asked == null || perDay == null))
            {
                using var live = open();
                (quota, problem) = await ReadQuotaAsync(live, cancellationToken).ConfigureAwait(false);
            }
            return Apply(transport, concurrency, asked, perDay, quota) with { QuotaProblem = problem };
        }

        /// <summary>These limits in a campaign's options.</summary>
        public CampaignOptions ApplyTo(CampaignOptions options) => options with
        {
            RateLimit = Rate, Concurrency = Concurrency, RecipientsPerDay = RecipientsPerDay, SentLast24Hours = SentLast24Hours,
            PaceFromQuota = RateFromProvider && Source != null,
        };

        /// <summary>With the account's own quota (SES GetAccount) as the pace and the 24-hour cap, unless the user set them.</summary>
        public static ProviderLimits Apply(TransportDescription transport, int concurrency, RateLimit? asked, int? perDay, ProviderQuota? quota)
        {
            var limits = Apply(transport, concurrency, asked, perDay);
            if (quota == null) return limits;
            var rate = RateOf(quota);
            return limits with
            {
                Rate = asked ?? rate ?? limits.Rate,
                RateFromProvider = asked == null && (rate ?? limits.Rate) != null,
                RecipientsPerDay = perDay == 0 ? null : perDay ?? quota.MaxPer24Hours,
                SentLast24Hours = perDay == null ? quota.SentLast24Hours : 0,
                Source = quota.Source,
            };
        }

        /// <summary>The pace of a published max send rate: 14 a second paces at 14 a second; a fraction (0.5) as 1 per 2 s.</summary>
        public static RateLimit? RateOf(ProviderQuota quota) =>
            quota.MaxPerSecond >= 1 ? new RateLimit((int)Math.Floor(quota.MaxPerSecond), TimeSpan.FromSeconds(1))
            : quota.MaxPerSecond > 0 ? new RateLimit(1, TimeSpan.FromSeconds(Math.Ceiling(1 / quota.MaxPerSecond))) : null;

        /// <summary>
        /// The account's quota when the provider publishes one (SES), read once at the start; null when it does not, and a
        /// problem (in words) when reading it failed: the campaign then goes on at the pace it was given.
        /// </summary>
        public static async System.Threading.Tasks.Task<(ProviderQuota? Quota, string? Problem)> ReadQuotaAsync(IMailTransport transport, System.Threading.CancellationToken cancellationToken)
        {
            if (!(transport is IPublishesQuota publisher)) return (null, null);
            try
            {
                using var limit = System.Threading.CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
                limit.CancelAfter(transport.Timeout);
                return (await publisher.GetQuotaAsync(limit.Token).ConfigureAwait(false), null);
            }
            catch (Exception ex) when (!cancellationToken.IsCancellationRequested)
            {
                var why = (ex as Resilience.MailDeliveryException)?.Failure.ServerReply ?? ex.Message;
                return (null, $"The account's sending quota could not be read from {transport.Description} ({why}); the campaign goes on at the pace it was given. " +
                              "Allow the identity to read it (Amazon SES: ses:GetAccount), or give the pace and the daily cap yourself.");
            }
        }

        /// <param name="perDay">The user's own daily cap: null for the provider's, 0 for none.</param>
        public static ProviderLimits Apply(TransportDescription transport, int concurrency, RateLimit? asked, int? perDay = null)
        {
            string? warning = null;
            if (transport.MaxConcurrency is int max && concurrency > max)
            {
                warning = $"{transport} serves at most {max} requests at once per sender; sending with {max} connections, not {concurrency}.";
                concurrency = max;
            }
            var rate = asked ?? transport.ProviderRate;
            var cap = perDay == 0 ? null : perDay ?? transport.RecipientsPerDay;
            return new ProviderLimits(concurrency, rate, asked == null && rate != null, warning) { RecipientsPerDay = cap };
        }
    }
}
