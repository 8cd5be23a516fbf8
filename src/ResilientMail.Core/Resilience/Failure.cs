using System;

namespace ResilientMail.Core.Resilience
{
    /// <summary>What a failure means for the next step.</summary>
    public enum FailureKind
    {
        /// <summary>Worth retrying: the server or the network may do better soon.</summary>
        Transient,
        /// <summary>Retrying will not help; the reason says why.</summary>
        Permanent,
        /// <summary>The connection died after the whole message was sent and before the reply: it may have been delivered.</summary>
        Ambiguous,
    }

    /// <summary>Why, in the mail domain. Cmdlets turn this into an ErrorId and category.</summary>
    public enum FailureReason
    {
        Network,
        Timeout,
        ServerBusy,
        Rejected,
        RecipientRejected,
        SenderRejected,
        Authentication,
        Certificate,
        Protocol,
        ConnectivityLost,
        ProviderSuspended,
        Throttled,
        /// <summary>The message is larger than the server or provider takes.</summary>
        MessageTooLarge,
    }

    public sealed record Failure(FailureKind Kind, FailureReason Reason, string Message)
    {
        /// <summary>The server's own reply (code and text) where there was one.</summary>
        public string? ServerReply { get; init; }
        public int? StatusCode { get; init; }
        /// <summary>When the provider said how long to wait before trying again.</summary>
        public TimeSpan? RetryAfter { get; init; }
        /// <summary>The recipients the server refused, one by one, when that is what failed (RCPT TO).</summary>
        public System.Collections.Generic.IReadOnlyList<RecipientRefusal>? Refused { get; init; }
        /// <summary>No later message can succeed either (bad credentials, suspended account).</summary>
        public bool StopsRun => Reason == FailureReason.Authentication || Reason == FailureReason.Certificate || Reason == FailureReason.ProviderSuspended || Reason == FailureReason.ConnectivityLost;
        /// <summary>The failure says the network path may be gone: check connectivity before the next attempt.</summary>
        public bool SuggestsOutage => Reason == FailureReason.Network || Reason == FailureReason.Timeout;
    }

    /// <summary>One envelope recipient the server (or the transport, for an address it cannot carry) would not take.</summary>
    public sealed record RecipientRefusal(string Address, Failure Failure);

    /// <summary>A classified failure of one delivery attempt; the original exception is kept as InnerException.</summary>
    public sealed class MailDeliveryException : Exception
    {
        public MailDeliveryException(Failure failure, Exception? inner = null) : base(failure.Message, inner)
        {
            Failure = failure;
        }

        public Failure Failure { get; }
    }
}
