using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using ResilientMail.Core.Transports;

namespace ResilientMail.Core.Campaigns
{
    /// <summary>What a run of a campaign is asked to do, in Core's terms: paths resolved, nothing read yet.</summary>
    public sealed record CampaignRequest
    {
        public string Name { get; init; } = "";
        /// <summary>The journal file; the default one for the name when null.</summary>
        public string? JournalPath { get; init; }
        /// <summary>The store the journal is in (an Azure Blob container); the local folder when null.</summary>
        public JournalStore? Store { get; init; }
        /// <summary>This run's part of the recipients, when the campaign is split among workers.</summary>
        public Shard? Shard { get; init; }
        public bool Resume { get; init; }
        public bool Force { get; init; }
        public bool DryRun { get; init; }
        public string? From { get; init; }
        public string? Subject { get; init; }
        public string? Body { get; init; }
        public string? HtmlBody { get; init; }
        public string? BodyPath { get; init; }
        public string? HtmlBodyPath { get; init; }
        public string[]? ReplyTo { get; init; }
        public string[]? Cc { get; init; }
        public string[]? Bcc { get; init; }
        public IReadOnlyDictionary<string, string>? Headers { get; init; }
        public string[]? Attachments { get; init; }
        public string? UnsubscribeUrl { get; init; }
        public string? UnsubscribeMailto { get; init; }
        public string? KeyColumn { get; init; }
        public string? AddressColumn { get; init; }
        /// <summary>The CSV given with -Path; null for rows from the pipeline.</summary>
        public string? CsvPath { get; init; }
        /// <summary>The transport the caller passed; null to use the journal's.</summary>
        public TransportDescription? Transport { get; init; }
        public DateTimeOffset Now { get; init; }
    }

    /// <summary>Why a campaign cannot start: each kind is one stable ErrorId in the cmdlets.</summary>
    public enum CampaignSetupProblem { NotFound, MissingFrom, MissingSubject, MissingTransport, TemplateUnreadable, AttachmentNotFound, InvalidCampaign, CredentialRequired, ShardMismatch }

    public sealed class CampaignSetupError : Exception
    {
        public CampaignSetupError(CampaignSetupProblem problem, string message, Exception? inner = null) : base(message, inner) => Problem = problem;
        public CampaignSetupProblem Problem { get; }
    }

    /// <summary>Where a run's rows come from.</summary>
    public enum RowSource
    {
        /// <summary>The pipeline (a new campaign, or a resume that is piped the input again).</summary>
        Pipeline,
        /// <summary>A CSV: -Path, or the file a resumed campaign was started with (read again; rows added to it are sent).</summary>
        Csv,
        /// <summary>The journal's own pending rows: a piped campaign resumed by name alone.</summary>
        Journal,
    }

    /// <summary>A campaign run, decided: new or resumed, its definition, its transport, and what the caller must still do.</summary>
    public sealed class CampaignPlan
    {
        internal CampaignPlan(JournalStore store, string journalId, JournalSnapshot previous, CampaignDefinition definition, TransportDescription transport)
        {
            Store = store;
            JournalId = journalId;
            JournalPath = store.Where(journalId);
            Previous = previous;
            Definition = definition;
            Transport = transport;
        }

        /// <summary>Where the journal is, as a person reads it.</summary>
        public string JournalPath { get; }
        public JournalStore Store { get; }
        public string JournalId { get; }
        /// <summary>The journal's pending rows (a piped campaign resumed by name alone).</summary>
        public IEnumerable<JournalRow> PendingRows() => JournalSnapshot.PendingRows(Store, JournalId);
        /// <summary>The journal as the last run left it (empty for a new campaign).</summary>
        public JournalSnapshot Previous { get; }
        public bool Exists => Previous.Definition != null;
        public CampaignDefinition Definition { get; }
        /// <summary>The caller's transport, or the journal's (whose secret the caller must find again where it came from).</summary>
        public TransportDescription Transport { get; }
        public bool TransportFromJournal { get; internal set; }
        /// <summary>Templates given again that differ from the journal's: the journal's are kept (worth a warning).</summary>
        public bool TemplatesDiffer { get; internal set; }
        /// <summary>An existing campaign started without -Resume or -Force: ask before continuing it.</summary>
        public bool AskBeforeContinuing { get; internal set; }
        /// <summary>The rows were piped (not a CSV): a resume by name alone has only the rows read so far.</summary>
        public bool Piped => Definition.SourcePath == null;

        /// <summary>Where this run's rows come from, given whether the pipeline brought any.</summary>
        public RowSource Source(bool pipedRows, string? csvPath)
        {
            if (csvPath != null) return RowSource.Csv;
            if (pipedRows || !Exists) return RowSource.Pipeline;
            return Definition.SourcePath != null && File.Exists(Definition.SourcePath) ? RowSource.Csv : RowSource.Journal;
        }
    }

    /// <summary>Decides a run before anything is journaled or sent; every problem is a <see cref="CampaignSetupError"/>.</summary>
    public static class CampaignSetup
    {
        public static CampaignPlan Plan(CampaignRequest r)
        {
            var store = r.Store ?? (r.JournalPath != null ? new FileJournalStore(Path.GetDirectoryName(Path.GetFullPath(r.JournalPath))!) : FileJournalStore.Default);
            var journalId = r.JournalPath ?? store.IdFor(r.Name, r.Shard);
            var journalPath = store.Where(journalId);
            bool exists = store.Exists(journalId);
            if (r.JournalPath == null) CheckShards(store, r);
            if (r.Resume && !exists)
                throw new CampaignSetupError(CampaignSetupProblem.NotFound, $"Campaign '{r.Name}'{(r.Shard != null ? $" (shard {r.Shard})" : "")} has no journal at {journalPath}; there is nothing to resume.");
            var previous = exists ? JournalSnapshot.Load(store, journalId) : JournalSnapshot.None();
            var definition = previous.Definition ?? NewDefinition(r);
            var transport = r.Transport ?? definition.Transport;
            if (r.Transport == null && transport.NeedsCallerSecret)
            {
                var who = transport switch
                {
                    SmtpDescription smtp => $"authenticates as '{smtp.UserName}'",
                    SendGridDescription _ => "was started with a SendGrid API key passed as a parameter",
                    _ => "was started with an AWS key passed as a parameter",
                };
                throw new CampaignSetupError(CampaignSetupProblem.CredentialRequired,
                    $"Campaign '{r.Name}' {who}. Secrets are never stored in the journal: pass the transport again.");
            }
            try { CampaignRunner.CheckDefinition(definition); }
            catch (CampaignSetupException ex)
            {
                throw new CampaignSetupError(ex.Problem == Messages.ValidationProblem.AttachmentNotFound ? CampaignSetupProblem.AttachmentNotFound : CampaignSetupProblem.InvalidCampaign, ex.Message, ex);
            }
            return new CampaignPlan(store, journalId, previous, definition, transport)
            {
                TransportFromJournal = r.Transport == null,
                TemplatesDiffer = exists && TemplatesDiffer(r, definition),
                AskBeforeContinuing = exists && !r.Resume && !r.Force && !r.DryRun,
            };
        }

        private static CampaignDefinition NewDefinition(CampaignRequest r)
        {
            if (string.IsNullOrWhiteSpace(r.From)) throw new CampaignSetupError(CampaignSetupProblem.MissingFrom, "A new campaign needs a sender (From).");
            if (r.Subject == null) throw new CampaignSetupError(CampaignSetupProblem.MissingSubject, "A new campaign needs a subject.");
            if (r.Transport == null) throw new CampaignSetupError(CampaignSetupProblem.MissingTransport, "A new campaign needs a transport: where its mail goes.");
            return new CampaignDefinition
            {
                Name = r.Name,
                From = r.From!,
                Subject = r.Subject,
                TextBody = r.Body ?? ReadTemplate(r.BodyPath),
                HtmlBody = r.HtmlBody ?? ReadTemplate(r.HtmlBodyPath),
                ReplyTo = r.ReplyTo ?? new string[0],
                Cc = r.Cc ?? new string[0],
                Bcc = r.Bcc ?? new string[0],
                Headers = r.Headers == null ? new Dictionary<string, string>() : new Dictionary<string, string>(r.Headers.ToDictionary()),
                Attachments = r.Attachments ?? new string[0],
                UnsubscribeUrl = r.UnsubscribeUrl,
                UnsubscribeMailto = r.UnsubscribeMailto,
                KeyColumn = r.KeyColumn,
                AddressColumn = r.AddressColumn,
                SourcePath = r.CsvPath,
                Transport = r.Transport,
                Created = r.Now,
                Shard = r.Shard?.ToString(),
            };
        }

        /// <summary>
        /// A campaign is split the same way by every worker, or not at all: a shard of another count (or a whole campaign
        /// beside shards) would take recipients another part already has, and send them twice.
        /// </summary>
        private static void CheckShards(JournalStore store, CampaignRequest r)
        {
            var stem = JournalStore.SafeName(r.Name);
            var counts = new SortedSet<int>();
            bool whole = false;
            foreach (var id in store.List())
            {
                var own = store.NameOf(id);
                if (own == stem) { whole = store.Exists(id); continue; }
                if (Shard.FromStem(own) is { } part && part.Campaign == stem && store.Exists(id)) counts.Add(part.Shard.Count);
            }
            string Parts(int n) => string.Join(", ", System.Linq.Enumerable.Range(1, n).Select(k => $"{k}/{n}"));
            if (r.Shard == null && counts.Count > 0)
                throw new CampaignSetupError(CampaignSetupProblem.ShardMismatch,
                    $"Campaign '{r.Name}' is split into shards ({Parts(counts.Max)}), each with its own journal: run each part with -Shard k/{counts.Max}.");
            if (r.Shard != null && whole)
                throw new CampaignSetupError(CampaignSetupProblem.ShardMismatch,
                    $"Campaign '{r.Name}' already has a journal of its own, not split into shards: a shard would send again what it sent. Run it without -Shard, or choose another name.");
            if (r.Shard != null && counts.Any(n => n != r.Shard.Count))
                throw new CampaignSetupError(CampaignSetupProblem.ShardMismatch,
                    $"Campaign '{r.Name}' is split into {counts.First(n => n != r.Shard.Count)} shards, not {r.Shard.Count}: a different split would send some recipients twice. Use -Shard k/{counts.First(n => n != r.Shard.Count)}.");
        }

        private static bool TemplatesDiffer(CampaignRequest r, CampaignDefinition d) =>
            r.From != null && r.From != d.From || r.Subject != null && r.Subject != d.Subject || r.Body != null && r.Body != d.TextBody ||
            r.HtmlBody != null && r.HtmlBody != d.HtmlBody ||
            r.BodyPath != null && ReadTemplate(r.BodyPath) != d.TextBody || r.HtmlBodyPath != null && ReadTemplate(r.HtmlBodyPath) != d.HtmlBody;

        private static string? ReadTemplate(string? path)
        {
            if (path == null) return null;
            try { return File.ReadAllText(path); }
            catch (Exception ex) when (ex is IOException || ex is UnauthorizedAccessException)
            {
                throw new CampaignSetupError(CampaignSetupProblem.TemplateUnreadable, $"The template {path} cannot be read: {ex.Message}", ex);
            }
        }

        private static Dictionary<string, string> ToDictionary(this IReadOnlyDictionary<string, string> d)
        {
            var copy = new Dictionary<string, string>();
            foreach (var kv in d) copy[kv.Key] = kv.Value;
            return copy;
        }
    }
}
