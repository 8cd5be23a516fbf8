using System;
using System.Collections.Generic;
using System.Threading;
using System.Threading.Tasks;
using ResilientMail.Core.Delivery;

namespace ResilientMail.Core.Resilience
{
    /// <summary>
    /// The pace of a campaign whose server publishes no limit, found the way an MTA finds a destination's.
    /// <list type="bullet">
    /// <item>Nothing holds the run until the server first says "too fast" (a 4xx rate-limit reply, a 421 in the session).</item>
    /// <item>Then every connection holds and one message at a time asks again: after 0.25 s, then every fifth of the time held
    /// so far, at most every 5 s, until the server takes one.</item>
    /// <item>What the server allowed is learned as "N messages in a window": N is what it took before it said so, the window
    /// runs from the first of them to the moment the server's window ended (between the last refused ask and the taken one).
    /// From then on at most N messages start in any such window (a sliding window, so a server's own window, fixed or
    /// sliding, is never overfilled, and a full window's worth can still go at once, as the server allows).</item>
    /// <item>The window is known to lie between the time to the first refused ask and the time to the taken one. The pace
    /// starts at the longer, and halves the gap while the server takes each window's worth (a refusal raises the lower
    /// bound instead), until the bounds are within 2%. Settled, it keeps 1% above the longer bound; after twenty clean windows the lower bound is lowered by 5% and
    /// searched again, so that a limit raised is found. Three refusals in a row hold and ask again.</item>
    /// </list>
    /// Messages refused as "too fast" are not failed: each goes again at its turn.
    /// </summary>
    public sealed class AdaptivePace
    {
        /// <summary>The search for the window stops when its bounds are this close (a share of the window).</summary>
        internal const double Precision = 0.02;
        /// <summary>After this many clean windows at the settled pace, the lower bound is forgotten a little and searched again.</summary>
        internal const int WindowsBeforeFaster = 20;
        internal static readonly TimeSpan FirstProbe = TimeSpan.FromMilliseconds(250);
        internal static readonly TimeSpan MaxProbeGap = TimeSpan.FromSeconds(5);
        private static readonly TimeSpan ShortestWindow = TimeSpan.FromMilliseconds(10);
        private static readonly TimeSpan LongestWindow = TimeSpan.FromHours(1);

        private readonly TimeProvider _time;
        private readonly DeliveryEventSink? _events;
        private readonly object _lock = new object();
        private readonly List<long> _starts = new List<long>(); // start times within the learned window, oldest first

        private int _count;                   // N: messages per window; 0 while the server never said "too fast"
        private long _window;                 // the window kept to, in timestamp ticks
        private long _low, _high;             // what the window is known to be between (searched by halving)
        private long _epochStart;             // the first message taken since the last time the server took one again
        private int _takenInEpoch;
        private bool _holding;
        private long _holdSince;
        private long _lastRefused;            // while holding: the last refused ask
        private long _nextProbe;
        private bool _probeOut;               // while holding, one message is on its way to ask
        private int _slowedInARow;
        private long _slowedAt = long.MinValue;
        private int _takenSinceChange;
        private int _cleanWindows;
        private bool _settled;
        private bool _warned;
        private string? _lastReply;

        public AdaptivePace(TimeProvider time, DeliveryEventSink? events = null)
        {
            _time = time ?? throw new ArgumentNullException(nameof(time));
            _events = events;
        }

        /// <summary>Messages a second the pace keeps to on average; null while the server has never said "too fast".</summary>
        public double? Rate { get { lock (_lock) return _count > 0 ? _count / Seconds(_window) : (double?)null; } }

        /// <summary>How long the server has taken nothing, while holding.</summary>
        public TimeSpan HeldFor
        {
            get
            {
                long now = _time.GetTimestamp();
                lock (_lock) return _holding ? TimeSpan.FromSeconds(Seconds(now - _holdSince)) : TimeSpan.Zero;
            }
        }

        /// <summary>"20 messages in 1.1 s (18.2 a second)", what the run settled on; null while unlimited.</summary>
        public string? Settled
        {
            get
            {
                lock (_lock)
                {
                    if (_count == 0) return null;
                    double seconds = Seconds(_window);
                    return $"{_count} message{(_count == 1 ? "" : "s")} in {Window(seconds)} ({Describe(_count / seconds)})";
                }
            }
        }

        /// <summary>The server's last "too fast" reply.</summary>
        public string? LastReply { get { lock (_lock) return _lastReply; } }

        private static string Window(double seconds) => seconds >= 120 ? $"{seconds / 60:0.#} min" : $"{seconds:0.##} s";

        public static string Describe(double perSecond) =>
            perSecond >= 1 ? $"{perSecond:0.#} a second" : perSecond * 60 >= 1 ? $"{perSecond * 60:0.#} a minute" : $"{perSecond * 3600:0.#} an hour";

        /// <summary>
        /// Waits until the next message may start (the check and the start are one step: callers may wait at once). Returns the message's ticket (when it started),
        /// to be given back with what became of it: only a message that started after the hold began can end it.
        /// </summary>
        public async Task<long> WaitTurnAsync(CancellationToken cancellationToken)
        {
            while (true)
                {
                    long wait;
                    long now = _time.GetTimestamp(); // read outside the lock: a clock may call back into this one under its own
                    lock (_lock)
                    {
                        if (_count == 0 && !_holding) return now;
                        if (_holding)
                        {
                            if (!_probeOut && now >= _nextProbe) { _probeOut = true; Started(now); return now; }
                            wait = _probeOut ? Ticks(0.05) : _nextProbe - now; // while a probe is out, its answer decides
                        }
                        else
                        {
                            int gone = 0;
                            while (gone < _starts.Count && now - _starts[gone] >= _window) gone++;
                            if (gone > 0) _starts.RemoveRange(0, gone);
                            if (_starts.Count < _count) { Started(now); return now; }
                            wait = _starts[0] + _window - now;
                        }
                    }
                    // At least a millisecond: a wait of a few ticks would spin.
                    await _time.Delay(TimeSpan.FromTicks(Math.Max(TimeSpan.TicksPerMillisecond, (long)(wait * (double)TimeSpan.TicksPerSecond / _time.TimestampFrequency))),
                        cancellationToken).ConfigureAwait(false);
            }
        }

        private void Started(long now)
        {
            _starts.Add(now);
            if (_starts.Count > Math.Max(1, _count)) _starts.RemoveRange(0, _starts.Count - Math.Max(1, _count));
        }

        /// <summary>The server took the message of this ticket.</summary>
        public void Taken(long ticket)
        {
            string? learned = null;
            long now = _time.GetTimestamp();
            lock (_lock)
            {
                if (_holding && ticket < _holdSince)
                {
                    _takenInEpoch++; // on its way before the hold: taken in the window that was ending
                }
                else if (_holding)
                {
                    bool first = _count == 0;
                    if (first)
                    {
                        // The server's window is over: it allowed what it took, from the first of them until its window ended
                        // (somewhere between when the last refused ask and this one were made: the middle). Times are when the
                        // messages started, not when their answers came: a server may hold a refusal back (Postfix's
                        // smtpd_error_sleep_time, 1 s).
                        _count = Math.Max(1, _takenInEpoch);
                        _low = Clamp(_lastRefused - _epochStart);
                        _high = Math.Max(_low, Clamp(ticket - _epochStart));
                        _window = _high; // safe: then halved toward the lower bound while the server takes every window
                    }
                    _holding = false;
                    _probeOut = false;
                    _epochStart = ticket;
                    _takenInEpoch = 1;
                    _takenSinceChange = 0;
                    _slowedInARow = 0;
                    learned = first
                        ? $"The server took a message again after {Seconds(now - _holdSince):0.#} s; keeping to what it allowed: {Settled}."
                        : $"The server took a message again after {Seconds(now - _holdSince):0.#} s; keeping to {Settled}.";
                }
                else
                {
                    if (_takenInEpoch == 0) _epochStart = ticket;
                    _takenInEpoch++;
                    _slowedInARow = 0;
                    if (_count > 0 && ++_takenSinceChange >= _count)
                    {
                        // A whole window's worth taken at this pace: the window is at most this long.
                        _takenSinceChange = 0;
                        if (!_settled)
                        {
                            _high = Math.Min(_high, _window);
                            if (_high - _low > Precision * _high) _window = Clamp(_low + (_high - _low) / 2);
                            else Settle();
                        }
                        else if (++_cleanWindows >= WindowsBeforeFaster)
                        {
                            // Settled for a while: look for a limit raised meanwhile, a little below what is known.
                            _cleanWindows = 0;
                            _settled = false;
                            _low = Clamp((long)(_low * 0.95));
                            _window = Clamp(_low + (_high - _low) / 2);
                        }
                    }
                }
            }
            if (learned != null) _events?.Invoke(new DeliveryEvent(DeliveryEventKind.RateLimit, learned));
        }

        /// <summary>The server said "too fast" to the message of this ticket (which goes again at its turn, not as a failed attempt).</summary>
        public void Refused(long ticket, Failure failure)
        {
            string? warning = null;
            long now = _time.GetTimestamp();
            lock (_lock)
            {
                _lastReply = failure.ServerReply ?? failure.Message;
                _starts.Remove(ticket); // a message the server did not take does not fill the window
                if (ticket < _holdSince && _holding || ticket < _slowedAt && _count > 0)
                {
                    // On its way before the hold or the last slow-down began: that one already answered it.
                }
                else if (_holding)
                {
                    // The ask was refused too: the server's window is not over yet.
                    _probeOut = false;
                    _lastRefused = ticket;
                    _nextProbe = now + Ticks(ProbeGap(TimeSpan.FromSeconds(Seconds(now - _holdSince))).TotalSeconds);
                }
                else if (_count > 0 && ++_slowedInARow < 3)
                {
                    // At the learned pace: a little slower, and go on.
                    // The window is longer than this: back to between it and what is known to work.
                    _low = Math.Max(_low, _window);
                    if (_high <= _low) _high = Clamp((long)(_low * 1.25)); // the server's limit was lowered
                    _settled = false;
                    _window = Clamp(_low + (_high - _low) / 2);
                    if (_high - _low <= Precision * _high) Settle();
                    _cleanWindows = 0;
                    _slowedAt = now;
                    _takenSinceChange = 0;
                }
                else
                {
                    // The first "too fast", or three in a row at the learned pace: hold, and ask until the server takes one.
                    // (the window was widened at each of the refusals before)
                    _holding = true;
                    _holdSince = now;
                    _slowedAt = now;
                    _probeOut = false;
                    _lastRefused = ticket;
                    _nextProbe = now + Ticks(FirstProbe.TotalSeconds);
                    if (!_warned)
                    {
                        _warned = true;
                        warning = $"The server limits how fast this client may send ({_lastReply}): every connection holds, and one message at a time asks " +
                                  "again until it is taken; then the campaign keeps to the pace the server allowed. No message is failed by it.";
                    }
                }
            }
            if (warning != null) _events?.Invoke(new DeliveryEvent(DeliveryEventKind.Warning, warning));
        }

        /// <summary>A message of this ticket ended some other way (failed, cancelled): if it was the one asking, another may.</summary>
        public void Released(long ticket)
        {
            lock (_lock) if (_holding && ticket >= _holdSince) _probeOut = false;
        }

        /// <summary>
        /// The bounds are within <see cref="Precision"/>: keep to the longer one and 1% more, for the difference between when
        /// a message starts here and when the server counts it.
        /// </summary>
        private void Settle()
        {
            _settled = true;
            _cleanWindows = 0;
            _window = Clamp((long)(_high * 1.01));
        }

        /// <summary>The wait before the next ask, after holding this long: a fifth of it, 0.25 s to 5 s.</summary>
        internal static TimeSpan ProbeGap(TimeSpan held)
        {
            var gap = TimeSpan.FromTicks(held.Ticks / 5);
            return gap < FirstProbe ? FirstProbe : gap > MaxProbeGap ? MaxProbeGap : gap;
        }

        private long Clamp(long window) => Math.Min(Ticks(LongestWindow.TotalSeconds), Math.Max(Ticks(ShortestWindow.TotalSeconds), window));

        private double Seconds(long ticks) => (double)ticks / _time.TimestampFrequency;

        private long Ticks(double seconds) => (long)(seconds * _time.TimestampFrequency);
    }
}
