using System;
using System.Collections.Generic;
using System.Globalization;
using System.Text.RegularExpressions;
using System.Threading;
using System.Threading.Tasks;
using ResilientMail.Core.Delivery;

namespace ResilientMail.Core.Resilience
{
    /// <summary>At most <see cref="Count"/> messages in any <see cref="Window"/>.</summary>
    public sealed record RateLimit(int Count, TimeSpan Window)
    {
        private static readonly Regex Form = new Regex(@"^\s*(\d+)\s*(?:/|per\s+)\s*(\d*)\s*(s|sec|second|seconds|m|min|minute|minutes|h|hr|hour|hours|d|day|days)\s*$",
            RegexOptions.IgnoreCase | RegexOptions.CultureInvariant);

        /// <summary>Parses "50/second", "100/min", "1000/hour", "10000/day", "30/10s" or "5 per minute".</summary>
        public static RateLimit Parse(string text)
        {
            var m = Form.Match(text ?? "");
            if (!m.Success) throw new FormatException($"'{text}' is not a rate; write it as 50/second, 100/minute, 1000/hour or 10000/day.");
            int count = int.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture);
            int units = m.Groups[2].Value.Length > 0 ? int.Parse(m.Groups[2].Value, CultureInfo.InvariantCulture) : 1;
            if (count < 1 || units < 1) throw new FormatException($"'{text}' must allow at least one message.");
            var unit = char.ToLowerInvariant(m.Groups[3].Value[0]) switch
            {
                's' => TimeSpan.FromSeconds(1),
                'm' => TimeSpan.FromMinutes(1),
                'h' => TimeSpan.FromHours(1),
                _ => TimeSpan.FromDays(1),
            };
            return new RateLimit(count, TimeSpan.FromTicks(unit.Ticks * units));
        }

        public override string ToString() => $"{Count} per {(Window.TotalSeconds < 120 ? $"{Window.TotalSeconds:0.#} s" : Window.TotalHours < 2 ? $"{Window.TotalMinutes:0.#} min" : $"{Window.TotalHours:0.#} h")}";
    }

    /// <summary>
    /// A sliding-window log: a message may start only when fewer than Count started in the last Window.
    /// Unlike a token bucket with a burst allowance, it can never exceed the limit in any window, and it
    /// still lets a full window's worth through at once, so the achieved rate reaches the limit.
    /// </summary>
    public sealed class SlidingWindowLimiter
    {
        private readonly RateLimit _limit;
        private readonly TimeProvider _time;
        private readonly DeliveryEventSink? _events;
        private readonly Queue<Reservation> _starts = new Queue<Reservation>();
        private readonly SemaphoreSlim _turn = new SemaphoreSlim(1, 1);

        public SlidingWindowLimiter(RateLimit limit, TimeProvider time, DeliveryEventSink? events = null)
        {
            _limit = limit ?? throw new ArgumentNullException(nameof(limit));
            _time = time ?? throw new ArgumentNullException(nameof(time));
            _events = events;
        }

        public RateLimit Limit => _limit;

        /// <summary>
        /// One permit. Its time is first the moment it was granted; <see cref="Started"/> moves it to the moment
        /// the message really left, so the limit holds for actual send times, not only for grants.
        /// </summary>
        public sealed class Reservation
        {
            private readonly TimeProvider _time;
            internal Reservation(TimeProvider time) { _time = time; Time = time.GetTimestamp(); }
            internal long Time;
            public void Started() => Interlocked.Exchange(ref Time, Math.Max(Interlocked.Read(ref Time), _time.GetTimestamp()));

            /// <summary>
            /// The message is on its way: its place in the window is held until <see cref="Done"/>, which counts it from when
            /// its answer came. The provider saw it somewhere between the two, so whatever the delay on the way (a first
            /// connection, a signature, a slow hop), no window the provider measures holds more than the limit.
            /// </summary>
            public void InFlight() => Interlocked.Exchange(ref Time, long.MaxValue);

            /// <summary>The answer came (or the attempt ended): the message counts from now.</summary>
            public void Done()
            {
                if (Interlocked.Read(ref Time) == long.MaxValue) Interlocked.Exchange(ref Time, _time.GetTimestamp());
            }
        }

        public async Task<Reservation> WaitAsync(CancellationToken cancellationToken)
        {
            await _turn.WaitAsync(cancellationToken).ConfigureAwait(false);
            try
            {
                while (true)
                {
                    long now = _time.GetTimestamp();
                    long window = (long)(_limit.Window.TotalSeconds * _time.TimestampFrequency);
                    while (_starts.Count > 0 && now - Interlocked.Read(ref _starts.Peek().Time) >= window) _starts.Dequeue();
                    if (_starts.Count < _limit.Count)
                    {
                        var granted = new Reservation(_time);
                        _starts.Enqueue(granted);
                        return granted;
                    }
                    long oldest = Interlocked.Read(ref _starts.Peek().Time);
                    // The oldest is still on its way: its place frees once it is answered, and then a window later.
                    var wait = oldest == long.MaxValue ? TimeSpan.FromMilliseconds(10)
                        : TimeSpan.FromSeconds((double)(oldest + window - now) / _time.TimestampFrequency);
                    _events?.Invoke(new DeliveryEvent(DeliveryEventKind.RateLimit, $"Rate limit {_limit}: waiting {wait.TotalSeconds:0.###} s.") { Elapsed = TimeSpan.Zero, Limit = wait });
                    await _time.Delay(wait, cancellationToken).ConfigureAwait(false);
                }
            }
            finally
            {
                _turn.Release();
            }
        }
    }
}
