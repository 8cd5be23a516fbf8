using System;
using System.Globalization;
using System.Management.Automation;
using System.Text;

namespace ResilientMail.Internal
{
    /// <summary>
    /// -Encoding in the forms Send-MailMessage takes: an Encoding object, a name (utf8, utf8BOM, utf8NoBOM, ascii, unicode,
    /// bigendianunicode, utf32, latin1, oem, default, or any charset name such as iso-8859-1), or a code page number.
    /// </summary>
    [AttributeUsage(AttributeTargets.Property)]
    internal sealed class EncodingArgumentAttribute : ArgumentTransformationAttribute
    {
        public override object? Transform(EngineIntrinsics engineIntrinsics, object? inputData)
        {
            var value = inputData is PSObject ps ? ps.BaseObject : inputData;
            switch (value)
            {
                case null: return null;
                case Encoding e: return e;
                case int codePage: return Encoding.GetEncoding(codePage);
                case string name:
                    switch (name.Trim().ToLowerInvariant())
                    {
                        case "utf8": case "utf8bom": case "utf8nobom": case "utf-8": case "default": return new UTF8Encoding(false);
                        case "ascii": return Encoding.ASCII;
                        case "unicode": return Encoding.Unicode;
                        case "bigendianunicode": return Encoding.BigEndianUnicode;
                        case "utf32": return Encoding.UTF32;
                        case "latin1": return Encoding.GetEncoding(28591);
                        case "oem": return Encoding.GetEncoding(CultureInfo.CurrentCulture.TextInfo.OEMCodePage);
                    }
                    if (int.TryParse(name, NumberStyles.Integer, CultureInfo.InvariantCulture, out var page)) return Encoding.GetEncoding(page);
                    try { return Encoding.GetEncoding(name); }
                    catch (ArgumentException ex) { throw new ArgumentTransformationMetadataException($"'{name}' is not an encoding this machine knows: use utf8, ascii, unicode, latin1, or a charset name.", ex); }
            }
            throw new ArgumentTransformationMetadataException($"Cannot use a {value.GetType().Name} as an encoding.");
        }
    }
}
