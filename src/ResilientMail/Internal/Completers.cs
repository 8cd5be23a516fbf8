using System;
using System.Collections;
using System.Collections.Generic;
using System.Linq;
using System.Management.Automation;
using System.Management.Automation.Language;

namespace ResilientMail.Internal
{
    internal static class Completion
    {
        public static IEnumerable<CompletionResult> Matching(IEnumerable<string> values, string word, Func<string, string>? tooltip = null)
        {
            var prefix = (word ?? "").Trim('\'', '"');
            var pattern = new WildcardPattern(prefix + "*", WildcardOptions.IgnoreCase);
            foreach (var value in values.Distinct(StringComparer.OrdinalIgnoreCase).OrderBy(v => v, StringComparer.OrdinalIgnoreCase))
            {
                if (!pattern.IsMatch(value)) continue;
                var text = value.IndexOfAny(new[] { ' ', '\'', '"', '$', '`', ';', '(', ')', '{', '}', ',', '&', '@', '#' }) >= 0 ? "'" + value.Replace("'", "''") + "'" : value;
                yield return new CompletionResult(text, value, CompletionResultType.ParameterValue, tooltip?.Invoke(value) ?? value);
            }
        }
    }

    /// <summary>-Name of the campaign cmdlets: the campaigns with a journal in the per-user data folder.</summary>
    public sealed class CampaignNameCompleter : IArgumentCompleter
    {
        public IEnumerable<CompletionResult> CompleteArgument(string commandName, string parameterName, string wordToComplete, CommandAst commandAst, IDictionary fakeBoundParameters)
        {
            // The local folder's campaigns (a store would cost a network call per key press); a campaign split into shards once.
            var store = Core.Campaigns.FileJournalStore.Default;
            string[] names;
            try { names = CampaignInfo.Find("*", store).Select(id => Core.Campaigns.JournalSnapshot.ReadName(store, id) ?? store.NameOf(id)).Distinct().ToArray(); }
            catch (Exception) { return Array.Empty<CompletionResult>(); }
            return Completion.Matching(names, wordToComplete, name => $"Campaign {name}");
        }
    }

    /// <summary>-Region of New-MailTransport -Ses: the regions AWSSDK.Core knows.</summary>
    public sealed class SesRegionCompleter : IArgumentCompleter
    {
        public IEnumerable<CompletionResult> CompleteArgument(string commandName, string parameterName, string wordToComplete, CommandAst commandAst, IDictionary fakeBoundParameters) =>
            Completion.Matching(Core.Transports.Ses.SesOptions.KnownRegions(), wordToComplete);
    }

    /// <summary>-Transport: the variables of this session that hold a transport from New-MailTransport.</summary>
    public sealed class TransportVariableCompleter : IArgumentCompleter
    {
        public IEnumerable<CompletionResult> CompleteArgument(string commandName, string parameterName, string wordToComplete, CommandAst commandAst, IDictionary fakeBoundParameters)
        {
            var found = new List<CompletionResult>();
            var word = (wordToComplete ?? "").TrimStart('$');
            try
            {
                using var ps = PowerShell.Create(RunspaceMode.CurrentRunspace);
                ps.AddCommand("Get-Variable");
                foreach (var item in ps.Invoke())
                {
                    if (!(item?.BaseObject is PSVariable variable)) continue;
                    var value = variable.Value is PSObject wrapped ? wrapped.BaseObject : variable.Value;
                    if (!(value is MailTransport transport)) continue;
                    if (!variable.Name.StartsWith(word, StringComparison.OrdinalIgnoreCase)) continue;
                    found.Add(new CompletionResult("$" + variable.Name, "$" + variable.Name, CompletionResultType.Variable, transport.ToString()));
                }
            }
            catch (Exception)
            {
                // Completion is a convenience: never an error.
            }
            return found.OrderBy(c => c.ListItemText, StringComparer.OrdinalIgnoreCase);
        }
    }
}
