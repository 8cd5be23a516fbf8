using System;
using System.Management.Automation;
using ResilientMail.Core.Delivery;
using ResilientMail.Core.Resilience;
using ResilientMail.Internal;

namespace ResilientMail.Commands
{
    /// <summary>Blocks until a target answers (for runbooks), re-checking at an interval; a terminating error at the timeout.</summary>
    [Cmdlet(VerbsLifecycle.Wait, "InternetConnection")]
    [OutputType(typeof(ConnectivityTestResult))]
    public sealed class WaitInternetConnectionCommand : AsyncCmdlet
    {
        /// <summary>host:port targets; the wait ends when any of them answers.</summary>
        [Parameter(Position = 0)]
        [ValidateNotNullOrEmpty]
        public string[] Target { get; set; } = { ConnectivityDefaults.Target };

        /// <summary>How long to wait at most (default 5 minutes).</summary>
        [Parameter]
        [TimeSpanArgument]
        public TimeSpan Timeout { get; set; } = Core.Defaults.ConnectionWaitTimeout;

        [Parameter]
        [TimeSpanArgument]
        public TimeSpan CheckInterval { get; set; } = Core.Defaults.ConnectionCheckInterval;

        [Parameter]
        [ValidateRange(1, 300)]
        public int TimeoutSeconds { get; set; } = (int)Core.Defaults.ProbeTimeout.TotalSeconds;

        /// <summary>Write the probe result of the target that answered.</summary>
        [Parameter]
        public SwitchParameter PassThru { get; set; }

        private StatusReporter? _status;

        protected override void EndProcessing()
        {
            var endpoints = ConnectivityDefaults.ParseTargets(this, Target);
            if (endpoints.Length == 0) return;
            ConnectivityOptions options;
            try
            {
                options = new ConnectivityOptions { WaitTimeout = Timeout, CheckInterval = CheckInterval, ProbeTimeout = TimeSpan.FromSeconds(TimeoutSeconds) }.Validate();
            }
            catch (ArgumentException ex)
            {
                ThrowTerminatingError(new ErrorRecord(ex, "InvalidWaitOptions", ErrorCategory.InvalidArgument, null));
                return;
            }
            _status = new StatusReporter(this, "Wait-InternetConnection");
            DeliveryEventSink sink = e => { if (_status.Wants(e)) Post(() => _status.OnEvent(e)); };
            var gate = new ConnectivityGate(new TcpProbe(), endpoints, options, sink);
            try
            {
                var result = Await(token => gate.WaitAsync(null, token));
                if (PassThru) WriteObject(ConnectivityDefaults.ToOutput(result));
            }
            catch (ConnectivityLostException ex)
            {
                ThrowTerminatingError(new ErrorRecord(ex, "ConnectionWaitTimedOut", ErrorCategory.ConnectionError, string.Join(", ", Target))
                {
                    ErrorDetails = new ErrorDetails(ex.Message) { RecommendedAction = "Check the network path, or wait longer with -Timeout." },
                });
            }
            finally
            {
                _status.Complete();
            }
        }

        protected override void OnIdle() => _status?.Tick();
    }
}
