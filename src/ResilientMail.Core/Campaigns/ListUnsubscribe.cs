using System;
using System.Collections.Generic;
using System.Linq;
using System.Threading;
using ResilientMail.Core.Messages;

namespace ResilientMail.Core.Campaigns
{
    /// <summary>A campaign's List-Unsubscribe headers (RFC 2369), with the one-click form of RFC 8058 when there is an https URL.</summary>
    internal sealed class ListUnsubscribe
    {
        private readonly Template? _url;
        private readonly Template? _mailto;

        public ListUnsubscribe(CampaignDefinition definition)
        {
            if (definition.UnsubscribeUrl != null) _url = new Template(definition.UnsubscribeUrl);
            if (definition.UnsubscribeMailto != null) _mailto = new Template(definition.UnsubscribeMailto);
        }

        /// <summary>The columns its templates use, with the field they are used in.</summary>
        public IEnumerable<(string Field, string Name)> Placeholders =>
            (_url?.Names.Select(n => ("UnsubscribeUrl", n)) ?? Enumerable.Empty<(string, string)>())
            .Concat(_mailto?.Names.Select(n => ("UnsubscribeMailto", n)) ?? Enumerable.Empty<(string, string)>());

        /// <summary>The spec with the headers for <paramref name="row"/> added (unchanged when the campaign has none).</summary>
        public MessageSpec Apply(MessageSpec spec, IReadOnlyDictionary<string, object?> row)
        {
            var parts = new List<string>();
            string? url = null;
            if (_url != null)
            {
                url = RenderUrl(_url, row, "UnsubscribeUrl");
                parts.Add($"<{url}>");
            }
            if (_mailto != null)
            {
                var mailto = RenderUrl(_mailto, row, "UnsubscribeMailto");
                parts.Add($"<{(mailto.StartsWith("mailto:", StringComparison.OrdinalIgnoreCase) ? mailto : "mailto:" + mailto)}>");
            }
            if (parts.Count == 0) return spec;
            var headers = spec.Headers.ToList();
            headers.Add(new KeyValuePair<string, string>("List-Unsubscribe", string.Join(", ", parts)));
            if (url != null && url.StartsWith("https://", StringComparison.OrdinalIgnoreCase))
                headers.Add(new KeyValuePair<string, string>("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"));
            return spec with { Headers = headers };
        }

        /// <summary>Values placed into a URL are percent-encoded, so an address or a name cannot break it.</summary>
        private static string RenderUrl(Template template, IReadOnlyDictionary<string, object?> row, string field)
        {
            var encoded = new Dictionary<string, object?>(StringComparer.OrdinalIgnoreCase);
            foreach (var name in template.Names)
                if (row.TryGetValue(name, out var v)) encoded[name] = Uri.EscapeDataString(v?.ToString() ?? "");
            return template.Render(encoded, field);
        }
    }

    /// <summary>How many recipients are in each state, kept as records are written, so a summary never replays the journal. Thread-safe.</summary>
    internal sealed class CampaignCounts
    {
        private readonly long[] _counts = new long[Enum.GetValues(typeof(RecipientState)).Length];
        private long _duplicates;

        public CampaignCounts(JournalSnapshot previous)
        {
            foreach (var state in previous.States.Values) _counts[(int)state]++;
            _duplicates = previous.Duplicates;
        }

        public void Add(RecipientState state) => Interlocked.Increment(ref _counts[(int)state]);

        public void Move(RecipientState from, RecipientState to)
        {
            Interlocked.Decrement(ref _counts[(int)from]);
            Interlocked.Increment(ref _counts[(int)to]);
        }

        public void AddDuplicate() => Interlocked.Increment(ref _duplicates);

        public long this[RecipientState state] => Interlocked.Read(ref _counts[(int)state]);
        public long Total => _counts.Sum();
        public long Duplicates => Interlocked.Read(ref _duplicates);

        /// <summary>The counts as a summary: one mapping for a run's end and for a journal read back.</summary>
        public CampaignSummary Summary(string name, CampaignState state) => new CampaignSummary(name, state)
        {
            Recipients = Total,
            Sent = this[RecipientState.Sent],
            Failed = this[RecipientState.FailedPermanent],
            Deferred = this[RecipientState.FailedTransient],
            // "sending" in a journal read back is a message in flight when its run stopped: it may have been delivered.
            Uncertain = this[RecipientState.Uncertain] + this[RecipientState.Sending],
            Pending = this[RecipientState.Pending],
            Duplicates = Duplicates,
        };
    }
}
