using System;

namespace ResilientMail.Core.Resilience
{
    internal static class Check
    {
        public static void NonNegative(TimeSpan value, string name)
        {
            if (value < TimeSpan.Zero) throw new ArgumentOutOfRangeException(name, value, $"{name} cannot be negative.");
        }

        public static void Positive(TimeSpan value, string name)
        {
            if (value <= TimeSpan.Zero) throw new ArgumentOutOfRangeException(name, value, $"{name} must be greater than zero.");
        }
    }

    /// <summary>Retry of transient failures. Defaults from the spec: 3 retries, 1 s base, doubling, 60 s cap, jitter.</summary>
    public sealed record RetryOptions
    {
        public int MaxRetries { get; init; } = Defaults.MaxRetries;
        public TimeSpan BaseDelay { get; init; } = Defaults.RetryBaseDelay;
        public TimeSpan MaxDelay { get; init; } = Defaults.RetryMaxDelay;
        /// <summary>Each delay is spread uniformly within ±this fraction of its nominal value, so many senders do not retry in step.</summary>
        public double JitterFraction { get; init; } = Defaults.RetryJitter;
        /// <summary>Retry a send whose outcome is unknown (Ambiguous). Off by default: a duplicate email cannot be taken back, an Uncertain result can be checked.</summary>
        public bool RetryAmbiguous { get; init; }

        public RetryOptions Validate()
        {
            if (MaxRetries < 0 || MaxRetries > 100) throw new ArgumentOutOfRangeException(nameof(MaxRetries), MaxRetries, "MaxRetries must be between 0 and 100.");
            Check.NonNegative(BaseDelay, nameof(BaseDelay));
            Check.NonNegative(MaxDelay, nameof(MaxDelay));
            if (JitterFraction < 0 || JitterFraction >= 1) throw new ArgumentOutOfRangeException(nameof(JitterFraction), JitterFraction, "JitterFraction must be in [0, 1).");
            return this;
        }

        /// <summary>The nominal delay before retry number <paramref name="retry"/> (0-based): base * 2^retry, capped.</summary>
        public TimeSpan NominalDelay(int retry)
        {
            double seconds = BaseDelay.TotalSeconds * Math.Pow(2, Math.Min(retry, 30));
            return TimeSpan.FromSeconds(Math.Min(seconds, MaxDelay.TotalSeconds));
        }
    }

    /// <summary>Connection-aware sending. Defaults from the spec: 5 s probe, re-check every 10 s, give up after 5 min.</summary>
    public sealed record ConnectivityOptions
    {
        public TimeSpan ProbeTimeout { get; init; } = Defaults.ProbeTimeout;
        public TimeSpan CheckInterval { get; init; } = Defaults.ConnectionCheckInterval;
        public TimeSpan WaitTimeout { get; init; } = Defaults.ConnectionWaitTimeout;
        /// <summary>After this long without a successful send, probe before the next one (the path may have gone while idle).</summary>
        public TimeSpan IdleThreshold { get; init; } = Defaults.IdleThreshold;

        public ConnectivityOptions Validate()
        {
            Check.Positive(ProbeTimeout, nameof(ProbeTimeout));
            Check.Positive(CheckInterval, nameof(CheckInterval));
            Check.NonNegative(WaitTimeout, nameof(WaitTimeout));
            Check.Positive(IdleThreshold, nameof(IdleThreshold));
            return this;
        }
    }

    /// <summary>Anti-spam pacing. Defaults from the spec: a random 1-3 s gap, and a 30 s pause after every 50 messages.</summary>
    public sealed record PacingOptions
    {
        public TimeSpan MinGap { get; init; } = Defaults.MinGap;
        public TimeSpan MaxGap { get; init; } = Defaults.MaxGap;
        public int BatchSize { get; init; } = Defaults.BatchSize;
        public TimeSpan BatchPause { get; init; } = Defaults.BatchPause;

        public static PacingOptions None { get; } = new PacingOptions { MinGap = TimeSpan.Zero, MaxGap = TimeSpan.Zero, BatchSize = 0, BatchPause = TimeSpan.Zero };

        public bool IsOff => MaxGap <= TimeSpan.Zero && (BatchSize <= 0 || BatchPause <= TimeSpan.Zero);

        public PacingOptions Validate()
        {
            Check.NonNegative(MinGap, nameof(MinGap));
            Check.NonNegative(MaxGap, nameof(MaxGap));
            Check.NonNegative(BatchPause, nameof(BatchPause));
            if (MaxGap < MinGap) throw new ArgumentException($"MaxGap ({MaxGap}) cannot be less than MinGap ({MinGap}).");
            if (BatchSize < 0) throw new ArgumentOutOfRangeException(nameof(BatchSize), BatchSize, "BatchSize cannot be negative.");
            return this;
        }
    }
}
