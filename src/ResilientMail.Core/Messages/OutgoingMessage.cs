using MimeKit;

namespace ResilientMail.Core.Messages
{
    /// <summary>
    /// A built, validated message as the cmdlets hold it: what they show, without the MIME type itself, so
    /// that MimeKit never has to be resolved from the cmdlet assembly (it lives in Core's load context).
    /// </summary>
    public sealed class OutgoingMessage
    {
        internal OutgoingMessage(MimeMessage mime)
        {
            Mime = mime;
            Recipients = Delivery.Courier.Recipients(mime);
            Subject = mime.Subject ?? "";
        }

        internal MimeMessage Mime { get; }
        /// <summary>Every To, Cc and Bcc address, comma-separated.</summary>
        public string Recipients { get; }
        public string Subject { get; }
    }
}
