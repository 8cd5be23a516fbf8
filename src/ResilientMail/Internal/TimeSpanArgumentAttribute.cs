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
                case string s:
                    if (double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out var seconds)) return TimeSpan.FromSeconds(seconds);
                    if (TimeSpan.TryParse(s, CultureInfo.InvariantCulture, out var parsed)) return parsed;
                    throw new ArgumentTransformationMetadataException($"'{s}' is neither a number of seconds nor a time span like 00:05:00.");
                default:
                    return inputData;
            }
        }
    }
}
