using System;
using System.Globalization;

namespace ResilientMail.Core.Campaigns
{
    /// <summary>
    /// One part of a campaign's recipients, "k/N": the recipients whose key hashes to k among N. The key's hash is
    /// stable (FNV-1a of the normalised address or the key column), so the same list splits the same way on every
    /// machine and every run, and N shards together take every recipient exactly once.
    /// </summary>
    public sealed record Shard(int Index, int Count)
    {
        public static Shard Parse(string text)
        {
            var parts = (text ?? "").Split('/');
            if (parts.Length == 2 && int.TryParse(parts[0].Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out int k) &&
                int.TryParse(parts[1].Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out int n) && n >= 1 && n <= 1000 && k >= 1 && k <= n)
                return new Shard(k, n);
            throw new FormatException($"'{text}' is not a shard: give it as k/N, the part k of N (for example 1/2 and 2/2 on two workers), with N from 1 to 1000.");
        }

        /// <summary>True when the recipient with this key belongs to this shard.</summary>
        public bool Owns(string key) => (int)(RecipientKey.Hash(key) % (ulong)Count) == Index - 1;

        /// <summary>What the shard adds to the campaign's journal name.</summary>
        public string Suffix => $".shard-{Index}-of-{Count}";

        /// <summary>The shard a journal name's stem carries, and the campaign's part of it; null when it is not a shard's.</summary>
        public static (string Campaign, Shard Shard)? FromStem(string stem)
        {
            int at = stem.LastIndexOf(".shard-", StringComparison.Ordinal);
            if (at <= 0) return null;
            var rest = stem.Substring(at + ".shard-".Length).Split(new[] { "-of-" }, StringSplitOptions.None);
            if (rest.Length == 2 && int.TryParse(rest[0], NumberStyles.None, CultureInfo.InvariantCulture, out int k) &&
                int.TryParse(rest[1], NumberStyles.None, CultureInfo.InvariantCulture, out int n) && k >= 1 && k <= n)
                return (stem.Substring(0, at), new Shard(k, n));
            return null;
        }

        public override string ToString() => $"{Index}/{Count}";
    }
}
