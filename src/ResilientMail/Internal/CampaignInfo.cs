using System;
using System.IO;
using System.Linq;
using ResilientMail.Core.Campaigns;

namespace ResilientMail.Internal
{
    /// <summary>Maps journal snapshots to the cmdlets' output types.</summary>
    internal static class CampaignInfo
    {
        public static MailCampaignInfo From(JournalSnapshot s, string state, long unread = 0)
        {
            long sending = s.Count(RecipientState.Sending);
            var info = new MailCampaignInfo
            {
                Name = s.Definition?.Name ?? NameFromPath(s.Path),
                State = state,
                Recipients = s.States.Count,
                Sent = s.Count(RecipientState.Sent),
                Failed = s.Count(RecipientState.FailedPermanent),
                Deferred = s.Count(RecipientState.FailedTransient),
                Uncertain = s.Count(RecipientState.Uncertain) + sending,
                Pending = s.Count(RecipientState.Pending),
                Duplicates = s.Duplicates,
                Runs = s.Runs,
                Created = s.Definition?.Created ?? s.FirstAt,
                LastActivity = s.LastAt,
                LastError = s.LastError,
                PauseReason = s.LastPause,
                Transport = s.Definition?.Transport.ToString() ?? "",
                JournalPath = s.Path,
            };
            info.Remaining = info.Pending + info.Deferred + Math.Max(0, unread);
            info.InputComplete = s.InputComplete;
            info.RowsRead = s.RowsRead;
            // A journal outside the default folder is named in the command, as it was given to Start-MailCampaign.
            var own = string.Equals(Path.GetFullPath(s.Path), Path.GetFullPath(CampaignJournal.DefaultPath(info.Name)), StringComparison.Ordinal) ? null : s.Path;
            info.NextStep = NextStep(info, s.Definition?.SourcePath == null, s.Definition?.Transport.NeedsCallerSecret == true, own);
            return info;
        }

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

        /// <summary>This run's summary, from the runner's own counts (no replay of the journal).</summary>
        public static MailCampaignInfo From(CampaignSummary s, JournalSnapshot previous, string transport, long unread) => new MailCampaignInfo
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
            Remaining = s.Pending + s.Deferred + Math.Max(0, unread),
            SentThisRun = s.SentThisRun,
            Duration = s.Duration,
            Runs = previous.Runs + 1,
            Created = previous.Definition?.Created ?? DateTimeOffset.Now,
            LastActivity = DateTimeOffset.Now,
            PauseReason = s.PauseReason,
            LastError = s.LastError,
            Transport = transport,
            JournalPath = s.JournalPath,
            InputComplete = s.InputComplete,
            RowsRead = s.RowsRead,
        };

        /// <summary>The state a journal was left in, from its run records.</summary>
        public static string StateOf(JournalSnapshot s) =>
            s.Completed ? "Completed" : s.LastPause != null ? "Paused" : s.Stopped ? "Stopped" : s.Incomplete ? "Incomplete" : s.Runs == 0 ? "New" : "Running";

        public static string NameFromPath(string path)
        {
            var file = Path.GetFileName(path);
            return file.EndsWith(".journal.jsonl", StringComparison.OrdinalIgnoreCase) ? file.Substring(0, file.Length - ".journal.jsonl".Length) : file;
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

        /// <summary>Journals in the default folder whose campaign names match.</summary>
        public static string[] Find(string pattern)
        {
            var dir = Path.GetDirectoryName(CampaignJournal.DefaultPath("x"))!;
            if (!Directory.Exists(dir)) return new string[0];
            var wildcard = new System.Management.Automation.WildcardPattern(pattern, System.Management.Automation.WildcardOptions.IgnoreCase);
            return Directory.GetFiles(dir, "*.journal.jsonl").Where(f => wildcard.IsMatch(NameFromPath(f)) || wildcard.IsMatch(DisplayName(f))).OrderBy(f => f).ToArray();
        }

        /// <summary>The name the campaign was started with (its file name may have had characters replaced).</summary>
        public static string DisplayName(string path) => JournalSnapshot.ReadName(path) ?? NameFromPath(path);
    }
}
