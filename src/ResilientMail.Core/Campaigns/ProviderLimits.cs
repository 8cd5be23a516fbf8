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
