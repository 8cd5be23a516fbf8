using System.Collections;
using System.Collections.Generic;
using System.Linq;
using System.Management.Automation;
using ResilientMail.Core.Messages;

namespace ResilientMail.Internal
{
    /// <summary>A pipeline record as a row of columns for {{Column}} templates: a PSObject's properties, or a hashtable's keys.</summary>
    internal static class Rows
    {
        public static IReadOnlyDictionary<string, object?> Of(PSObject? input)
        {
            if (input == null) return Template.EmptyRow;
            if (input.BaseObject is IDictionary dictionary)
                return Template.Row(dictionary.Cast<DictionaryEntry>().Select(e => new KeyValuePair<string, object?>(e.Key?.ToString() ?? "", Unwrap(e.Value))));
            return Template.Row(input.Properties.Select(p => new KeyValuePair<string, object?>(p.Name, SafeValue(p))));
        }

        /// <summary>Only the columns a template uses: looking up a few properties costs far less than copying every one.</summary>
        public static IReadOnlyDictionary<string, object?> Of(PSObject? input, IReadOnlyList<string> columns)
        {
            if (input == null || columns.Count == 0) return Template.EmptyRow;
            if (input.BaseObject is IDictionary) return Of(input);
            var row = new Dictionary<string, object?>(columns.Count, System.StringComparer.OrdinalIgnoreCase);
            foreach (var name in columns)
            {
                var property = input.Properties[name];
                if (property != null) row[name] = SafeValue(property);
            }
            return row;
        }

        private static object? SafeValue(PSPropertyInfo property)
        {
            try { return Unwrap(property.Value); }
            catch (GetValueException) { return null; }
        }

        private static object? Unwrap(object? value) => value is PSObject ps ? ps.BaseObject : value;
    }
}
