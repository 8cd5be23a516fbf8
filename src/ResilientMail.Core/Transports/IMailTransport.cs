using System;
using System.Collections.Generic;
using System.Threading;
using System.Threading.Tasks;
using MimeKit;
using ResilientMail.Core.Resilience;

namespace ResilientMail.Core.Transports
{
    /// <summary>What the server said when it took a message.</summary>
    public sealed record Receipt(string MessageId, string? ServerReply)
    {
        /// <summary>Envelope recipients that were not taken although the message went to the others (SMTP only).</summary>
        public IReadOnlyList<RecipientRefusal> Refused { get; init; } = NoRefusals;

        internal static readonly RecipientRefusal[] NoRefusals = new RecipientRefusal[0];
    }

    /// <summary>State of one attempt that the engine reads after it ends, however it ends.</summary>
    public sealed class SendAttempt
    {
        private static readonly string[] NoneDelivered = new string[0];
        private int _bodySent;
        // Made only when a transaction settles something (SMTP): a healthy HTTP send allocates neither.
        private List<string>? _delivered;
        private List<RecipientRefusal>? _refused;

        /// <summary>The whole message reached the wire in a transaction whose outcome is not known yet: a failure from here on leaves it unknown.</summary>
        public bool BodySent => Volatile.Read(ref _bodySent) == 1;

        public void MarkBodySent() => Volatile.Write(ref _bodySent, 1);

        /// <summary>
        /// The envelope recipients to send to this time: null for all of the message's To, Cc and Bcc. Set when an
        /// earlier attempt delivered to some of them, so that a retry goes only to the others.
        /// </summary>
        public IReadOnlyList<MailboxAddress>? Recipients { get; set; }

        /// <summary>Recipients a finished transaction of this attempt delivered to (known even if a later transaction fails).</summary>
        public IReadOnlyList<string> Delivered => (IReadOnlyList<string>?)_delivered ?? NoneDelivered;

        /// <summary>Recipients refused one by one in this attempt (RCPT TO, or an address the transport cannot carry).</summary>
        public IReadOnlyList<RecipientRefusal> Refused => (IReadOnlyList<RecipientRefusal>?)_refused ?? Receipt.NoRefusals;

        /// <summary>A transaction ended with the server's answer: what it took and what it refused is known.</summary>
        public void Settle(IEnumerable<string> delivered, IEnumerable<RecipientRefusal> refused)
        {
            (_delivered ??= new List<string>()).AddRange(delivered);
            foreach (var r in refused) Refuse(r);
            Volatile.Write(ref _bodySent, 0);
        }

        public void Refuse(RecipientRefusal refusal) => (_refused ??= new List<RecipientRefusal>()).Add(refusal);
    }

    /// <summary>
    /// One way of handing a message to a provider. Implementations keep their connection between
    /// calls, reopen it when it has dropped, and throw <see cref="Resilience.MailDeliveryException"/>
    /// for every failure except cancellation.
    /// </summary>
    public interface IMailTransport : IDisposable
    {
        /// <summary>A short description for verbose output, e.g. "smtp://mail.example.com:587 (StartTls)". Never a secret.</summary>
        string Description { get; }

        /// <summary>Where the messages go: the target of connectivity probes; null when there is no network (a folder).</summary>
        Endpoint? Endpoint { get; }

        /// <summary>The limit on one attempt.</summary>
        TimeSpan Timeout { get; }

        Task<Receipt> SendAsync(MimeMessage message, SendAttempt attempt, CancellationToken cancellationToken);

        /// <summary>Ends the connection politely (QUIT), if one is open.</summary>
        Task CloseAsync(CancellationToken cancellationToken);
    }

    /// <summary>What a provider says this account may send (SES: GetAccount's SendQuota).</summary>
    public sealed record ProviderQuota(double MaxPerSecond, int MaxPer24Hours, int SentLast24Hours, bool SendingEnabled)
    {
        /// <summary>"Amazon SES account: 14 a second, 50,000 in 24 hours (1,200 sent)".</summary>
        public string Source { get; init; } = "";
    }

    /// <summary>A transport whose provider publishes the account's own sending limits.</summary>
    public interface IPublishesQuota
    {
        Task<ProviderQuota> GetQuotaAsync(CancellationToken cancellationToken);
    }
}
