using System.IO;
using System.Linq;
using System.Management.Automation;
using ResilientMail.Core.Campaigns;
using ResilientMail.Internal;

namespace ResilientMail.Commands
{
    /// <summary>Reads campaign journals: a summary per campaign, or one row per recipient with -Recipients.</summary>
    [Cmdlet(VerbsCommon.Get, "MailCampaign", DefaultParameterSetName = "Name")]
    [OutputType(typeof(MailCampaignInfo), typeof(MailCampaignRecipient))]
    public sealed class GetMailCampaignCommand : PSCmdlet
    {
        [Parameter(Position = 0, ParameterSetName = "Name", ValueFromPipelineByPropertyName = true)]
        [SupportsWildcards]
        [ArgumentCompleter(typeof(CampaignNameCompleter))]
        public string Name { get; set; } = "*";

        [Parameter(Mandatory = true, ParameterSetName = "Path", ValueFromPipelineByPropertyName = true)]
        public string JournalPath { get; set; } = "";

        /// <summary>One row per recipient instead of the summary.</summary>
        [Parameter]
        public SwitchParameter Recipients { get; set; }

        /// <summary>With -Recipients: only these states (Pending, Sent, Deferred, Failed, Uncertain).</summary>
        [Parameter]
        [ValidateSet("Pending", "Sent", "Deferred", "Failed", "Uncertain")]
        public string[]? Status { get; set; }

        protected override void ProcessRecord()
        {
            var paths = ParameterSetName == "Path" ? new[] { GetUnresolvedProviderPathFromPSPath(JournalPath) } : CampaignInfo.Find(Name);
            if (paths.Length == 0 && !WildcardPattern.ContainsWildcardCharacters(Name))
            {
                WriteError(new ErrorRecord(new FileNotFoundException($"No campaign named '{Name}' (looked in {CampaignJournal.Folder()})."),
                    "CampaignNotFound", ErrorCategory.ObjectNotFound, Name));
                return;
            }
            foreach (var path in paths)
            {
                if (!File.Exists(path))
                {
                    WriteError(new ErrorRecord(new FileNotFoundException($"No journal at {path}."), "CampaignNotFound", ErrorCategory.ObjectNotFound, path));
                    continue;
                }
                var snapshot = JournalSnapshot.Load(path, withRecipients: Recipients);
                var name = snapshot.Definition?.Name ?? CampaignJournal.NameFromPath(path);
                if (!Recipients)
                {
                    // A CSV campaign can say how many rows it has not read yet.
                    var source = snapshot.Definition?.SourcePath;
                    long unread = source != null && File.Exists(source) ? System.Math.Max(0, CsvRecords.CountRows(source) - snapshot.Rows - snapshot.Duplicates) : 0;
                    WriteObject(CampaignInfo.From(snapshot, unread));
                    continue;
                }
                foreach (var r in snapshot.Recipients!.Values.OrderBy(r => r.Row))
                {
                    var row = CampaignInfo.From(name, r);
                    if (Status == null || Status.Contains(row.Status, System.StringComparer.OrdinalIgnoreCase)) WriteObject(row);
                }
            }
        }
    }
}
