using System;
using System.Collections.Generic;
using System.Globalization;
using System.Text;

namespace ResilientMail.Core.Campaigns
{
    /// <summary>Who a row is, for de-duplication and the journal: the normalised address, or a key column's value.</summary>
    public static class RecipientKey
    {
        /// <summary>Trims, drops a display name, lower-cases and Unicode-normalises an address.</summary>
        public static string Normalize(string value)
        {
            var v = (value ?? "").Trim();
            int lt = v.LastIndexOf('<');
            int gt = v.LastIndexOf('>');
            if (lt >= 0 && gt > lt) v = v.Substring(lt + 1, gt - lt - 1).Trim();
            return v.Normalize(NormalizationForm.FormC).ToLowerInvariant();
        }

        /// <summary>A 64-bit FNV-1a hash: a million keys fit in a few megabytes, with a negligible chance of collision.</summary>
        public static ulong Hash(string key)
        {
            ulong h = 14695981039346656037UL;
            foreach (char ch in key)
            {
                h ^= (byte)ch;
                h *= 1099511628211UL;
                h ^= (byte)(ch >> 8);
                h *= 1099511628211UL;
            }
            return h;
        }

        /// <summary>The columns that hold the address when no key column is named, in the order tried.</summary>
        public static readonly string[] AddressColumns =
        {
            "Email", "EmailAddress", "E-mail Address", "Email Address", "E-mail 1 - Value", "PrimarySmtpAddress", "Mail", "To", "Recipient", "Address",
        };

        /// <summary>A row's address: from <paramref name="column"/>, else from the first address column it has; "" when none.</summary>
        public static string AddressOf(IReadOnlyDictionary<string, object?> row, string? column)
        {
            column ??= FindAddressColumn(row.Keys);
            return column != null && row.TryGetValue(column, out var a) ? a?.ToString()?.Trim() ?? "" : "";
        }

        /// <summary>Finds the address column of a header, or null.</summary>
        public static string? FindAddressColumn(IEnumerable<string> columns)
        {
            var set = new HashSet<string>(columns, StringComparer.OrdinalIgnoreCase);
            foreach (var c in AddressColumns)
            {
                if (set.Contains(c))
                {
                    foreach (var col in columns) if (string.Equals(col, c, StringComparison.OrdinalIgnoreCase)) return col;
                }
            }
            return null;
        }
    }
}
