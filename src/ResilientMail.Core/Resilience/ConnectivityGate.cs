using System;
using System.Collections.Generic;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using ResilientMail.Core.Delivery;
using ResilientMail.Core.Transports;

namespace ResilientMail.Core.Resilience
{
    /// <summary>The network stayed gone for longer than the wait limit.</summary>
    public sealed class ConnectivityLostException : Exception
    {
        public ConnectivityLostException(IReadOnlyList<Endpoint> targets, TimeSpan waited, string? lastError)
            : base($"No connection to {string.Join(", ", targets)} after waiting {Waits.Format(waited)}." +
                   (lastError != null ? $" Last probe: {lastError}" : "") +
                   " Check that the server is running and the address and port are right, and the network path (VPN, firewall, proxy).")
        {
            Targets = targets;
            Waited = waited;
            LastError = lastError;
        }

        public IReadOnlyList<Endpoint> Targets { get; }
        public TimeSpan Waited { get; }
        public string? LastError { get; }
    }

    internal static class Waits
    {
        /// <summary>"3 s", "90 s", "5 min" for settings; Format gives a clock for elapsed time.</summary>
        public static string Human(TimeSpan t) => t.TotalSeconds < 120 ? $"{t.TotalSeconds:0.#} s" : t.TotalMinutes < 120 ? $"{t.TotalMinutes:0.#} min" : $"{t.TotalHours:0.#} h";

        public static string Format(TimeSpan t) => t.TotalHours >= 1 ? $"{(int)t.TotalHours}:{t.Minutes:00}:{t.Seconds:00}" : $"{(int)t.TotalMinutes}:{t.Seconds:00}";
    }

    /// <summary>
    /// Decides when to probe and waits out outages. Sending healthy means no probe at all: the gate
    /// probes only after a failure that suggests the path is gone, or after the sender was idle.
    /// </summary>
    public sealed class ConnectivityGate
    {
        private readonly IConnectivityProbe _probe;
        private readonly IReadOnlyList<Endpoint> _targets;
        private readonly ConnectivityOptions _options;
        private readonly TimeProvider _time;
        private readonly DeliveryEventSink? _events;
        private volatile bool _suspect;
        private long _lastHealthy;
        // The check (and wait) under way: every sender that needs the network while it runs waits for the same one,
        // so an outage seen by four connections is one wait, one warning and one "back".
        private readonly object _lock = new object();
        private Task? _check;

        /// <summary>On the system clock.</summary>
        public ConnectivityGate(IConnectivityProbe probe, IReadOnlyList<Endpoint> targets, ConnectivityOptions options, DeliveryEventSink? events)
            : this(probe, targets, options, TimeProvider.System, events) { }

        public ConnectivityGate(IConnectivityProbe probe, IReadOnlyList<Endpoint> targets, ConnectivityOptions options, TimeProvider time, DeliveryEventSink? events)
        {
            _probe = probe ?? throw new ArgumentNullException(nameof(probe));
            _targets = targets != null && targets.Count > 0 ? targets : throw new ArgumentException("At least one target is required.", nameof(targets));
            _options = (options ?? throw new ArgumentNullException(nameof(options))).Validate();
            _time = time ?? throw new ArgumentNullException(nameof(time));
            _events = events;
            _lastHealthy = _time.GetTimestamp();
        }

        private int _probeCount;
        public int ProbeCount => Volatile.Read(ref _probeCount);

        public void ReportSuccess()
        {
            _suspect = false;
            Interlocked.Exchange(ref _lastHealthy, _time.GetTimestamp());
        }

        public void ReportFailure(Failure failure)
        {
            if (failure.SuggestsOutage) _suspect = true;
        }

        /// <summary>Returns at once while healthy; otherwise probes, and waits for the network if it is gone. Safe from several senders at once.</summary>
        public async Task EnsureAsync(CancellationToken cancellationToken)
        {
            bool idle = _time.GetElapsedTime(Interlocked.Read(ref _lastHealthy)) >= _options.IdleThreshold;
            if (!_suspect && !idle) return;

            Task check;
            lock (_lock)
            {
                if (_check == null || _check.IsCompleted) _check = CheckAsync(cancellationToken);
                check = _check;
            }
            try
            {
                if (check.IsCompleted) { await check.ConfigureAwait(false); return; }
                // Joined a check another sender started: wait for it, but leave at once if this sender is stopped.
                var stopped = new TaskCompletionSource<bool>();
                using (cancellationToken.Register(() => stopped.TrySetCanceled()))
                    await (await Task.WhenAny(check, stopped.Task).ConfigureAwait(false)).ConfigureAwait(false);
            }
            finally
            {
                lock (_lock) if (ReferenceEquals(_check, check) && check.IsCompleted) _check = null;
            }
        }

        private async Task CheckAsync(CancellationToken cancellationToken)
        {
            var first = await ProbeAllAsync(cancellationToken).ConfigureAwait(false);
            if (!first.Reachable) await WaitAsync(first, cancellationToken).ConfigureAwait(false);
            ReportSuccess();
        }

        /// <summary>Waits until a target answers, re-checking at the interval; throws <see cref="ConnectivityLostException"/> at the limit.</summary>
        public async Task<ProbeResult> WaitAsync(ProbeResult? lastFailure, CancellationToken cancellationToken)
        {
            long started = _time.GetTimestamp();
            var last = lastFailure ?? await ProbeAllAsync(cancellationToken).ConfigureAwait(false);
            if (last.Reachable) return last;

            _events?.Invoke(new DeliveryEvent(DeliveryEventKind.WaitingForConnection,
                $"No connection to {string.Join(", ", _targets)} ({last.Error}). Waiting for it to come back: checking every {Waits.Human(_options.CheckInterval)}, for up to {Waits.Human(_options.WaitTimeout)}.")
            { Elapsed = TimeSpan.Zero, Limit = _options.WaitTimeout });

            while (true)
            {
                var elapsed = _time.GetElapsedTime(started);
                var left = _options.WaitTimeout - elapsed;
                if (left <= TimeSpan.Zero)
                    throw new ConnectivityLostException(_targets, elapsed, last.Error);
                await _time.Delay(left < _options.CheckInterval ? left : _options.CheckInterval, cancellationToken).ConfigureAwait(false);

                last = await ProbeAllAsync(cancellationToken).ConfigureAwait(false);
                elapsed = _time.GetElapsedTime(started);
                if (last.Reachable)
                {
                    _events?.Invoke(new DeliveryEvent(DeliveryEventKind.ConnectionRestored,
                        $"Connection to {last.Target} is back after {Waits.Format(elapsed)}; resuming.") { Elapsed = elapsed, Limit = _options.WaitTimeout });
                    return last;
                }
                _events?.Invoke(new DeliveryEvent(DeliveryEventKind.StillWaiting,
                    $"Waiting for connection ({Waits.Format(elapsed)} of {Waits.Format(_options.WaitTimeout)}): {last.Error}") { Elapsed = elapsed, Limit = _options.WaitTimeout });
            }
        }

        /// <summary>Probes every target at once; the first that answers wins.</summary>
        private async Task<ProbeResult> ProbeAllAsync(CancellationToken cancellationToken)
        {
            Interlocked.Increment(ref _probeCount);
            var results = await Task.WhenAll(_targets.Select(t => _probe.ProbeAsync(t, _options.ProbeTimeout, cancellationToken))).ConfigureAwait(false);
            var best = results.FirstOrDefault(r => r.Reachable) ?? results[0];
            _events?.Invoke(new DeliveryEvent(DeliveryEventKind.Probe, best.Reachable
                ? $"Probe {best.Target}: reachable in {best.Latency.TotalMilliseconds:0} ms."
                : $"Probe {string.Join(", ", results.Select(r => r.Target))}: unreachable ({best.Error})."));
            return best;
        }
    }
}
