using System;
using System.Globalization;
using System.Management.Automation;

namespace ResilientMail.Internal
{
    /// <summary>
    /// Lets a TimeSpan parameter take a plain number as seconds (-Timeout 30), a TimeSpan
    /// (New-TimeSpan -Minutes 5), or a TimeSpan string ('00:05:00'). Without it, PowerShell would
    /// read 30 as 30 ticks.
    /// </summary>
    [AttributeUsage(AttributeTargets.Property | AttributeTargets.Field)]
    public sealed class TimeSpanArgumentAttribute : ArgumentTransformationAttribute
    {
        // "2h45m", "90m", "1d", "30s", "1h30m15s": what a person writes for a duration.
        private static readonly System.Text.RegularExpressions.Regex Units = new System.Text.RegularExpressions.Regex(
            @"^(?=\d)(?:(\d+(?:\.\d+)?)d)?(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m(?:in)?)?(?:(\d+(?:\.\d+)?)s)?$",
            System.Text.RegularExpressions.RegexOptions.IgnoreCase | System.Text.RegularExpressions.RegexOptions.CultureInvariant);
        public override object Transform(EngineIntrinsics engineIntrinsics, object inputData)
        {
            var value = inputData is PSObject ps ? ps.BaseObject : inputData;
            switch (value)
            {
                case TimeSpan span:
                    return span;
                case int i: return TimeSpan.FromSeconds(i);
                case long l: return TimeSpan.FromSeconds(l);
                case double d: return TimeSpan.FromSeconds(d);
                case decimal m: return TimeSpan.FromSeconds((double)m);
                // PowerShell reads 2s, 2l, 2u, 2y as numbers of another type (short, long, uint, byte): seconds too.
                case short _: case ushort _: case byte _: case sbyte _: case uint _: case ulong _: case float _:
                    return TimeSpan.FromSeconds(Convert.ToDouble(value, CultureInfo.InvariantCulture));
                case string s:
                    if (double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out var seconds)) return TimeSpan.FromSeconds(seconds);
                    if (TimeSpan.TryParse(s, CultureInfo.InvariantCulture, out var parsed)) return parsed;
                    var units = Units.Match(s.Trim());
                    if (units.Success && units.Length > 0)
                    {
                        double Part(int g) => units.Groups[g].Success ? double.Parse(units.Groups[g].Value, CultureInfo.InvariantCulture) : 0;
                        return TimeSpan.FromDays(Part(1)) + TimeSpan.FromHours(Part(2)) + TimeSpan.FromMinutes(Part(3)) + TimeSpan.FromSeconds(Part(4));
                    }
                    throw new ArgumentTransformationMetadataException($"'{s}' is neither a number of seconds nor a time span like 00:05:00 or 2h45m.");
                default:
                    return inputData;
            }
        }
    }
}
