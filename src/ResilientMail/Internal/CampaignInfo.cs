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
        public static MailCampaignInfo From(JournalSnapshot s, JournalWhere where, long unread = 0)
        {
            var info = Map(s.Summary(), unread);
            info.State = s.Status;
            info.Runs = s.Runs;
            info.Created = s.Definition?.Created ?? s.FirstAt;
            info.LastActivity = s.LastAt;
            info.Transport = s.Definition?.Transport.ToString() ?? "";
            // A journal outside the default folder is named in the command, as it was given to Start-MailCampaign.
            var shard = s.Definition?.Shard != null ? Shard.Parse(s.Definition.Shard) : null;
            info.Shard = shard?.ToString();
            if (where.Store == null)
                where = string.Equals(Path.GetFullPath(s.Path), Path.GetFullPath(FileJournalStore.Default.IdFor(info.Name, shard)), StringComparison.Ordinal) ? JournalWhere.Default : JournalWhere.File(s.Path);
            info.NextStep = NextStep(info, s.Definition?.SourcePath == null, s.Definition?.Transport.NeedsCallerSecret == true, where.WithShard(shard));
            return info;
        }

        /// <summary>A campaign split among workers, whole: its shards' counts summed, its state the one that most needs a look, and the shards beside it.</summary>
        public static MailCampaignInfo Whole(IReadOnlyList<MailCampaignInfo> shards)
        {
            var first = shards[0];
            string[] order = { "Paused", "Running", "Stopped", "Incomplete", "New", "Completed" };
            var state = shards.Select(s => s.State).OrderBy(s => Array.IndexOf(order, s) < 0 ? order.Length : Array.IndexOf(order, s)).First();
            int parts = shards.Select(s => s.Shard == null ? 0 : Core.Campaigns.Shard.Parse(s.Shard).Count).DefaultIfEmpty(0).Max();
            return new MailCampaignInfo
            {
                Name = first.Name,
                State = shards.Count < parts && state == "Completed" ? "Incomplete" : state,
                Shard = $"{shards.Count} of {parts} shards",
                Shards = shards.OrderBy(s => s.Shard, StringComparer.Ordinal).ToArray(),
                Recipients = shards.Sum(s => s.Recipients),
                Sent = shards.Sum(s => s.Sent),
                Failed = shards.Sum(s => s.Failed),
                Deferred = shards.Sum(s => s.Deferred),
                Uncertain = shards.Sum(s => s.Uncertain),
                Pending = shards.Sum(s => s.Pending),
                Duplicates = shards.Sum(s => s.Duplicates),
                Remaining = shards.Sum(s => s.Remaining),
                Runs = shards.Sum(s => s.Runs),
                InputComplete = shards.Count == parts && shards.All(s => s.InputComplete),
                RowsRead = shards.Max(s => s.RowsRead),
                Created = shards.Min(s => s.Created),
                LastActivity = shards.Max(s => s.LastActivity),
                PauseReason = shards.Select(s => s.PauseReason).FirstOrDefault(r => r != null),
                LastError = shards.Select(s => s.LastError).FirstOrDefault(r => r != null),
                Transport = first.Transport,
                JournalPath = string.Join(", ", shards.Select(s => s.JournalPath)),
                NextStep = string.Join("; ", shards.Select(s => s.NextStep).Where(n => n != null)) is { Length: > 0 } next ? next : null,
            };
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
        public static IEnumerable<string> Warnings(MailCampaignInfo info, JournalWhere where, bool needsTransport)
        {
            if (info.State == "Incomplete")
                yield return $"Campaign '{info.Name}' has done every row it was given, but its input was never read to its end ({info.RowsRead} row(s) read): " +
                             $"rows after those were never seen. To send them, pipe the same input again: {info.NextStep} (rows already in the journal are skipped).";
            if (info.Uncertain > 0)
                yield return $"{info.Uncertain} recipient(s) of campaign '{info.Name}' are Uncertain: each message was on its way when a run stopped, and may or may not have arrived; " +
                             $"they were not sent again. List them: Get-MailCampaign -Name '{info.Name.Replace("'", "''")}'{StoreArguments(where)} -Recipients -Status Uncertain. " +
                             $"Send them again (a recipient may then get it twice): {ResumeCommand(info.Name, where, needsTransport, false, " -ResendUncertain")}";
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
        public static string ResumeCommand(string name, JournalWhere where, bool needsTransport, bool pipeInput, string extra = "")
        {
            var command = $"Start-MailCampaign -Name '{name.Replace("'", "''")}' -Resume" + where.Arguments +
                          (needsTransport ? " -Transport $transport" : "") + extra;
            return pipeInput ? "<the same input> | " + command : command;
        }

        /// <summary>What is left to do, as a command: resume, pipe the input again, or look at and resend the uncertain.</summary>
        public static string? NextStep(MailCampaignInfo info, bool piped, bool needsTransport, JournalWhere where)
        {
            bool moreInput = piped && !info.InputComplete;
            if (info.State != "Completed" || info.Remaining > 0 || moreInput)
                return ResumeCommand(info.Name, where, needsTransport, moreInput);
            if (info.Uncertain > 0)
                return $"Get-MailCampaign -Name '{info.Name.Replace("'", "''")}'{StoreArguments(where)} -Recipients -Status Uncertain; " +
                       ResumeCommand(info.Name, where, needsTransport, false, " -ResendUncertain");
            return null;
        }

        /// <summary>Get-MailCampaign's own way to the same journal (a store; a file outside the default folder is named by -JournalPath alone).</summary>
        private static string StoreArguments(JournalWhere where) => where.Store != null ? where.WithShard(null).Arguments : "";

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

        /// <summary>Journals of a store whose campaign names match (a shard's journal matches by its campaign's name).</summary>
        public static string[] Find(string pattern, JournalStore store)
        {
            var wildcard = new System.Management.Automation.WildcardPattern(pattern, System.Management.Automation.WildcardOptions.IgnoreCase);
            bool Matches(string id)
            {
                var stem = store.NameOf(id);
                var campaign = Shard.FromStem(stem)?.Campaign ?? stem;
                return wildcard.IsMatch(stem) || wildcard.IsMatch(campaign) || wildcard.IsMatch(JournalSnapshot.ReadName(store, id) ?? stem);
            }
            return store.List().Where(Matches).OrderBy(f => f, StringComparer.Ordinal).ToArray();
        }
    }
}
