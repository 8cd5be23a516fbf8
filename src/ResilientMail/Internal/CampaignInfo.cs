using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using ResilientMail.Core.Campaigns;

namespace ResilientMail.Internal
{
    /// <summary>Maps journal snapshots to the cmdlets' output types.</summary>
    internal static class CampaignInfo
    {
        /// <summary>A campaign as its journal has it (Get-MailCampaign).</summary>
        public static MailCampaignInfo From(JournalSnapshot s, long unread = 0)
        {
            var info = Map(s.Summary(), unread);
            info.State = s.Status;
            info.Runs = s.Runs;
            info.Created = s.Definition?.Created ?? s.FirstAt;
            info.LastActivity = s.LastAt;
            info.Transport = s.Definition?.Transport.ToString() ?? "";
            // A journal outside the default folder is named in the command, as it was given to Start-MailCampaign.
            var own = string.Equals(Path.GetFullPath(s.Path), Path.GetFullPath(CampaignJournal.DefaultPath(info.Name)), StringComparison.Ordinal) ? null : s.Path;
            info.NextStep = NextStep(info, s.Definition?.SourcePath == null, s.Definition?.Transport.NeedsCallerSecret == true, own);
            return info;
        }

        /// <summary>This run's summary, from the runner's own counts (no replay of the journal).</summary>
        public static MailCampaignInfo From(CampaignSummary s, JournalSnapshot previous, string transport, long unread)
        {
            var info = Map(s, unread);
            info.SentThisRun = s.SentThisRun;
            info.Duration = s.Duration;
            info.Runs = previous.Runs + 1;
            info.Created = previous.Definition?.Created ?? DateTimeOffset.Now;
            info.LastActivity = DateTimeOffset.Now;
            info.Transport = transport;
            return info;
        }

        // The one mapping of Core's counts to the PowerShell twin.
        private static MailCampaignInfo Map(CampaignSummary s, long unread) => new MailCampaignInfo
        {
            Name = s.Name,
            State = s.State.ToString(),
            Recipients = s.Recipients,
            Sent = s.Sent,
            Failed = s.Failed,
            Deferred = s.Deferred,
            Uncertain = s.Uncertain,
            Pending = s.Pending,
            Duplicates = s.Duplicates,
            Remaining = s.Remaining + Math.Max(0, unread),
            PauseReason = s.PauseReason,
            LastError = s.LastError,
            JournalPath = s.JournalPath,
            InputComplete = s.InputComplete,
            RowsRead = s.RowsRead,
        };

        /// <summary>What a run's end must not let anyone miss: an input never read to its end, and Uncertain recipients.</summary>
        public static IEnumerable<string> Warnings(MailCampaignInfo info, string? journalPath, bool needsTransport)
        {
            if (info.State == "Incomplete")
                yield return $"Campaign '{info.Name}' has done every row it was given, but its input was never read to its end ({info.RowsRead} row(s) read): " +
                             $"rows after those were never seen. To send them, pipe the same input again: {info.NextStep} (rows already in the journal are skipped).";
            if (info.Uncertain > 0)
                yield return $"{info.Uncertain} recipient(s) of campaign '{info.Name}' are Uncertain: each message was on its way when a run stopped, and may or may not have arrived; " +
                             $"they were not sent again. List them: Get-MailCampaign -Name '{info.Name.Replace("'", "''")}' -Recipients -Status Uncertain. " +
                             $"Send them again (a recipient may then get it twice): {ResumeCommand(info.Name, journalPath, needsTransport, false, " -ResendUncertain")}";
        }

        public static string PauseMessage(MailCampaignInfo info, string reason, string resume, bool piped) =>
            $"Campaign '{info.Name}' paused: {reason} Sent {info.Sent}, failed {info.Failed}, not yet sent {info.Remaining}" +
            (info.Uncertain > 0 ? $", uncertain {info.Uncertain}" : "") +
            (piped ? ", plus any rows the pipeline had not handed over yet" : "") + $". Nothing is lost; resume with: {resume}";

        /// <summary>The one line after Ctrl+C.</summary>
        public static string StoppedLine(CampaignSummary s, string resume, bool piped) =>
            $"Campaign '{s.Name}' stopped: sent {s.Sent}, failed {s.Failed}, uncertain {s.Uncertain}, not yet sent {s.Remaining}" +
            (piped ? ", plus the rows the pipeline had not handed over" : "") + $". Nothing is lost; resume with: {resume}";

        /// <summary>The command that continues a campaign, as a user would type it.</summary>
        public static string ResumeCommand(string name, string? journalPath, bool needsTransport, bool pipeInput, string extra = "")
        {
            var command = $"Start-MailCampaign -Name '{name.Replace("'", "''")}' -Resume" +
                          (journalPath != null ? $" -JournalPath '{journalPath.Replace("'", "''")}'" : "") +
                          (needsTransport ? " -Transport $transport" : "") + extra;
            return pipeInput ? "<the same input> | " + command : command;
        }

        /// <summary>What is left to do, as a command: resume, pipe the input again, or look at and resend the uncertain.</summary>
        public static string? NextStep(MailCampaignInfo info, bool piped, bool needsTransport, string? journalPath)
        {
            bool moreInput = piped && !info.InputComplete;
            if (info.State != "Completed" || info.Remaining > 0 || moreInput)
                return ResumeCommand(info.Name, journalPath, needsTransport, moreInput);
            if (info.Uncertain > 0)
                return $"Get-MailCampaign -Name '{info.Name.Replace("'", "''")}' -Recipients -Status Uncertain; " +
                       ResumeCommand(info.Name, journalPath, needsTransport, false, " -ResendUncertain");
            return null;
        }

        public static MailCampaignRecipient From(string campaign, RecipientRecord r) => new MailCampaignRecipient
        {
            Campaign = campaign,
            Key = r.Key,
            To = r.To ?? (r.Key.Contains("@") ? r.Key : null),
            Status = r.State switch
            {
                RecipientState.Sending => "Uncertain",
                RecipientState.FailedTransient => "Deferred",
                RecipientState.FailedPermanent => "Failed",
                _ => r.State.ToString(),
            },
            Attempts = r.Attempts,
            MessageId = r.MessageId,
            ServerReply = r.Reply,
            Error = r.Error,
            Row = r.Row,
            Updated = r.Updated,
        };

        /// <summary>Journals in the default folder whose campaign names (as started, or as their file stands for) match.</summary>
        public static string[] Find(string pattern)
        {
            var wildcard = new System.Management.Automation.WildcardPattern(pattern, System.Management.Automation.WildcardOptions.IgnoreCase);
            return CampaignJournal.All().Where(f => wildcard.IsMatch(CampaignJournal.NameFromPath(f)) || wildcard.IsMatch(CampaignJournal.DisplayName(f))).OrderBy(f => f).ToArray();
        }
    }
}
