using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Net.Http;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using System.Threading;
using System.Threading.Tasks;
using MimeKit;
using ResilientMail.Core.Identity;
using ResilientMail.Core.Resilience;
using ResilientMail.Core.Transports.Http;

namespace ResilientMail.Core.Transports.Graph
{
    public sealed record GraphOptions
    {
        public static readonly Uri DefaultBaseUri = new Uri("https://graph.microsoft.com/v1.0/");

        /// <summary>The mailbox that sends (its address or object id): /users/{mailbox}/sendMail.</summary>
        public string Mailbox { get; init; } = "";
        /// <summary>Graph's root with its version: the public cloud by default, a national cloud (graph.microsoft.us, microsoftgraph.chinacloudapi.cn) or a test server.</summary>
        public Uri BaseUri { get; init; } = DefaultBaseUri;
        public TokenSource? Tokens { get; init; }
        public TimeSpan Timeout { get; init; } = Defaults.Timeout;

        /// <summary>The token scope for this Graph: its host's ".default" (https://graph.microsoft.com/.default).</summary>
        public static string ScopeFor(Uri baseUri) => baseUri.GetLeftPart(UriPartial.Authority) + "/.default";
    }

    /// <summary>
    /// Microsoft Graph: the message goes as MIME, so its headers, List-Unsubscribe, attachments and Message-ID are what SMTP
    /// would send. Up to Graph's 4 MB request limit it is one POST /users/{mailbox}/sendMail (base64 MIME); a larger one is
    /// made a draft (the MIME without its largest attachments), the attachments follow (upload sessions in 320 KiB-aligned
    /// ranges for 3 MB and more, up to Graph's 150 MB), and the draft is sent. Only the last request can deliver: a lost
    /// answer to it is Uncertain, a failure before it leaves nothing sent (the draft is deleted). A 401 renews the token
    /// once and tries again.
    /// </summary>
    public sealed class GraphTransport : HttpMailTransport
    {
        /// <summary>Graph's limit on one request.</summary>
        internal const int MaxRequestBytes = 4 * 1024 * 1024;
        /// <summary>Attachments from here go through an upload session; smaller ones in one POST.</summary>
        internal const int UploadSessionFrom = 3 * 1024 * 1024;
        /// <summary>Upload ranges must be multiples of 320 KiB; ten of them stay under 4 MB.</summary>
        internal const int UploadChunk = 10 * 320 * 1024;
        private const long MaxAttachment = 150L * 1024 * 1024;
        private readonly GraphOptions _options;
        private readonly TokenSource _tokens;
        private readonly string _user;

        public GraphTransport(GraphOptions options) : this(options, null, null) { }

        internal GraphTransport(GraphOptions options, TimeProvider? time, HttpMessageHandler? handler)
            : base("Microsoft Graph", WithSlash((options ?? throw new ArgumentNullException(nameof(options))).BaseUri), options.Timeout, time, handler)
        {
            if (string.IsNullOrWhiteSpace(options.Mailbox)) throw new SettingException("Mailbox", "Microsoft Graph sends from a mailbox: name it (its address, or its object id).");
            _options = options;
            _tokens = options.Tokens ?? throw new SettingException("Token", "Microsoft Graph needs a way to get tokens.");
            _user = "users/" + Uri.EscapeDataString(options.Mailbox.Trim()) + "/";
            Http.BaseAddress = BaseUri;
        }

        public override string Description => $"Microsoft Graph {BaseUri.GetLeftPart(UriPartial.Authority)} as {_options.Mailbox}";

        /// <summary>Graph serves at most 4 concurrent requests per mailbox (more are answered 429).</summary>
        public const int MaxConcurrentRequests = 4;

        protected override async Task<Receipt> SendCoreAsync(MimeMessage message, SendAttempt attempt, CancellationToken cancellationToken)
        {
            byte[] mime = Serialize(message);
            if (Base64Length(mime.Length) <= MaxRequestBytes - 16 * 1024) // one request: sendMail
            {
                using var response = await CallAsync(() => Base64Request(HttpMethod.Post, _user + "sendMail", mime), attempt, true, cancellationToken).ConfigureAwait(false);
                await EnsureAsync(response, attempt, "sendMail").ConfigureAwait(false);
                return new Receipt(message.MessageId ?? "", $"{(int)response.StatusCode} {response.StatusCode}");
            }
            return await SendLargeAsync(message, mime, attempt, cancellationToken).ConfigureAwait(false);
        }

        private async Task<Receipt> SendLargeAsync(MimeMessage message, byte[] mime, SendAttempt attempt, CancellationToken cancellationToken)
        {
            var (draft, moved) = Split(mime);
            string? id = null;
            try
            {
                using (var created = await CallAsync(() => Base64Request(HttpMethod.Post, _user + "messages", Serialize(draft)), attempt, false, cancellationToken).ConfigureAwait(false))
                {
                    await EnsureAsync(created, attempt, "creating the draft").ConfigureAwait(false);
                    id = ReadString(await created.Content.ReadAsStringAsync().ConfigureAwait(false), "id")
                        ?? throw new MailDeliveryException(new Failure(FailureKind.Permanent, FailureReason.Protocol, "Microsoft Graph created the draft but gave no id."));
                }
                var draftPath = _user + "messages/" + Uri.EscapeDataString(id) + "/";
                foreach (var attachment in moved)
                {
                    if (attachment.Content.Length >= UploadSessionFrom) await UploadAsync(draftPath, attachment, attempt, cancellationToken).ConfigureAwait(false);
                    else
                    {
                        var body = JsonSerializer.Serialize(new Dictionary<string, object?>
                        {
                            ["@odata.type"] = "#microsoft.graph.fileAttachment",
                            ["name"] = attachment.Name, ["contentType"] = attachment.ContentType, ["contentBytes"] = Convert.ToBase64String(attachment.Content),
                            ["isInline"] = attachment.ContentId != null, ["contentId"] = attachment.ContentId,
                        });
                        using var added = await CallAsync(() => JsonRequest(HttpMethod.Post, draftPath + "attachments", body), attempt, false, cancellationToken).ConfigureAwait(false);
                        await EnsureAsync(added, attempt, "attaching " + attachment.Name).ConfigureAwait(false);
                    }
                }
                // The one request that delivers: from here a lost answer leaves the message Uncertain.
                using var sent = await CallAsync(() => new HttpRequestMessage(HttpMethod.Post, draftPath + "send") { Content = new ByteArrayContent(new byte[0]) }, attempt, true, cancellationToken).ConfigureAwait(false);
                await EnsureAsync(sent, attempt, "sending the draft").ConfigureAwait(false);
                id = null;
                return new Receipt(message.MessageId ?? "", $"{(int)sent.StatusCode} {sent.StatusCode} (draft with {moved.Count} uploaded attachment{(moved.Count == 1 ? "" : "s")})");
            }
            finally
            {
                if (id != null && !attempt.BodySent) await DeleteDraftAsync(id).ConfigureAwait(false);
            }
        }

        private async Task UploadAsync(string draftPath, Attachment attachment, SendAttempt attempt, CancellationToken cancellationToken)
        {
            if (attachment.Content.Length > MaxAttachment)
                throw new MailDeliveryException(new Failure(FailureKind.Permanent, FailureReason.MessageTooLarge,
                    $"The attachment {attachment.Name} is {attachment.Content.Length / 1048576.0:0.#} MB; Microsoft Graph takes attachments up to 150 MB."));
            var session = JsonSerializer.Serialize(new
            {
                AttachmentItem = new { attachmentType = "file", name = attachment.Name, size = attachment.Content.LongLength, contentType = attachment.ContentType, isInline = attachment.ContentId != null, contentId = attachment.ContentId },
            });
            string uploadUrl;
            using (var created = await CallAsync(() => JsonRequest(HttpMethod.Post, draftPath + "attachments/createUploadSession", session), attempt, false, cancellationToken).ConfigureAwait(false))
            {
                await EnsureAsync(created, attempt, "opening an upload session for " + attachment.Name).ConfigureAwait(false);
                uploadUrl = ReadString(await created.Content.ReadAsStringAsync().ConfigureAwait(false), "uploadUrl")
                    ?? throw new MailDeliveryException(new Failure(FailureKind.Permanent, FailureReason.Protocol, "Microsoft Graph opened an upload session without an uploadUrl."));
            }
            var total = attachment.Content.Length;
            for (int offset = 0; offset < total; offset += UploadChunk)
            {
                int length = Math.Min(UploadChunk, total - offset);
                // The upload URL carries its own authorisation: no token goes to it.
                var request = new HttpRequestMessage(HttpMethod.Put, uploadUrl) { Content = new ByteArrayContent(attachment.Content, offset, length) };
                request.Content.Headers.ContentRange = new ContentRangeHeaderValue(offset, offset + length - 1, total);
                NotTheDelivery(request);
                using var response = await Http.SendAsync(request, HttpCompletionOption.ResponseContentRead, cancellationToken).ConfigureAwait(false);
                await EnsureAsync(response, attempt, $"uploading {attachment.Name} (bytes {offset}-{offset + length - 1} of {total})").ConfigureAwait(false);
            }
        }

        private async Task DeleteDraftAsync(string id)
        {
            try
            {
                using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10));
                var token = await _tokens.GetAsync(cts.Token).ConfigureAwait(false);
                using var request = new HttpRequestMessage(HttpMethod.Delete, _user + "messages/" + Uri.EscapeDataString(id));
                request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token.Value.Reveal());
                using var _ = await Http.SendAsync(request, cts.Token).ConfigureAwait(false);
            }
            catch (Exception) { } // a draft left in the mailbox is untidy, not harmful; the failure that got here is what counts
        }

        /// <summary>One Graph call with a token; a 401 renews the token once and makes the call again.</summary>
        private async Task<HttpResponseMessage> CallAsync(Func<HttpRequestMessage> make, SendAttempt attempt, bool delivers, CancellationToken cancellationToken)
        {
            for (int round = 0; ; round++)
            {
                var token = await _tokens.GetAsync(cancellationToken).ConfigureAwait(false);
                var request = make();
                request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token.Value.Reveal());
                if (!delivers) NotTheDelivery(request);
                var response = await Http.SendAsync(request, HttpCompletionOption.ResponseContentRead, cancellationToken).ConfigureAwait(false);
                if ((int)response.StatusCode != 401 || round > 0 || !_tokens.Invalidate(token)) return response;
                Answered(attempt); // refused with an answer: not delivered
                response.Dispose();
            }
        }

        private async Task EnsureAsync(HttpResponseMessage response, SendAttempt attempt, string step)
        {
            int status = (int)response.StatusCode;
            if (status >= 200 && status < 300) return;
            Answered(attempt);
            var body = await response.Content.ReadAsStringAsync().ConfigureAwait(false);
            var (code, text) = GraphError(body);
            var retryAfter = HttpFailures.RetryAfter(response.Headers, Time.GetUtcNow());
            throw new MailDeliveryException(Classify(status, code, text, retryAfter, response.Headers.Location, step));
        }

        internal Failure Classify(int status, string? code, string? text, TimeSpan? retryAfter, Uri? location, string step)
        {
            var detail = code != null ? $"{code}: {text}" : text;
            var reply = $"{status} {detail}".Trim();
            Failure Stop(FailureReason reason, string message) =>
                new Failure(FailureKind.Permanent, reason, message + $" (Microsoft Graph, {step}: {reply})") { ServerReply = reply, StatusCode = status, Remedy = Remedy.Microsoft365 };
            var mailbox = _options.Mailbox;
            switch (status)
            {
                case 401:
                    return Stop(FailureReason.Authentication, $"Microsoft Graph refused the token for {mailbox} ({_tokens.Description}){(_tokens.CanRenew ? " even after renewing it" : "; a token passed in cannot be renewed: get a new one, or let the module get them")}.");
                case 403 when code == "ErrorSendAsDenied":
                    return Stop(FailureReason.Authentication, $"{mailbox} may not send as the message's From address: send From the mailbox itself, or grant it Send As on that address (Add-RecipientPermission).");
                case 403 when (text ?? "").IndexOf("AccessPolicy", StringComparison.OrdinalIgnoreCase) >= 0 || (text ?? "").IndexOf("RAOP", StringComparison.Ordinal) >= 0:
                    return Stop(FailureReason.Authentication, $"An application access policy keeps the app from {mailbox}: add the mailbox to the policy's mail-enabled security group, " +
                        $"then check with Test-ApplicationAccessPolicy -Identity {mailbox} -AppId <client id> (changes take up to an hour).");
                case 403:
                    return Stop(FailureReason.Authentication, $"The app may not send mail as {mailbox}: give it the Microsoft Graph application permission Mail.Send and grant admin consent " +
                        "(a token without the Mail.Send role is refused like this).");
                case 404 when code == "ErrorInvalidUser" || code == "ResourceNotFound" || code == "MailboxNotEnabledForRESTAPI":
                case 400 when code == "MailboxNotEnabledForRESTAPI":
                    return Stop(FailureReason.ProviderSuspended, code == "MailboxNotEnabledForRESTAPI"
                        ? $"The mailbox {mailbox} cannot send through Graph: it has no Exchange Online licence, is inactive, or is on-premises."
                        : $"There is no mailbox {mailbox} in this tenant: check the address (or use the mailbox's object id).");
                case 400 when code == "ErrorInvalidRecipients":
                    return new Failure(FailureKind.Permanent, FailureReason.RecipientRejected, $"Microsoft Graph refused a recipient ({reply}).") { ServerReply = reply, StatusCode = status };
                case 400 when code == "ErrorMessageSizeExceeded":
                case 413:
                    return new Failure(FailureKind.Permanent, FailureReason.MessageTooLarge, $"Microsoft Graph refused the message as too large ({reply}).") { ServerReply = reply, StatusCode = status };
                default:
                    return HttpFailures.FromStatus(Provider, status, detail, retryAfter, location);
            }
        }

        private static void Answered(SendAttempt attempt) => attempt.Settle(Array.Empty<string>(), Array.Empty<RecipientRefusal>());

        private static HttpRequestMessage Base64Request(HttpMethod method, string path, byte[] mime) =>
            new HttpRequestMessage(method, path) { Content = new StringContent(Convert.ToBase64String(mime), Encoding.ASCII, "text/plain") };

        private static HttpRequestMessage JsonRequest(HttpMethod method, string path, string json) =>
            new HttpRequestMessage(method, path) { Content = new StringContent(json, Encoding.UTF8, "application/json") };

        private static byte[] Serialize(MimeMessage message)
        {
            using var buffer = new MemoryStream();
            message.WriteTo(FormatOptions.Default, buffer);
            return buffer.ToArray();
        }

        private static long Base64Length(long bytes) => (bytes + 2) / 3 * 4;

        /// <summary>Whether a message, as base64, fits one Graph request (its size is counted, not kept).</summary>
        private static bool Fits(MimeMessage message)
        {
            using var counter = new MimeKit.IO.MeasuringStream();
            message.WriteTo(FormatOptions.Default, counter);
            return Base64Length(counter.Length) <= MaxRequestBytes - 16 * 1024;
        }

        internal sealed record Attachment(string Name, string ContentType, string? ContentId, byte[] Content);

        /// <summary>A copy of the message without its largest attachments, small enough for one request, and those attachments.</summary>
        internal static (MimeMessage Draft, List<Attachment> Moved) Split(MimeMessage message) => Split(Serialize(message));

        /// <summary>The same, from the message as it was serialised for sending (a copy: a retry sends the original whole).</summary>
        internal static (MimeMessage Draft, List<Attachment> Moved) Split(byte[] mime)
        {
            var draft = MimeMessage.Load(new MemoryStream(mime));
            var parts = new List<(Multipart Parent, MimePart Part, long Size)>();
            void Walk(Multipart multipart)
            {
                foreach (var entity in multipart)
                {
                    if (entity is Multipart inner) Walk(inner);
                    else if (entity is MimePart part && part.IsAttachment) parts.Add((multipart, part, part.Content?.Stream?.Length ?? 0));
                }
            }
            if (draft.Body is Multipart root) Walk(root);
            var moved = new List<Attachment>();
            foreach (var (parent, part, _) in parts.OrderByDescending(p => p.Size))
            {
                if (Fits(draft)) break;
                using var content = new MemoryStream();
                part.Content.DecodeTo(content);
                moved.Add(new Attachment(part.FileName ?? "attachment", part.ContentType.MimeType, part.ContentId, content.ToArray()));
                parent.Remove(part);
            }
            if (!Fits(draft))
                throw new MailDeliveryException(new Failure(FailureKind.Permanent, FailureReason.MessageTooLarge,
                    "The message is too large for Microsoft Graph even without its attachments (the body and headers alone exceed the 4 MB request limit)."));
            return (draft, moved);
        }

        private static (string? Code, string? Message) GraphError(string body)
        {
            if (string.IsNullOrWhiteSpace(body)) return (null, null);
            try
            {
                using var doc = JsonDocument.Parse(body);
                if (doc.RootElement.ValueKind == JsonValueKind.Object && doc.RootElement.TryGetProperty("error", out var error) && error.ValueKind == JsonValueKind.Object)
                {
                    string? Text(string name) => error.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;
                    return (Text("code"), Text("message"));
                }
            }
            catch (JsonException) { }
            return (null, body.Length > 300 ? body.Substring(0, 300) : body);
        }

        private static string? ReadString(string body, string name)
        {
            try
            {
                using var doc = JsonDocument.Parse(body);
                return doc.RootElement.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;
            }
            catch (JsonException) { return null; }
        }

        private static Uri WithSlash(Uri uri) => uri.AbsoluteUri.EndsWith("/") ? uri : new Uri(uri.AbsoluteUri + "/");
    }
}
