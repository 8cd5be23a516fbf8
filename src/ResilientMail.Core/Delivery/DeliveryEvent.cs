using System;

namespace ResilientMail.Core.Delivery
{
    public enum DeliveryEventKind
    {
        Attempt,
        Retry,
        Connect,
        Reconnect,
        Probe,
        WaitingForConnection,
        StillWaiting,
        ConnectionRestored,
        Gap,
        RateLimit,
        Pause,
        Delivered,
        Failed,
        /// <summary>Something the user asked for that cannot be done here, while sending goes on (a server without DSN).</summary>
        Warning,
    }

    /// <summary>Something a user may want to see. <see cref="Text"/> never holds a secret.</summary>
    public sealed record DeliveryEvent(DeliveryEventKind Kind, string Text)
    {
        /// <summary>For waits and pauses: how long so far, and how long at most.</summary>
        public TimeSpan? Elapsed { get; init; }
        public TimeSpan? Limit { get; init; }
        /// <summary>For retries: why the last attempt failed.</summary>
        public Resilience.FailureReason? Reason { get; init; }
    }

    /// <summary>Receives engine events; called from the engine's threads.</summary>
    public delegate void DeliveryEventSink(DeliveryEvent e);
}
