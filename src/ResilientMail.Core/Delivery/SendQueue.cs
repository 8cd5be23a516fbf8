using System;
using System.Threading;
using System.Threading.Channels;
using System.Threading.Tasks;
using ResilientMail.Core.Messages;

namespace ResilientMail.Core.Delivery
{
    /// <summary>One record on its way through a <see cref="SendQueue"/>: a message to send, or a record that could not become one.</summary>
    public sealed class QueuedMessage
    {
        public QueuedMessage(OutgoingMessage message, string label)
        {
            Message = message;
            Label = label;
            Subject = message.Subject;
        }

        /// <summary>A record refused before sending: nothing is sent for it; it is reported in its turn, among the results.</summary>
        public QueuedMessage(MessageValidationException invalid, string label, string subject)
        {
            Invalid = invalid;
            Label = label;
            Subject = subject;
        }

        public OutgoingMessage? Message { get; }
        public MessageValidationException? Invalid { get; }
        /// <summary>Who it goes to, as shown (the recipients, or what the record said).</summary>
        public string Label { get; }
        public string Subject { get; }
        /// <summary>Set by the queue's sender once the message has its fate; null for an invalid record.</summary>
        public DeliveryResult? Result { get; internal set; }
    }

    /// <summary>
    /// A pipeline's messages, sent in input order over one courier while the next records are read: a small bounded
    /// queue (a queued message holds its attachments) with one sender. The reader adds while there is room and, when it
    /// is full, waits until the sender has taken it down to <see cref="RoomAt"/> (one wake-up per few messages, not one
    /// per message). A failure that stops the run (credentials, certificate, the network gone past the wait limit) ends
    /// the sender; the rest are not sent. Each finished record is handed to <c>finished</c> on the sender's thread, in order.
    /// </summary>
    public sealed class SendQueue
    {
        public const int Capacity = 8, RoomAt = 4;

        private readonly Courier _courier;
        private readonly Action<QueuedMessage> _finished;
        private readonly Action _wake;
        private readonly Action<QueuedMessage>? _starting;
        private readonly Channel<QueuedMessage> _queue = Channel.CreateBounded<QueuedMessage>(new BoundedChannelOptions(Capacity) { SingleReader = true, SingleWriter = true });
        private Task _sender = Task.CompletedTask;
        private int _sent, _failed, _uncertain;
        private QueuedMessage? _stoppedBy;

        /// <param name="finished">Called with each record once its fate is known, in input order, on the sender's thread.</param>
        /// <param name="wake">Called when there is room again, and when the sender ends: the reader may go on.</param>
        public SendQueue(Courier courier, Action<QueuedMessage> finished, Action wake) : this(courier, finished, wake, null) { }

        /// <param name="starting">Called with each message as the sender takes it, before it is sent (what a progress bar names).</param>
        public SendQueue(Courier courier, Action<QueuedMessage> finished, Action wake, Action<QueuedMessage>? starting)
        {
            _starting = starting;
            _courier = courier ?? throw new ArgumentNullException(nameof(courier));
            _finished = finished ?? throw new ArgumentNullException(nameof(finished));
            _wake = wake ?? throw new ArgumentNullException(nameof(wake));
        }

        public void Start(CancellationToken cancellationToken)
        {
            _sender = Task.Run(() => SendAllAsync(cancellationToken));
            _sender.ContinueWith(_ => _wake(), CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
        }

        /// <summary>Takes the record if there is room and the sender still runs.</summary>
        public bool TryAdd(QueuedMessage item) => _queue.Writer.TryWrite(item);

        /// <summary>The reader may add again: the queue is down to <see cref="RoomAt"/>, or the sender has ended.</summary>
        public bool ReadyForMore => _queue.Reader.Count <= RoomAt || _sender.IsCompleted;

        /// <summary>The sender ended (all sent after <see cref="Complete"/>, a failure that stops the run, or cancellation).</summary>
        public Task Completion => _sender;

        /// <summary>The record whose failure stopped the run; null while none has.</summary>
        public QueuedMessage? StoppedBy => Volatile.Read(ref _stoppedBy);

        /// <summary>No more records: the sender ends when it has sent what it holds.</summary>
        public void Complete() => _queue.Writer.TryComplete();

        /// <summary>Counted by the sender as each record ends, so that a summary after Ctrl+C knows what the reader has not shown yet.</summary>
        public int Sent => Volatile.Read(ref _sent);
        public int Failed => Volatile.Read(ref _failed);
        public int Uncertain => Volatile.Read(ref _uncertain);

        private async Task SendAllAsync(CancellationToken cancellationToken)
        {
            var reader = _queue.Reader;
            while (await reader.WaitToReadAsync(cancellationToken).ConfigureAwait(false))
            {
                while (reader.TryRead(out var item))
                {
                    if (reader.Count <= RoomAt) _wake(); // the reader may go on reading input
                    if (item.Message != null)
                    {
                        _starting?.Invoke(item);
                        try { item.Result = await _courier.DeliverAsync(item.Message, cancellationToken).ConfigureAwait(false); }
                        catch (DeliveryCanceledException canceled) when (canceled.MayHaveBeenSent) { Interlocked.Increment(ref _uncertain); throw; }
                    }
                    Count(item.Result);
                    bool stops = item.Result?.Failure?.StopsRun == true;
                    if (stops)
                    {
                        Volatile.Write(ref _stoppedBy, item);
                        _queue.Writer.TryComplete();
                    }
                    _finished(item);
                    if (stops) return;
                }
            }
        }

        private void Count(DeliveryResult? result)
        {
            switch (result?.Status)
            {
                case DeliveryStatus.Sent:
                case DeliveryStatus.PartiallySent:
                    Interlocked.Increment(ref _sent);
                    break;
                case DeliveryStatus.Uncertain:
                    Interlocked.Increment(ref _uncertain);
                    break;
                default:
                    Interlocked.Increment(ref _failed);
                    break;
            }
        }
    }

    /// <summary>
    /// The message template a pipeline's records make: rebuilt only when a bound value changes (-Subject from a column),
    /// reusing the parsed fields that did not (a new -To address on every record).
    /// </summary>
    public sealed class TemplateCache
    {
        private MessageTemplate? _template;
        private MessageSpec? _spec;

        public MessageTemplate For(MessageSpec spec)
        {
            if (_template == null || !Same(spec, _spec!))
            {
                _template = new MessageTemplate(spec, _template);
                _spec = spec;
            }
            return _template;
        }

        private static bool Same(MessageSpec a, MessageSpec b) =>
            a.From == b.From && a.Subject == b.Subject && a.TextBody == b.TextBody && a.HtmlBody == b.HtmlBody && a.Priority == b.Priority &&
            Equals(a.BodyEncoding, b.BodyEncoding) &&
            Equal(a.To, b.To) && Equal(a.Cc, b.Cc) && Equal(a.Bcc, b.Bcc) && Equal(a.ReplyTo, b.ReplyTo) &&
            Equal(a.Attachments, b.Attachments) && Equal(a.Headers, b.Headers);

        private static bool Equal<T>(System.Collections.Generic.IReadOnlyList<T> a, System.Collections.Generic.IReadOnlyList<T> b)
        {
            if (ReferenceEquals(a, b)) return true;
            if (a.Count != b.Count) return false;
            var comparer = System.Collections.Generic.EqualityComparer<T>.Default;
            for (int i = 0; i < a.Count; i++)
                if (!comparer.Equals(a[i], b[i])) return false;
            return true;
        }
    }
}
