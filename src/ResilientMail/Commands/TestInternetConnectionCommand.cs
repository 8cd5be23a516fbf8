using System;
using System.Linq;
using System.Management.Automation;
using System.Threading.Tasks;
using ResilientMail.Core.Resilience;
using ResilientMail.Core.Transports;
using ResilientMail.Internal;

namespace ResilientMail.Commands
{
    /// <summary>Probes TCP targets (default 8.8.8.8:53) and says whether each answers, and how fast.</summary>
    [Cmdlet(VerbsDiagnostic.Test, "InternetConnection")]
    [OutputType(typeof(ConnectivityTestResult))]
    [OutputType(typeof(bool))]
    public sealed class TestInternetConnectionCommand : AsyncCmdlet
    {
        /// <summary>host:port targets, probed at the same time.</summary>
        [Parameter(Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
        [ValidateNotNullOrEmpty]
        public string[] Target { get; set; } = { ConnectivityDefaults.Target };

        [Parameter]
        [ValidateRange(1, 300)]
        public int TimeoutSeconds { get; set; } = (int)Core.Defaults.ProbeTimeout.TotalSeconds;

        /// <summary>Return only $true (at least one target answered) or $false.</summary>
        [Parameter]
        public SwitchParameter Quiet { get; set; }

        protected override void ProcessRecord()
        {
            var endpoints = ConnectivityDefaults.ParseTargets(this, Target);
            if (endpoints.Length == 0) return;
            var probe = new TcpProbe();
            var timeout = TimeSpan.FromSeconds(TimeoutSeconds);
            foreach (var e in endpoints) Streams.Verbose(this, $"Probing {e} (timeout {TimeoutSeconds} s).");
            var results = Await(token => Task.WhenAll(endpoints.Select(e => probe.ProbeAsync(e, timeout, token))));
            if (Quiet)
            {
                WriteObject(results.Any(r => r.Reachable));
                return;
            }
            foreach (var r in results) WriteObject(ConnectivityDefaults.ToOutput(r));
        }
    }

    internal static class ConnectivityDefaults
    {
        /// <summary>The spec's default target (a public DNS server). Sending cmdlets probe their own server instead.</summary>
        public const string Target = Core.Defaults.ProbeTarget;

        public static Endpoint[] ParseTargets(Cmdlet cmdlet, string[] targets)
        {
            return targets.Select(t =>
            {
                try { return Endpoint.Parse(t); }
                catch (FormatException ex)
                {
                    cmdlet.WriteError(new ErrorRecord(ex, "InvalidTarget", ErrorCategory.InvalidArgument, t));
                    return null;
                }
            }).Where(e => e != null).Select(e => e!).ToArray();
        }

        public static ConnectivityTestResult ToOutput(ProbeResult r) => new ConnectivityTestResult
        {
            Target = r.Target.ToString(),
            Host = r.Target.Host,
            Port = r.Target.Port,
            Reachable = r.Reachable,
            LatencyMs = r.Reachable ? Math.Round(r.Latency.TotalMilliseconds, 1) : (double?)null,
            Error = r.Error,
        };
    }
}
