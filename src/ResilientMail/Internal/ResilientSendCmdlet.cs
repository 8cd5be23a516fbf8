using System;
using System.Linq;
using System.Management.Automation;
using ResilientMail.Core.Delivery;
using ResilientMail.Core.Logging;
using ResilientMail.Core.Resilience;
using ResilientMail.Core.Transports;

namespace ResilientMail.Internal
{
    /// <summary>The retry, connectivity and pacing parameters every sending cmdlet shares, and the options built from them.</summary>
    public abstract class ResilientSendCmdlet : AsyncCmdlet
    {
        /// <summary>Retries after the first attempt for transient failures.</summary>
        [Parameter]
        [ValidateRange(0, 100)]
        public int MaxRetries { get; set; } = Core.Defaults.MaxRetries;

        [Parameter]
        [TimeSpanArgument]
        public TimeSpan RetryBaseDelay { get; set; } = Core.Defaults.RetryBaseDelay;

        [Parameter]
        [TimeSpanArgument]
        public TimeSpan RetryMaxDelay { get; set; } = Core.Defaults.RetryMaxDelay;

        /// <summary>Also retry sends whose outcome is unknown (the connection died after the whole message was sent).</summary>
        [Parameter]
        public SwitchParameter RetryUncertain { get; set; }

        /// <summary>host:port to probe when the network seems gone; the server being sent to by default.</summary>
        [Parameter]
        public string[]? ConnectivityTarget { get; set; }

        [Parameter]
        [TimeSpanArgument]
        public TimeSpan ConnectionWaitTimeout { get; set; } = Core.Defaults.ConnectionWaitTimeout;

        [Parameter]
        [TimeSpanArgument]
        public TimeSpan ConnectionCheckInterval { get; set; } = Core.Defaults.ConnectionCheckInterval;

        [Parameter]
        [TimeSpanArgument]
        public TimeSpan ProbeTimeout { get; set; } = Core.Defaults.ProbeTimeout;

        /// <summary>No gaps and no batch pauses: for transactional sends.</summary>
        [Parameter]
        public SwitchParameter NoDelay { get; set; }

        [Parameter]
        [TimeSpanArgument]
        public TimeSpan MinGap { get; set; } = Core.Defaults.MinGap;

        [Parameter]
        [TimeSpanArgument]
        public TimeSpan MaxGap { get; set; } = Core.Defaults.MaxGap;

        [Parameter]
        [ValidateRange(0, int.MaxValue)]
        public int BatchSize { get; set; } = Core.Defaults.BatchSize;

        [Parameter]
        [TimeSpanArgument]
        public TimeSpan BatchPause { get; set; } = Core.Defaults.BatchPause;

        /// <summary>A JSON-lines log of every attempt, backoff, probe, wait and result, for unattended runs (appended; no secrets).</summary>
        [Parameter]
        [ValidateNotNullOrEmpty]
        public string? LogPath { get; set; }

        /// <summary>The -LogPath log while the command runs.</summary>
        private protected RunLog? Log { get; private set; }

        /// <summary>Opens -LogPath, if given, and writes the start record; an unwritable path is a terminating error.</summary>
        protected void OpenLog(string start)
        {
            if (LogPath == null) return;
            try
            {
                Log = new RunLog(GetUnresolvedProviderPathFromPSPath(LogPath), MyInvocation.MyCommand.Name);
            }
            catch (Exception ex) when (ex is System.IO.IOException || ex is UnauthorizedAccessException || ex is ArgumentException || ex is NotSupportedException)
            {
                ThrowTerminatingError(new ErrorRecord(new System.IO.IOException($"Cannot write the log {LogPath}: {ex.Message}", ex), "LogPathUnwritable", ErrorCategory.WriteError, LogPath));
            }
            Log!.Start(start);
        }

        /// <summary>Where engine events go: the log (every one, from any thread) and the status reporter (those it wants, on the pipeline thread).</summary>
        private protected DeliveryEventSink EventSink(StatusReporter status) => e =>
        {
            Log?.Event(e);
            if (status.Wants(e)) Post(() => status.OnEvent(e));
        };

        /// <summary>Releases the command's own resources (connections, runners, journals); the log is closed after it.</summary>
        protected virtual void ReleaseSending() { }

        /// <summary>After Ctrl+C: one line that says what was sent and what was not (and how to go on). Null: nothing to say.</summary>
        private protected virtual string? StoppedSummary() => null;

        protected sealed override void Release()
        {
            try { ReleaseSending(); }
            finally
            {
                try { if (StopToken.IsCancellationRequested) SayStopped(); }
                finally { Log?.Dispose(); }
            }
        }

        // The pipeline is stopped: its streams take nothing more, so the line goes to the host itself (and the log).
        private void SayStopped()
        {
            string? line;
            try { line = StoppedSummary(); }
            catch (Exception) { return; } // never let the summary hide how the command ended
            if (line == null) return;
            Log?.End(line);
            try { Host?.UI?.WriteWarningLine(line); }
            catch (Exception ex) when (ex is System.Management.Automation.Host.HostException || ex is PSInvalidOperationException || ex is NotImplementedException) { }
        }

        /// <summary>The options record for Core, validated; a bad value is a terminating error.</summary>
        private protected CourierOptions BuildCourierOptions()
        {
            try
            {
                return new CourierOptions
                {
                    Retry = new RetryOptions
                    {
                        MaxRetries = MaxRetries,
                        BaseDelay = RetryBaseDelay,
                        MaxDelay = RetryMaxDelay,
                        RetryAmbiguous = RetryUncertain.IsPresent,
                    }.Validate(),
                    Connectivity = new ConnectivityOptions
                    {
                        WaitTimeout = ConnectionWaitTimeout,
                        CheckInterval = ConnectionCheckInterval,
                        ProbeTimeout = ProbeTimeout,
                    }.Validate(),
                    Pacing = NoDelay.IsPresent
                        ? PacingOptions.None
                        : new PacingOptions { MinGap = MinGap, MaxGap = MaxGap, BatchSize = BatchSize, BatchPause = BatchPause }.Validate(),
                    ConnectivityTargets = (ConnectivityTarget ?? new string[0]).Select(t => Endpoint.Parse(t)).ToArray(),
                    // Per-message events only for someone who reads them: the verbose stream or the log.
                    ReportEachMessage = LogPath != null || StatusReporter.IsVerbose(this),
                };
            }
            catch (Exception ex) when (ex is ArgumentException || ex is FormatException)
            {
                ThrowTerminatingError(new ErrorRecord(ex, "InvalidSendOptions", ErrorCategory.InvalidArgument, null));
                throw; // not reached
            }
        }
    }
}
