using System;
using System.Threading;
using System.Threading.Tasks;
using MimeKit;

namespace ResilientMail.Core.Transports
{
    /// <summary>What the server said when it took a message.</summary>
    public sealed record Receipt(string MessageId, string? ServerReply);

    /// <summary>State of one attempt that the engine reads after a failure.</summary>
    public sealed class SendAttempt
    {
        private int _bodySent;

        /// <summary>The whole message reached the wire: a failure from here on leaves the outcome unknown.</summary>
        public bool BodySent => Volatile.Read(ref _bodySent) == 1;

        public void MarkBodySent() => Volatile.Write(ref _bodySent, 1);
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
}
