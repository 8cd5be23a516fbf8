using System;
using System.Collections.Generic;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using MimeKit;
using Polly;
using Polly.Retry;
using Polly.Timeout;
using ResilientMail.Core.Resilience;
using ResilientMail.Core.Transports;

namespace ResilientMail.Core.Delivery
{
    /// <summary>What became of a message. PartiallySent: some recipients have it, the others were refused or are uncertain.</summary>
    public enum DeliveryStatus { Sent, Failed, Uncertain, PartiallySent }

    /// <summary>The fate of one message.</summary>
    public sealed record DeliveryResult(string Recipients, DeliveryStatus Status, int Attempts, TimeSpan Duration)
    {
        /// <summary>The recipients the server took (every one of them when Sent).</summary>
        public IReadOnlyList<string> Delivered { get; init; } = new string[0];
        /// <summary>Each recipient that did not get the message, with its own failure (Ambiguous: it may have).</summary>
        public IReadOnlyList<RecipientRefusal> Refused { get; init; } = new RecipientRefusal[0];
        public string? MessageId { get; init; }
        public string? ServerReply { get; init; }
        public Failure? Failure { get; init; }
        /// <summary>The classified exception, with the original one as its InnerException.</summary>
        public Exception? Error { get; init; }
    }

    public sealed record CourierOptions
    {
        public RetryOptions Retry { get; init; } = new RetryOptions();
        public ConnectivityOptions Connectivity { get; init; } = new ConnectivityOptions();
        public PacingOptions Pacing { get; init; } = new PacingOptions();
        /// <summary>What to probe; the transport's own endpoint when empty.</summary>
        public IReadOnlyList<Endpoint> ConnectivityTargets { get; init; } = new Endpoint[0];
        /// <summary>
        /// Raise the per-message Attempt and Delivered events. Off when nobody shows or logs them (no -Verbose,
        /// no -LogPath): their text costs more to format than the rest of the courier's own work on a fast link.
        /// Retries, waits and failures are always raised.
        /// </summary>
        public bool ReportEachMessage { get; init; } = true;
        /// <summary>
        /// Asked when the server refuses a new connection (421 at its greeting): true when other connections of the run
        /// are open, so that the message goes back to them at once (<see cref="ConnectionRefusedException"/>) instead of
        /// spending its retries on a connection the server will not give. Null or false: retried as usual.
        /// </summary>
        public Func<bool>? YieldRefusedConnection { get; init; }
        /// <summary>
        /// The run keeps its own pace to the server's (a campaign's <see cref="AdaptivePace"/>): a first attempt refused as
        /// "too fast" without a stated wait (<see cref="FailureReason.Throttled"/>) throws <see cref="PaceRefusedException"/>
        /// instead of spending the message's retries, and the message goes again at the run's slower pace.
        /// </summary>
        public bool YieldThrottled { get; init; }
        /// <summary>
        /// A later try is coming (a campaign defers): a wait the server states in its reply that is longer than what is left
        /// of the quick retries ends them, so that the message is deferred at once to when the server said.
        /// </summary>
        public bool DeferStatedWaits { get; init; }
        /// <summary>At most this many messages per window (a provider's limit, such as Microsoft 365's 30 a minute); null: none.</summary>
        public RateLimit? RateLimit { get; init; }
    }

    /// <summary>The server refused this courier's connection; the message was not tried and belongs to another connection.</summary>
    public sealed class ConnectionRefusedException : Exception
    {
        public ConnectionRefusedException(Failure failure, Exception inner) : base(failure.Message, inner) => Failure = failure;
        public Failure Failure { get; }
    }

    /// <summary>The server refused the message as "too fast" (a rate limit on this client): not tried, it goes again at the run's pace.</summary>
    public sealed class PaceRefusedException : Exception
    {
        public PaceRefusedException(Failure failure, Exception inner) : base(failure.Message, inner) => Failure = failure;
        public Failure Failure { get; }
    }

    /// <summary>
    /// Carries messages through one transport: pacer -> connectivity gate -> retry(timeout(send)).
    /// One courier serves a whole pipeline, so the transport's connection is reused.
    /// </summary>
    public sealed class Courier : IDisposable
    {
        private readonly IMailTransport _transport;
        private readonly CourierOptions _options;
        private readonly TimeProvider _time;
        private readonly Random _random;
        private readonly DeliveryEventSink? _events;
        private readonly ResiliencePipeline<Receipt> _retry;
        private readonly ResiliencePipeline _timeout;
        private readonly DeliveryEventSink? _chatter;
        private readonly string _attemptsText;
        private readonly SlidingWindowLimiter? _limiter;

        /// <summary>On the system clock. (The cmdlets use this one: no third-party type crosses into the cmdlet assembly.)</summary>
        public Courier(IMailTransport transport, CourierOptions options, IConnectivityProbe probe, DeliveryEventSink? events)
            : this(transport, options, probe, TimeProvider.System, new Random(), events) { }

        /// <param name="gate">A connectivity gate shared with other couriers to the same server (a campaign's connections), so that
        /// one outage is one wait; null: this courier's own.</param>
        public Courier(IMailTransport transport, CourierOptions options, IConnectivityProbe probe, TimeProvider time, Random random, DeliveryEventSink? events,
            ConnectivityGate? gate = null)
        {
            _transport = transport ?? throw new ArgumentNullException(nameof(transport));
            _options = options ?? throw new ArgumentNullException(nameof(options));
            _options.Retry.Validate();
            _time = time ?? throw new ArgumentNullException(nameof(time));
            _random = random ?? throw new ArgumentNullException(nameof(random));
            _events = events;
            _chatter = _options.ReportEachMessage ? events : null;
            _attemptsText = $" of {_options.Retry.MaxRetries + 1}).";
            IReadOnlyList<Endpoint> targets = _options.ConnectivityTargets.Count > 0 ? _options.ConnectivityTargets
                : transport.Endpoint != null ? new[] { transport.Endpoint } : new Endpoint[0];
            Gate = gate ?? (targets.Count > 0 ? new ConnectivityGate(probe, targets, _options.Connectivity, time, events) : null);
            Pacer = new Pacer(_options.Pacing, time, random, events);
            if (_options.RateLimit != null) _limiter = new SlidingWindowLimiter(_options.RateLimit, time, events);
            _retry = BuildRetry();
            _timeout = new ResiliencePipelineBuilder { TimeProvider = time }.AddTimeout(transport.Timeout).Build();
        }

        /// <summary>Null for a transport without a network (a pickup folder).</summary>
        public ConnectivityGate? Gate { get; }
        public Pacer Pacer { get; }
        public IMailTransport Transport => _transport;

        public Task<DeliveryResult> DeliverAsync(Messages.OutgoingMessage message, CancellationToken cancellationToken) =>
            DeliverAsync(message.Mime, message.Recipients, null, cancellationToken);

        public Task<DeliveryResult> DeliverAsync(MimeMessage message, CancellationToken cancellationToken) =>
            DeliverAsync(message, Recipients(message), null, cancellationToken);

        /// <summary>
        /// Delivers once <paramref name="handOver"/> has completed (see <see cref="SendAttempt.HandOver"/>). Throws
        /// <see cref="HandOverException"/>, with nothing delivered, when it failed or was late at the point of no return.
        /// </summary>
        public Task<DeliveryResult> DeliverAsync(MimeMessage message, Task handOver, CancellationToken cancellationToken) =>
            DeliverAsync(message, Recipients(message), handOver, cancellationToken);

        private async Task<DeliveryResult> DeliverAsync(MimeMessage message, string recipients, Task? handOver, CancellationToken cancellationToken)
        {
            await Pacer.WaitTurnAsync(cancellationToken).ConfigureAwait(false);
            if (_limiter != null) (await _limiter.WaitAsync(cancellationToken).ConfigureAwait(false)).Started();
            long started = _time.GetTimestamp();
            var fates = new RecipientFates(message);
            int attempts = 0;
            bool mayHaveBeenSent = false;
            try
            {
                var receipt = await _retry.ExecuteAsync(async token =>
                {
                    attempts++;
                    var state = new SendAttempt { Recipients = fates.Remaining(), HandOver = handOver };
                    Receipt? taken = null;
                    Failure? failure = null;
                    try
                    {
                        taken = await AttemptAsync(message, recipients, attempts, state, token).ConfigureAwait(false);
                    }
                    catch (MailDeliveryException ex)
                    {
                        failure = ex.Failure;
                        throw;
                    }
                    finally
                    {
                        mayHaveBeenSent |= state.BodySent || state.Delivered.Count > 0;
                        fates.Record(state, taken != null, failure);
                    }
                    // Some recipients were deferred one by one: only they are tried again.
                    var deferred = fates.Deferred();
                    if (deferred != null) throw new MailDeliveryException(deferred);
                    return taken!;
                }, cancellationToken).ConfigureAwait(false);

                var elapsed = _time.GetElapsedTime(started);
                var result = fates.Result(recipients, attempts, elapsed, receipt, null, null);
                _chatter?.Invoke(new DeliveryEvent(DeliveryEventKind.Delivered,
                    $"Delivered to {(result.Status == DeliveryStatus.Sent ? recipients : fates.DeliveredText())} in {elapsed.TotalMilliseconds:0} ms after {attempts} attempt{(attempts == 1 ? "" : "s")}: {receipt.ServerReply}"));
                if (result.Status != DeliveryStatus.Sent) ReportNotDelivered(result, attempts);
                return result;
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                throw new DeliveryCanceledException(mayHaveBeenSent, cancellationToken);
            }
            catch (MailDeliveryException ex) when (attempts == 1 && Yields(ex.Failure))
            {
                throw new ConnectionRefusedException(ex.Failure, ex); // nothing of the message was tried: not an attempt
            }
            catch (MailDeliveryException ex) when (attempts == 1 && YieldsPace(ex.Failure) && !mayHaveBeenSent && !fates.AnyDelivered)
            {
                throw new PaceRefusedException(ex.Failure, ex); // the client's pace, not the message: not an attempt
            }
            catch (MailDeliveryException ex)
            {
                var elapsed = _time.GetElapsedTime(started);
                var result = fates.Result(recipients, attempts, elapsed, null, ex.Failure, ex);
                ReportNotDelivered(result, attempts);
                return result;
            }
        }

        private void ReportNotDelivered(DeliveryResult result, int attempts)
        {
            var failure = result.Failure!;
            var what = result.Status switch
            {
                DeliveryStatus.Uncertain => "Outcome unknown",
                DeliveryStatus.PartiallySent => $"Delivered to {result.Delivered.Count} of {result.Delivered.Count + result.Refused.Count} recipients; not",
                _ => "Not delivered",
            };
            _events?.Invoke(new DeliveryEvent(DeliveryEventKind.Failed,
                $"{what} to {(result.Refused.Count > 0 ? string.Join(", ", result.Refused.Select(r => r.Address)) : result.Recipients)} after {attempts} attempt{(attempts == 1 ? "" : "s")} ({failure.Kind}, {failure.Reason}): {failure.Message}"));
        }

        private async ValueTask<Receipt> AttemptAsync(MimeMessage message, string recipients, int attempt, SendAttempt state, CancellationToken cancellationToken)
        {
            try
            {
                if (Gate != null) await Gate.EnsureAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (ConnectivityLostException lost)
            {
                throw new MailDeliveryException(new Failure(FailureKind.Transient, FailureReason.ConnectivityLost, lost.Message) { Remedy = Remedy.WaitLonger }, lost);
            }

            // A transport without a point of no return of its own gets the message only once its hand-over is durable.
            if (state.HandOver != null && !(_transport is IWaitsForHandOver))
            {
                try { await state.HandOver.ConfigureAwait(false); }
                catch (Exception ex) when (!(ex is OperationCanceledException)) { throw new HandOverException(ex); }
            }
            _chatter?.Invoke(new DeliveryEvent(DeliveryEventKind.Attempt,
                $"Sending to {recipients} via {_transport.Description} (attempt {attempt}{_attemptsText}"));
            try
            {
                var receipt = await _timeout.ExecuteAsync(token => new ValueTask<Receipt>(_transport.SendAsync(message, state, token)), cancellationToken).ConfigureAwait(false);
                Gate?.ReportSuccess();
                return receipt;
            }
            catch (TimeoutRejectedException timeout)
            {
                var failure = state.BodySent
                    ? new Failure(FailureKind.Ambiguous, FailureReason.Timeout, $"No reply within {_transport.Timeout.TotalSeconds:0.#} s after the whole message was sent; it may have been delivered.")
                    : new Failure(FailureKind.Transient, FailureReason.Timeout, $"No answer from {_transport.Endpoint} within {_transport.Timeout.TotalSeconds:0.#} s.");
                Gate?.ReportFailure(failure);
                throw new MailDeliveryException(failure, timeout);
            }
            catch (MailDeliveryException ex)
            {
                Gate?.ReportFailure(ex.Failure);
                throw;
            }
        }

        private ResiliencePipeline<Receipt> BuildRetry()
        {
            var retry = _options.Retry;
            var builder = new ResiliencePipelineBuilder<Receipt> { TimeProvider = _time };
            if (retry.MaxRetries > 0)
            {
                builder.AddRetry(new RetryStrategyOptions<Receipt>
                {
                    MaxRetryAttempts = retry.MaxRetries,
                    ShouldHandle = args => new ValueTask<bool>(args.Outcome.Exception is MailDeliveryException m && ShouldRetry(m.Failure, retry) && !(args.AttemptNumber == 0 && (Yields(m.Failure) || YieldsPace(m.Failure)))
                        && !WaitsLongerThanRetries(m.Failure, args.AttemptNumber)),
                    DelayGenerator = args => new ValueTask<TimeSpan?>(DelayFor(args.AttemptNumber, (args.Outcome.Exception as MailDeliveryException)?.Failure)),
                    OnRetry = args =>
                    {
                        var failure = (args.Outcome.Exception as MailDeliveryException)?.Failure;
                        _events?.Invoke(new DeliveryEvent(DeliveryEventKind.Retry,
                            $"Attempt {args.AttemptNumber + 1} failed ({failure?.Kind}, {failure?.Reason}): {args.Outcome.Exception?.Message} Retrying in {args.RetryDelay.TotalSeconds:0.0} s (retry {args.AttemptNumber + 1} of {retry.MaxRetries}).")
                        {
                            Limit = args.RetryDelay,
                            Reason = failure?.Reason,
                        });
                        return default;
                    },
                });
            }
            return builder.Build();
        }

        private bool YieldsPace(Failure failure) => _options.YieldThrottled && failure.Reason == FailureReason.Throttled && failure.RetryAfter == null && !failure.RefusedConnection;

        /// <summary>The server stated a wait longer than the quick retries left would take: they cannot succeed, a deferral can.</summary>
        private bool WaitsLongerThanRetries(Failure failure, int retry)
        {
            // A throttle's wait is the account's, not the message's: the run holds for it (a campaign's hold), then retries.
            if (!_options.DeferStatedWaits || failure.Reason == FailureReason.Throttled || !(failure.RetryAfter is TimeSpan stated)) return false;
            var left = TimeSpan.Zero;
            for (int r = retry; r < _options.Retry.MaxRetries; r++) left += _options.Retry.NominalDelay(r);
            return stated > left;
        }

        private bool Yields(Failure failure) => failure.RefusedConnection && _options.YieldRefusedConnection?.Invoke() == true;

        internal static bool ShouldRetry(Failure failure, RetryOptions retry) =>
            !failure.StopsRun && (failure.Kind == FailureKind.Transient || failure.Kind == FailureKind.Ambiguous && retry.RetryAmbiguous);

        /// <summary>Exponential with jitter, capped; a provider's Retry-After wins (still capped).</summary>
        internal TimeSpan DelayFor(int retry, Failure? failure) => RetrySchedule.Delay(_options.Retry, retry, failure?.RetryAfter, NextRandom());

        private double NextRandom()
        {
            lock (_random) return _random.NextDouble();
        }

        public Task CloseAsync(CancellationToken cancellationToken) => _transport.CloseAsync(cancellationToken);

        public void Dispose() => _transport.Dispose();

        public static string Recipients(MimeMessage message) =>
            string.Join(", ", message.To.Mailboxes.Concat(message.Cc.Mailboxes).Concat(message.Bcc.Mailboxes).Select(m => m.Address));
    }

    /// <summary>A send stopped by the caller. When <see cref="MayHaveBeenSent"/> is false, none of it left: it is safe to send again.</summary>
    public sealed class DeliveryCanceledException : OperationCanceledException
    {
        public DeliveryCanceledException(bool mayHaveBeenSent, CancellationToken token)
            : base(mayHaveBeenSent ? "Cancelled after the whole message was sent; it may have been delivered." : "Cancelled before the message was sent.", token)
        {
            MayHaveBeenSent = mayHaveBeenSent;
        }

        public bool MayHaveBeenSent { get; }
    }

    public static class RetrySchedule
    {
        /// <summary>The delay before retry <paramref name="retry"/> (0-based), given a uniform random number in [0, 1).</summary>
        public static TimeSpan Delay(RetryOptions options, int retry, TimeSpan? retryAfter, double random)
        {
            TimeSpan delay;
            if (retryAfter.HasValue && retryAfter.Value > TimeSpan.Zero)
            {
                delay = retryAfter.Value;
            }
            else
            {
                var nominal = options.NominalDelay(retry);
                var factor = 1 + options.JitterFraction * (2 * random - 1);
                delay = TimeSpan.FromTicks((long)(nominal.Ticks * factor));
            }
            return delay > options.MaxDelay ? options.MaxDelay : delay;
        }
    }
}
