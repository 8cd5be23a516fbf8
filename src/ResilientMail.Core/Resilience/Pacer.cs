using System;
using System.Threading;
using System.Threading.Tasks;
using ResilientMail.Core.Delivery;

namespace ResilientMail.Core.Resilience
{
    /// <summary>Spaces messages out: a random gap between two, a longer pause after every batch.</summary>
    public sealed class Pacer
    {
        private readonly PacingOptions _options;
        private readonly TimeProvider _time;
        private readonly Random _random;
        private readonly DeliveryEventSink? _events;
        private readonly object _gate = new object();
        private long _handed;

        public Pacer(PacingOptions options, TimeProvider time, Random random, DeliveryEventSink? events = null)
        {
            _options = (options ?? throw new ArgumentNullException(nameof(options))).Validate();
            _time = time ?? throw new ArgumentNullException(nameof(time));
            _random = random ?? throw new ArgumentNullException(nameof(random));
            _events = events;
        }

        /// <summary>How many messages have been handed on so far.</summary>
        public long Count => Interlocked.Read(ref _handed);

        /// <summary>The wait owed before the next message, given how many went before it.</summary>
        public TimeSpan NextWait(out bool batchPause)
        {
            long n = Count;
            batchPause = false;
            if (n == 0 || _options.IsOff) return TimeSpan.Zero;
            if (_options.BatchSize > 0 && _options.BatchPause > TimeSpan.Zero && n % _options.BatchSize == 0)
            {
                batchPause = true;
                return _options.BatchPause;
            }
            double r;
            lock (_gate) r = _random.NextDouble();
            var span = _options.MaxGap - _options.MinGap;
            return _options.MinGap + TimeSpan.FromTicks((long)(span.Ticks * r));
        }

        /// <summary>Waits the gap (or batch pause) owed before the next message, then counts it.</summary>
        public async Task WaitTurnAsync(CancellationToken cancellationToken)
        {
            var wait = NextWait(out bool batchPause);
            if (wait > TimeSpan.Zero)
            {
                _events?.Invoke(new DeliveryEvent(batchPause ? DeliveryEventKind.Pause : DeliveryEventKind.Gap, batchPause
                    ? $"Pausing between batches ({Waits.Format(wait)}) after {Count} messages."
                    : $"Waiting {wait.TotalSeconds:0.0} s before the next message.")
                { Elapsed = TimeSpan.Zero, Limit = wait });
                await _time.Delay(wait, cancellationToken).ConfigureAwait(false);
            }
            Interlocked.Increment(ref _handed);
        }
    }
}
