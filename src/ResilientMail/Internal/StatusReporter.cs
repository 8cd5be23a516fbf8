using System;
using System.Diagnostics;
using System.Globalization;
using System.Management.Automation;
using ResilientMail.Core.Delivery;

namespace ResilientMail.Internal
{
    /// <summary>
    /// Turns engine events into verbose lines, warnings and one progress bar. Lives on the pipeline
    /// thread: every method is called there (events arrive through AsyncCmdlet.Post).
    /// </summary>
    internal sealed class StatusReporter
    {
        private readonly PSCmdlet _cmdlet;
        private readonly string _activity;
        private readonly int _activityId;
        private readonly Stopwatch _clock = Stopwatch.StartNew();
        private Stopwatch? _waitClock;
        private TimeSpan _waitOffset;
        private TimeSpan _waitLimit;
        private string? _waitLabel;
        private string _current = "";
        private bool _shown;

        public StatusReporter(PSCmdlet cmdlet, string activity, int activityId = 1)
        {
            _cmdlet = cmdlet;
            _activity = activity;
            _activityId = activityId;
            _verbose = IsVerbose(cmdlet);
        }

        /// <summary>Whether the verbose stream is shown: -Verbose, or $VerbosePreference.</summary>
        public static bool IsVerbose(PSCmdlet cmdlet) =>
            cmdlet.MyInvocation.BoundParameters.TryGetValue("Verbose", out var v) && v is SwitchParameter sw
                ? sw.IsPresent
                : cmdlet.GetVariableValue("VerbosePreference") is ActionPreference p && p != ActionPreference.SilentlyContinue && p != ActionPreference.Ignore;

        private readonly bool _verbose;

        /// <summary>Events worth a trip to the pipeline thread: per-message chatter only when -Verbose is on.</summary>
        public bool Wants(DeliveryEvent e) => _verbose || e.Kind switch
        {
            DeliveryEventKind.Attempt => false,
            DeliveryEventKind.Delivered => false,
            DeliveryEventKind.Connect => false,
            DeliveryEventKind.Gap => false,
            DeliveryEventKind.Probe => false,
            DeliveryEventKind.RateLimit => e.Limit >= TimeSpan.FromSeconds(1),
            _ => true,
        };

        public int Sent { get; private set; }
        public int Failed { get; private set; }
        public int Uncertain { get; private set; }
        public int Done => Sent + Failed + Uncertain;
        /// <summary>Known when the input is counted first (campaigns); unknown for a pipeline.</summary>
        public int? Total { get; set; }

        public void OnEvent(DeliveryEvent e)
        {
            if (_verbose) Streams.Verbose(_cmdlet, $"{DateTime.Now.ToString("HH:mm:ss", CultureInfo.InvariantCulture)} {e.Text}");
            switch (e.Kind)
            {
                case DeliveryEventKind.WaitingForConnection:
                    Streams.Warn(_cmdlet, e.Text);
                    StartWait("Waiting for connection", e.Elapsed ?? TimeSpan.Zero, e.Limit ?? TimeSpan.Zero);
                    break;
                case DeliveryEventKind.StillWaiting:
                    StartWait("Waiting for connection", e.Elapsed ?? TimeSpan.Zero, e.Limit ?? TimeSpan.Zero);
                    break;
                case DeliveryEventKind.Warning:
                    Streams.Warn(_cmdlet, e.Text);
                    break;
                case DeliveryEventKind.ConnectionRestored:
                    Streams.Warn(_cmdlet, e.Text);
                    EndWait();
                    break;
                case DeliveryEventKind.Pause:
                    StartWait("Pausing between batches", TimeSpan.Zero, e.Limit ?? TimeSpan.Zero);
                    break;
                case DeliveryEventKind.RateLimit:
                    if ((e.Limit ?? TimeSpan.Zero) >= TimeSpan.FromSeconds(1)) StartWait("Rate limit", TimeSpan.Zero, e.Limit ?? TimeSpan.Zero);
                    break;
                case DeliveryEventKind.Retry:
                    // A provider's 429 says how long to wait; show it like any other wait.
                    if ((e.Limit ?? TimeSpan.Zero) >= TimeSpan.FromSeconds(1))
                        StartWait(e.Reason == Core.Resilience.FailureReason.Throttled ? "Rate limited by the provider" : "Retrying", TimeSpan.Zero, e.Limit ?? TimeSpan.Zero);
                    break;
                case DeliveryEventKind.Attempt:
                case DeliveryEventKind.Delivered:
                case DeliveryEventKind.Failed:
                    EndWait();
                    break;
            }
        }

        public void Sending(string recipient)
        {
            _current = recipient;
            _waitClock = null; // a new message: no wait is going on
            Show(throttled: true);
        }

        public void Count(DeliveryStatus status)
        {
            switch (status)
            {
                case DeliveryStatus.Sent: Sent++; break;
                case DeliveryStatus.Uncertain: Uncertain++; break;
                default: Failed++; break;
            }
            _waitClock = null; // a message finished: whatever wait was shown is over
            Show(throttled: true);
        }

        /// <summary>Keeps the wait clock in the status line moving.</summary>
        public void Tick()
        {
            if (_waitClock != null) Show();
        }

        private void StartWait(string label, TimeSpan elapsed, TimeSpan limit)
        {
            _waitLabel = label;
            _waitOffset = elapsed;
            _waitLimit = limit;
            _waitClock = Stopwatch.StartNew();
            Show();
        }

        private void EndWait()
        {
            if (_waitClock == null) return;
            _waitClock = null;
            _waitLabel = null;
            Show();
        }

        // Redrawing the progress bar costs far more than sending over a fast link: at most five times a second.
        private static readonly TimeSpan Redraw = TimeSpan.FromMilliseconds(200);
        private TimeSpan _lastShown = TimeSpan.FromDays(-1);

        private void Show(bool throttled = false)
        {
            if (throttled && _clock.Elapsed - _lastShown < Redraw) return;
            _lastShown = _clock.Elapsed;
            string status;
            if (_waitClock != null)
            {
                var elapsed = _waitOffset + _waitClock.Elapsed;
                if (elapsed > _waitLimit) elapsed = _waitLimit;
                status = _waitLabel == "Waiting for connection"
                    ? $"Waiting for connection ({Clock(elapsed)} of {Clock(_waitLimit)})"
                    : $"{_waitLabel} ({Clock(_waitLimit - elapsed)})";
            }
            else if (Total is int all && all > 0)
            {
                // PowerShell 7's default (minimal) view shows only the status text: it carries the count, percent, rate and ETA.
                status = $"Sent {Sent} of {all} ({Math.Min(100, Done * 100 / all)}%)" + (Failed > 0 ? $", failed {Failed}" : "") + (Uncertain > 0 ? $", uncertain {Uncertain}" : "") +
                         $", remaining {Math.Max(0, all - Done)}" + Rate() + Eta(all) + (_current.Length > 0 ? $" - {_current}" : "");
            }
            else
            {
                status = $"Sent {Sent}" + (Failed > 0 ? $", failed {Failed}" : "") + (Uncertain > 0 ? $", uncertain {Uncertain}" : "") +
                         Rate() + (_current.Length > 0 ? $" - {_current}" : "");
            }
            var record = new ProgressRecord(_activityId, _activity, status);
            var minutes = _clock.Elapsed.TotalMinutes;
            if (Done > 0 && minutes > 0)
            {
                double perMinute = Done / minutes;
                record.CurrentOperation = $"{perMinute:0.#} messages/min";
                if (Total is int total && total > 0)
                {
                    record.PercentComplete = Math.Min(100, Done * 100 / total);
                    if (perMinute > 0) record.SecondsRemaining = (int)((total - Done) / perMinute * 60);
                }
            }
            Streams.Progress(_cmdlet, record);
            _shown = true;
        }

        private double PerMinute => Done > 0 && _clock.Elapsed.TotalMinutes > 0 ? Done / _clock.Elapsed.TotalMinutes : 0;

        /// <summary>", 3.2/s" or ", 14/min"; nothing before the first message is done.</summary>
        private string Rate()
        {
            var perMinute = PerMinute;
            if (perMinute <= 0) return "";
            return perMinute >= 60 ? $", {(perMinute / 60).ToString("0.#", CultureInfo.InvariantCulture)}/s" : $", {perMinute.ToString("0.#", CultureInfo.InvariantCulture)}/min";
        }

        private string Eta(int total)
        {
            var perMinute = PerMinute;
            if (perMinute <= 0 || Done >= total) return "";
            return $", ETA {Clock(TimeSpan.FromMinutes((total - Done) / perMinute))}";
        }

        public void Complete()
        {
            if (!_shown) return;
            Streams.Progress(_cmdlet, new ProgressRecord(_activityId, _activity, "Done") { RecordType = ProgressRecordType.Completed });
        }

        internal static string Clock(TimeSpan t) => t.TotalHours >= 1
            ? $"{(int)t.TotalHours}:{t.Minutes:00}:{t.Seconds:00}"
            : $"{(int)t.TotalMinutes}:{t.Seconds:00}";
    }
}
