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

        /// <summary>
        /// The message may reach its recipients only once this has completed (a campaign's hand-over record, durable in
        /// its journal's store). A transport that can (SMTP) waits for it at its point of no return, so that the store
        /// works while the envelope is on the wire; the engine waits for it before any other transport.
        /// </summary>
        public Task? HandOver { get; set; }

        /// <summary>How long a transport waits for <see cref="HandOver"/> at its point of no return before it gives the attempt back.</summary>
        internal static TimeSpan HandOverPatience = TimeSpan.FromSeconds(2);

        /// <summary>
        /// At the point of no return: returns once <see cref="HandOver"/> has completed. Throws <see cref="HandOverException"/>
        /// when it failed (the message must not go), or when it is still running after <see cref="HandOverPatience"/>: the
        /// store is slow or out, and waiting for it with a transaction open would spend the server's patience and the
        /// attempt's timeout; the caller waits for it with the store's own rules and tries again.
        /// </summary>
        public void WaitForHandOver(CancellationToken cancellationToken)
        {
            var handOver = HandOver;
            if (handOver == null) return;
            if (handOver.IsCompleted)
            {
                if (handOver.IsFaulted || handOver.IsCanceled) throw new HandOverException(handOver.Exception?.InnerException ?? new OperationCanceledException());
                return; // the usual case: durable already, or a file journal's, which needs no wait
            }
            Interlocked.Increment(ref _waiting);
            try
            {
                if (!handOver.Wait((int)HandOverPatience.TotalMilliseconds, cancellationToken)) throw new HandOverException(null);
            }
            catch (AggregateException failed)
            {
                throw new HandOverException(failed.InnerException ?? failed);
            }
            finally
            {
                Interlocked.Decrement(ref _waiting);
            }
        }

        private static int _waiting;
        /// <summary>Transactions waiting at their point of no return right now (for tests to see the wait, not to time it).</summary>
        internal static int WaitingForHandOver => Volatile.Read(ref _waiting);
    }

    /// <summary>
    /// A message stopped before its point of no return because its hand-over record is not durable: it failed
    /// (<see cref="Exception.InnerException"/>: the store's error), or is late (no inner exception). Nothing of the
    /// message was delivered, and it is not a failure of the message or of its server.
    /// </summary>
    public sealed class HandOverException : Exception
    {
        public HandOverException(Exception? failure)
            : base(failure == null ? "The message's hand-over record is not durable yet." : "The message's hand-over record could not be made durable: " + failure.Message, failure) { }

        public bool Late => InnerException == null;
    }

    /// <summary>A transport that waits for <see cref="SendAttempt.HandOver"/> itself, at its own point of no return.</summary>
    public interface IWaitsForHandOver { }

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
