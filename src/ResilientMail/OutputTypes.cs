using System;

namespace ResilientMail
{
    public enum MailDeliveryStatus { Sent, Failed, Uncertain }

    /// <summary>How the SMTP connection is secured.</summary>
    public enum MailSecurity
    {
        /// <summary>Implicit TLS on port 465, otherwise STARTTLS when the server offers it.</summary>
        Auto,
        None,
        StartTls,
        SslOnConnect,
    }

    public enum MailPriority { Normal, Low, High }

    /// <summary>The fate of one message, as Send-ResilientMail writes it.</summary>
    public sealed class MailDeliveryResult
    {
        public string To { get; set; } = "";
        public MailDeliveryStatus Status { get; set; }
        public int Attempts { get; set; }
        public string? MessageId { get; set; }
        public string? ServerReply { get; set; }
        /// <summary>What went wrong, in one line; empty when sent.</summary>
        public string? Error { get; set; }
        /// <summary>Transient, Permanent or Ambiguous; empty when sent.</summary>
        public string? FailureKind { get; set; }
        public TimeSpan Duration { get; set; }
        public string Subject { get; set; } = "";
        public DateTimeOffset Timestamp { get; set; }

        public override string ToString() => $"{Status}: {To}";
    }

    /// <summary>The answer of one TCP probe.</summary>
    public sealed class ConnectivityTestResult
    {
        public string Target { get; set; } = "";
        public string Host { get; set; } = "";
        public int Port { get; set; }
        public bool Reachable { get; set; }
        public double? LatencyMs { get; set; }
        public string? Error { get; set; }

        public override string ToString() => $"{Target}: {(Reachable ? "reachable" : "unreachable")}";
    }
}
