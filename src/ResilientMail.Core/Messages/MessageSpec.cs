using System.Collections.Generic;

namespace ResilientMail.Core.Messages
{
    public enum MessagePriority { Normal, Low, High }

    /// <summary>What one message should be, before templating and validation. Values may hold {{Column}} placeholders.</summary>
    public sealed record MessageSpec
    {
        public string From { get; init; } = "";
        public IReadOnlyList<string> To { get; init; } = new string[0];
        public IReadOnlyList<string> Cc { get; init; } = new string[0];
        public IReadOnlyList<string> Bcc { get; init; } = new string[0];
        public IReadOnlyList<string> ReplyTo { get; init; } = new string[0];
        public string Subject { get; init; } = "";
        public string? TextBody { get; init; }
        public string? HtmlBody { get; init; }
        public IReadOnlyList<string> Attachments { get; init; } = new string[0];
        /// <summary>Extra headers; names and values are checked like every other header.</summary>
        public IReadOnlyList<KeyValuePair<string, string>> Headers { get; init; } = new KeyValuePair<string, string>[0];
        public MessagePriority Priority { get; init; } = MessagePriority.Normal;
        /// <summary>The body's character set; UTF-8 (which any text needs) when null.</summary>
        public System.Text.Encoding? BodyEncoding { get; init; }
    }
}
