using System;
using System.Collections.Generic;

namespace ResilientMail.Core.Resilience
{
    /// <summary>
    /// A provider's cap on recipients in a rolling 24 hours (Exchange Online: 10,000 per mailbox). A message takes its
    /// recipients from the quota before it is sent; when they do not fit, the caller pauses rather than send one that
    /// the provider would refuse (and count against the mailbox), and learns when enough of the window has passed.
    /// </summary>
    public sealed class RecipientQuota
    {
        public static readonly TimeSpan Window = TimeSpan.FromHours(24);
        private readonly TimeProvider _time;
        private readonly Queue<(DateTimeOffset At, int Count)> _sent = new Queue<(DateTimeOffset, int)>();
        private readonly object _gate = new object();
        private int _used;

        /// <param name="earlier">Sends already made in the window (a resumed campaign's journal), each with its recipients.</param>
        public RecipientQuota(int perDay, TimeProvider time, IEnumerable<(DateTimeOffset At, int Count)>? earlier = null)
        {
            if (perDay < 1) throw new ArgumentOutOfRangeException(nameof(perDay), perDay, "The daily limit must allow at least one recipient.");
            PerDay = perDay;
            _time = time ?? throw new ArgumentNullException(nameof(time));
            if (earlier != null) foreach (var e in earlier) { _sent.Enqueue(e); _used += e.Count; }
        }

        public int PerDay { get; }

        /// <summary>Recipients counted in the last 24 hours.</summary>
        public int Used { get { lock (_gate) { Expire(_time.GetUtcNow()); return _used; } } }

        /// <summary>Takes <paramref name="recipients"/> when they fit; else false and the moment they will (at the latest 24 h from now).</summary>
        public bool TryTake(int recipients, out DateTimeOffset fitsAt)
        {
            var now = _time.GetUtcNow();
            lock (_gate)
            {
                Expire(now);
                if (_used + recipients <= PerDay)
                {
                    _sent.Enqueue((now, recipients));
                    _used += recipients;
                    fitsAt = now;
                    return true;
                }
                // The earliest moment enough of the oldest sends have left the window.
                int free = PerDay - _used;
                fitsAt = now + Window;
                foreach (var (at, count) in _sent)
                {
                    free += count;
                    if (free >= recipients) { fitsAt = at + Window; break; }
                }
                return false;
            }
        }

        private void Expire(DateTimeOffset now)
        {
            while (_sent.Count > 0 && _sent.Peek().At <= now - Window) _used -= _sent.Dequeue().Count;
        }
    }
}
