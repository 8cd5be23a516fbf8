using System;

namespace ResilientMail.Core
{
    /// <summary>
    /// The specification's defaults, in one place: every options record and every cmdlet parameter starts from these.
    /// </summary>
    public static class Defaults
    {
        /// <summary>The limit on one network attempt (an SMTP conversation, an HTTP request).</summary>
        public static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);
        public const int MaxRetries = 3;
        public static readonly TimeSpan RetryBaseDelay = TimeSpan.FromSeconds(1);
        public static readonly TimeSpan RetryMaxDelay = TimeSpan.FromSeconds(60);
        public const double RetryJitter = 0.2;
        public static readonly TimeSpan ProbeTimeout = TimeSpan.FromSeconds(5);
        public static readonly TimeSpan ConnectionCheckInterval = TimeSpan.FromSeconds(10);
        public static readonly TimeSpan ConnectionWaitTimeout = TimeSpan.FromMinutes(5);
        /// <summary>A sender idle this long probes before its next message.</summary>
        public static readonly TimeSpan IdleThreshold = TimeSpan.FromSeconds(60);
        public static readonly TimeSpan MinGap = TimeSpan.FromSeconds(1);
        public static readonly TimeSpan MaxGap = TimeSpan.FromSeconds(3);
        public const int BatchSize = 50;
        public static readonly TimeSpan BatchPause = TimeSpan.FromSeconds(30);
        public const int MaxConsecutiveFailures = 10;
        /// <summary>Test-InternetConnection's target without -Target (the specification's). Sending cmdlets probe their own server.</summary>
        public const string ProbeTarget = "8.8.8.8:53";
    }
}
