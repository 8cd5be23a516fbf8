using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Net.Http;
using System.Net.Http.Headers;
using System.Text.Json;
using System.Threading;
using System.Threading.Tasks;
using Amazon.Runtime;
using Amazon.Runtime.CredentialManagement;
using Amazon.Runtime.Credentials;
using MimeKit;
using ResilientMail.Core.Resilience;
using ResilientMail.Core.Transports.Http;

namespace ResilientMail.Core.Transports.Ses
{
    public sealed record SesOptions
    {
        /// <summary>The AWS region (eu-west-1); else the standard AWS region settings (AWS_REGION, the profile's region).</summary>
        public string? Region { get; init; }
        /// <summary>Another endpoint (tests, VPC endpoints); https://email.{region}.amazonaws.com when null.</summary>
        public Uri? EndpointUrl { get; init; }
        /// <summary>A named profile of the shared credentials/config files; the standard chain when null.</summary>
        public string? ProfileName { get; init; }
        /// <summary>Explicit keys: the access key id and its secret. Both or neither.</summary>
        public string? AccessKeyId { get; init; }
        public Secret? SecretAccessKey { get; init; }
        public TimeSpan Timeout { get; init; } = Defaults.Timeout;

        /// <summary>The region this configuration resolves to, or an error that says how to name one.</summary>
        public string ResolveRegion()
        {
            if (!string.IsNullOrWhiteSpace(Region)) return Region!.Trim();
            if (ProfileName != null && new CredentialProfileStoreChain().TryGetProfile(ProfileName, out var profile) && profile.Region != null)
                return profile.Region.SystemName;
            var env = Environment.GetEnvironmentVariable("AWS_REGION") ?? Environment.GetEnvironmentVariable("AWS_DEFAULT_REGION");
            if (!string.IsNullOrWhiteSpace(env)) return env!.Trim();
            var chain = new CredentialProfileStoreChain();
            var name = Environment.GetEnvironmentVariable("AWS_PROFILE") ?? "default";
            if (chain.TryGetProfile(name, out var fallback) && fallback.Region != null) return fallback.Region.SystemName;
            throw new SettingException("Region", "No AWS region is set: name one (for example eu-west-1), set AWS_REGION, or give the profile a region.");
        }

        /// <summary>The credentials the standard AWS chain (or the named profile, or the explicit keys) gives. Secrets stay inside.</summary>
        internal AWSCredentials ResolveCredentials()
        {
            if (AccessKeyId != null || SecretAccessKey != null)
            {
                if (string.IsNullOrWhiteSpace(AccessKeyId) || SecretAccessKey == null)
                    throw new ArgumentException("Explicit AWS keys need both the access key id (user name) and the secret access key (password).");
                return new BasicAWSCredentials(AccessKeyId!.Trim(), SecretAccessKey.Reveal());
            }
            if (ProfileName != null)
            {
                if (!new CredentialProfileStoreChain().TryGetAWSCredentials(ProfileName, out var fromProfile))
                    throw new ArgumentException($"There is no usable AWS profile named '{ProfileName}' in the shared credentials or config files.");
                return fromProfile;
            }
            try
            {
                return DefaultAWSCredentialsIdentityResolver.GetCredentials(null);
            }
            catch (AmazonClientException ex)
            {
                throw new SettingException("Credentials", "No AWS credentials were found (environment variables, shared credentials/config files, SSO, container or instance role). " +
                                            "Name a profile, give an access key id and secret, or configure the AWS CLI. " + ex.Message, ex);
            }
        }

        /// <summary>The region names AWSSDK.Core knows (for argument completion).</summary>
        public static IEnumerable<string> KnownRegions() => Amazon.RegionEndpoint.EnumerableAllRegions.Select(r => r.SystemName);

        /// <summary>Checks that credentials can be found (no secret leaves Core, and no AWS type reaches the caller).</summary>
        public void CheckCredentials() => ResolveCredentials();

        public Uri ResolveEndpoint(string region) => EndpointUrl ?? new Uri($"https://email.{region}.amazonaws.com");
    }

    /// <summary>
    /// Amazon SES through its v2 HTTP API (POST /v2/email/outbound-emails) with the message as raw MIME, so
    /// every header and attachment is what SMTP would send; signed with SigV4 (service "ses").
    /// </summary>
    public sealed class SesTransport : HttpMailTransport, IPublishesQuota
    {
        public const string Service = "ses";
        private static readonly MediaTypeHeaderValue Json = new MediaTypeHeaderValue("application/json");
        private static readonly FormatOptions Wire = WireFormat();
        private readonly AWSCredentials _credentials;
        private readonly Uri _sendUri;

        public SesTransport(SesOptions options) : this(options, null, null) { }

        /// <summary>With another clock or HTTP handler (tests).</summary>
        internal SesTransport(SesOptions options, TimeProvider? time, HttpMessageHandler? handler)
            : this(options, (options ?? throw new ArgumentNullException(nameof(options))).ResolveRegion(), time, handler) { }

        private SesTransport(SesOptions options, string region, TimeProvider? time, HttpMessageHandler? handler)
            : base("Amazon SES", options.ResolveEndpoint(region), options.Timeout, time, handler)
        {
            Region = region;
            _credentials = options.ResolveCredentials();
            _sendUri = new Uri(BaseUri.GetLeftPart(UriPartial.Path).TrimEnd('/') + "/v2/email/outbound-emails");
        }

        public string Region { get; }
        public override string Description => $"Amazon SES {Region} ({BaseUri.GetLeftPart(UriPartial.Authority)})";

        // SES does not support SMTPUTF8: international domains go out as punycode. Bcc is in the envelope
        // (Destination), never in the headers the recipients see - as SMTP does it.
        private static FormatOptions WireFormat()
        {
            var o = FormatOptions.Default.Clone();
            o.NewLineFormat = NewLineFormat.Dos;
            o.International = false;
            o.HiddenHeaders.Add(HeaderId.Bcc);
            o.HiddenHeaders.Add(HeaderId.ResentBcc);
            return o;
        }

        protected override async Task<Receipt> SendCoreAsync(MimeMessage message, SendAttempt attempt, CancellationToken cancellationToken)
        {
            var body = RequestBody(message);
            ImmutableCredentials credentials;
            try
            {
                credentials = await _credentials.GetCredentialsAsync().ConfigureAwait(false);
            }
            catch (AmazonClientException ex)
            {
                // An expired SSO session, a role that cannot be assumed, a metadata service that does not answer.
                throw new MailDeliveryException(new Failure(FailureKind.Permanent, FailureReason.Authentication,
                    $"Could not get AWS credentials: {ex.Message} Sign in again (aws sso login) or check the profile, keys or role."), ex);
            }
            using var request = new HttpRequestMessage(HttpMethod.Post, _sendUri) { Content = new ByteArrayContent(body) };
            request.Content.Headers.ContentType = Json;
            SigV4.Sign(request, body, credentials, Region, Service, Time.GetUtcNow().UtcDateTime);
            using var response = await Http.SendAsync(request, HttpCompletionOption.ResponseContentRead, cancellationToken).ConfigureAwait(false);
            var text = response.Content == null ? "" : await response.Content.ReadAsStringAsync().ConfigureAwait(false);
            int status = (int)response.StatusCode;
            if (status >= 200 && status < 300)
            {
                var id = ReadString(text, "MessageId") ?? "";
                return new Receipt(id, $"{status} {response.StatusCode}{(id.Length > 0 ? " MessageId " + id : "")}");
            }
            throw new MailDeliveryException(Classify(status, response.Headers, text, Time.GetUtcNow()));
        }

        /// <summary>GetAccount (GET /v2/email/account): the account's max send rate, 24-hour quota and what it sent in the last 24 hours.</summary>
        public async Task<ProviderQuota> GetQuotaAsync(CancellationToken cancellationToken)
        {
            var credentials = await _credentials.GetCredentialsAsync().ConfigureAwait(false);
            var uri = new Uri(BaseUri.GetLeftPart(UriPartial.Path).TrimEnd('/') + "/v2/email/account");
            using var request = new HttpRequestMessage(HttpMethod.Get, uri);
            SigV4.Sign(request, new byte[0], credentials, Region, Service, Time.GetUtcNow().UtcDateTime);
            using var response = await Http.SendAsync(request, HttpCompletionOption.ResponseContentRead, cancellationToken).ConfigureAwait(false);
            var text = response.Content == null ? "" : await response.Content.ReadAsStringAsync().ConfigureAwait(false);
            int status = (int)response.StatusCode;
            if (status < 200 || status >= 300) throw new MailDeliveryException(Classify(status, response.Headers, text, Time.GetUtcNow()));
            using var doc = JsonDocument.Parse(text);
            var root = doc.RootElement;
            if (!root.TryGetProperty("SendQuota", out var quota)) throw new MailDeliveryException(new Failure(FailureKind.Permanent, FailureReason.Protocol, "Amazon SES's GetAccount answer has no SendQuota."));
            double Number(string name) => quota.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.Number ? v.GetDouble() : 0;
            bool enabled = !root.TryGetProperty("SendingEnabled", out var e) || e.ValueKind != JsonValueKind.False;
            double rate = Number("MaxSendRate"), max = Number("Max24HourSend"), sent = Number("SentLast24Hours");
            return new ProviderQuota(rate, max < 0 ? int.MaxValue : (int)Math.Min(int.MaxValue, max), (int)Math.Min(int.MaxValue, sent), enabled)
            {
                Source = $"the Amazon SES account's quota ({rate:0.#} a second, {max:N0} in 24 hours, {sent:N0} sent in the last 24 hours)",
            };
        }

        internal static byte[] RequestBody(MimeMessage message)
        {
            byte[] raw;
            using (var mime = new MemoryStream())
            {
                message.WriteTo(Wire, mime);
                raw = mime.ToArray();
            }
            using var buffer = new MemoryStream();
            using (var json = new Utf8JsonWriter(buffer))
            {
                json.WriteStartObject();
                json.WriteStartObject("Destination");
                WriteAddresses(json, "ToAddresses", message.To.Mailboxes);
                WriteAddresses(json, "CcAddresses", message.Cc.Mailboxes);
                WriteAddresses(json, "BccAddresses", message.Bcc.Mailboxes);
                json.WriteEndObject();
                json.WriteStartObject("Content");
                json.WriteStartObject("Raw");
                json.WriteBase64String("Data", raw);
                json.WriteEndObject();
                json.WriteEndObject();
                json.WriteEndObject();
            }
            return buffer.ToArray();
        }

        private static void WriteAddresses(Utf8JsonWriter json, string name, IEnumerable<MailboxAddress> mailboxes)
        {
            var list = mailboxes.ToList();
            if (list.Count == 0) return;
            json.WriteStartArray(name);
            foreach (var m in list) json.WriteStringValue(Ascii(m));
            json.WriteEndArray();
        }

        private static string Ascii(MailboxAddress m)
        {
            var domain = m.Domain;
            if (domain.Any(c => c > 127)) domain = MailboxAddress.IdnMapping.Encode(domain);
            return m.LocalPart + "@" + domain;
        }

        /// <summary>SES's error type (x-amzn-ErrorType, else the body's __type/type/code) decides before the status code.</summary>
        internal static Failure Classify(int status, HttpResponseHeaders headers, string body, DateTimeOffset now)
        {
            var type = ErrorType(headers, body);
            var message = ReadString(body, "message") ?? ReadString(body, "Message") ?? "";
            var detail = string.Join(": ", new[] { type, message }.Where(s => !string.IsNullOrEmpty(s)));
            var retryAfter = HttpFailures.RetryAfter(headers, now);
            var reply = $"{status} {detail}".Trim();
            Failure Make(FailureKind kind, FailureReason reason, string text) => new Failure(kind, reason, text) { ServerReply = reply, StatusCode = status, RetryAfter = retryAfter };

            switch (type)
            {
                case "TooManyRequestsException":
                case "ThrottlingException":
                case "Throttling":
                    return Make(FailureKind.Transient, FailureReason.Throttled, $"Amazon SES is throttling this account ({detail}); backing off before trying again.");
                case "AccountSuspendedException":
                    return Make(FailureKind.Permanent, FailureReason.ProviderSuspended, $"Amazon SES has suspended sending for this account ({detail}). Nothing more can be sent until AWS lifts it.");
                case "SendingPausedException":
                    return Make(FailureKind.Permanent, FailureReason.ProviderSuspended, $"Sending is paused for this account or configuration set ({detail}). Resume sending in SES, then resume the campaign.");
                case "MailFromDomainNotVerifiedException":
                    return Make(FailureKind.Permanent, FailureReason.SenderRejected, $"Amazon SES refused the sender: the MAIL FROM domain is not verified ({detail}).");
                case "MessageRejected":
                case "MessageRejectedException":
                    return Make(FailureKind.Permanent, FailureReason.Rejected, $"Amazon SES rejected the message ({detail}).");
                case "UnrecognizedClientException":
                case "InvalidClientTokenId":
                case "InvalidSignatureException":
                case "SignatureDoesNotMatch":
                case "IncompleteSignature":
                case "ExpiredTokenException":
                case "ExpiredToken":
                case "AccessDeniedException":
                case "MissingAuthenticationTokenException":
                    return Make(FailureKind.Permanent, FailureReason.Authentication, $"Amazon SES refused the credentials ({detail}). Check the keys or profile, the region, and the clock.");
            }
            return HttpFailures.FromStatus("Amazon SES", status, detail, retryAfter, headers.Location);
        }

        private static string? ErrorType(HttpResponseHeaders headers, string body)
        {
            string? raw = headers.TryGetValues("x-amzn-ErrorType", out var values) ? values.FirstOrDefault() : null;
            raw ??= ReadString(body, "__type") ?? ReadString(body, "type") ?? ReadString(body, "code") ?? ReadString(body, "Code");
            if (string.IsNullOrEmpty(raw)) return null;
            int colon = raw!.IndexOf(':');
            if (colon >= 0) raw = raw.Substring(0, colon);
            int hash = raw.LastIndexOf('#');
            if (hash >= 0) raw = raw.Substring(hash + 1);
            return raw.Trim();
        }

        private static string? ReadString(string json, string property)
        {
            if (string.IsNullOrWhiteSpace(json)) return null;
            try
            {
                using var doc = JsonDocument.Parse(json);
                return doc.RootElement.ValueKind == JsonValueKind.Object && doc.RootElement.TryGetProperty(property, out var v) && v.ValueKind == JsonValueKind.String
                    ? v.GetString() : null;
            }
            catch (JsonException)
            {
                return null;
            }
        }
    }
}
