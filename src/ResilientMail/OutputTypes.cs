using System;

namespace ResilientMail
{
    /// <summary>PartiallySent: some recipients have the message; Refused says which did not, and why.</summary>
    public enum MailDeliveryStatus { Sent, Failed, Uncertain, PartiallySent }

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
        /// <summary>The recipients the server took.</summary>
        public string[] Delivered { get; set; } = new string[0];
        /// <summary>The recipients that did not get the message, each as "address: why" (the server's reply).</summary>
        public string[] Refused { get; set; } = new string[0];

        public override string ToString() => Status == MailDeliveryStatus.PartiallySent
            ? $"{Status}: {To} (delivered to {Delivered.Length} of {Delivered.Length + Refused.Length})"
            : $"{Status}: {To}";
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

namespace ResilientMail
{
    public enum CampaignRecipientStatus { Sent, Failed, Uncertain, Duplicate }

    /// <summary>One recipient's fate in this run of Start-MailCampaign.</summary>
    public sealed class CampaignRecipientResult
    {
        public string Campaign { get; set; } = "";
        public string To { get; set; } = "";
        public string Key { get; set; } = "";
        public CampaignRecipientStatus Status { get; set; }
        public int Attempts { get; set; }
        public string? MessageId { get; set; }
        public string? ServerReply { get; set; }
        public string? Error { get; set; }
        public System.TimeSpan Duration { get; set; }
        public long Row { get; set; }

        public override string ToString() => $"{Status}: {To}";
    }

    /// <summary>A campaign's state from its journal: the summary of Start-MailCampaign and the output of Get-MailCampaign.</summary>
    public sealed class MailCampaignInfo
    {
        public string Name { get; set; } = "";
        /// <summary>
        /// Completed, Paused, Stopped (Ctrl+C), Running (started, not ended: running now, or killed), or Incomplete (every
        /// row it was given is done, but its input was never read to the end).
        /// </summary>
        public string State { get; set; } = "";
        /// <summary>The input (pipeline or CSV) was read to its end in some run: every row of it is in the journal.</summary>
        public bool InputComplete { get; set; }
        /// <summary>Rows read from the input so far (the furthest any run got).</summary>
        public long RowsRead { get; set; }
        /// <summary>What to run next, when there is something left to do (resume, pipe the input again, resend the uncertain).</summary>
        public string? NextStep { get; set; }
        public long Recipients { get; set; }
        public long Sent { get; set; }
        public long Failed { get; set; }
        /// <summary>Failed for a transient reason (outage, 4xx): sent again on resume.</summary>
        public long Deferred { get; set; }
        public long Uncertain { get; set; }
        public long Pending { get; set; }
        public long Duplicates { get; set; }
        /// <summary>Not yet sent: pending, deferred, and (when the input was counted) rows not yet read.</summary>
        public long Remaining { get; set; }
        public long? SentThisRun { get; set; }
        public System.TimeSpan? Duration { get; set; }
        public int Runs { get; set; }
        public System.DateTimeOffset? Created { get; set; }
        public System.DateTimeOffset? LastActivity { get; set; }
        public string? PauseReason { get; set; }
        public string? LastError { get; set; }
        public string Transport { get; set; } = "";
        public string JournalPath { get; set; } = "";
        /// <summary>This journal's part of a campaign split among workers ("1/2"); null for a whole campaign.</summary>
        public string? Shard { get; set; }
        /// <summary>For a campaign split among workers (Get-MailCampaign): each shard's own counts; the campaign's are their sums.</summary>
        public MailCampaignInfo[]? Shards { get; set; }

        public override string ToString() => $"{Name}{(Shard != null && Shards == null ? $" (shard {Shard})" : "")}: {State}, {Sent} sent, {Remaining} remaining";
    }

    /// <summary>One recipient as a campaign's journal last recorded it (Get-MailCampaign -Recipients).</summary>
    public sealed class MailCampaignRecipient
    {
        public string Campaign { get; set; } = "";
        public string Key { get; set; } = "";
        public string? To { get; set; }
        /// <summary>Pending, Sent, Deferred, Failed or Uncertain.</summary>
        public string Status { get; set; } = "";
        public int Attempts { get; set; }
        public string? MessageId { get; set; }
        public string? ServerReply { get; set; }
        public string? Error { get; set; }
        public long Row { get; set; }
        public System.DateTimeOffset Updated { get; set; }

        public override string ToString() => $"{Status}: {Key}";
    }
}
