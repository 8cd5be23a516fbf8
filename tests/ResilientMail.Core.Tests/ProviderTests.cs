using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Amazon.Runtime;
using MimeKit;
using ResilientMail.Core.Delivery;
using ResilientMail.Core.Messages;
using ResilientMail.Core.Resilience;
using ResilientMail.Core.Tests.Support;
using ResilientMail.Core.Transports;
using ResilientMail.Core.Transports.Http;
using ResilientMail.Core.Transports.SendGrid;
using ResilientMail.Core.Transports.Ses;
using ResilientMail.TestServers;

namespace ResilientMail.Core.Tests;

/// <summary>SigV4 against AWS's published test-suite vectors, computed by the code the SES transport uses.</summary>
public class SigV4Tests
{
    private static readonly ImmutableCredentials Example = new("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", null);
    private static readonly DateTime At = new(2015, 8, 30, 12, 36, 0, DateTimeKind.Utc);

    [Theory]
    // aws-sig-v4-test-suite: get-vanilla, post-vanilla, post-x-www-form-urlencoded
    [InlineData("GET", null, null, "host;x-amz-date", "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31")]
    [InlineData("POST", null, null, "host;x-amz-date", "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b")]
    [InlineData("POST", "application/x-www-form-urlencoded", "Param1=value1", "content-type;host;x-amz-date", "ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a")]
    public void Signs_the_published_test_vectors(string method, string? contentType, string? body, string signedHeaders, string signature)
    {
        var bytes = body == null ? Array.Empty<byte>() : Encoding.UTF8.GetBytes(body);
        var request = new HttpRequestMessage(new HttpMethod(method), "https://example.amazonaws.com/");
        if (contentType != null)
        {
            request.Content = new ByteArrayContent(bytes);
            request.Content.Headers.ContentType = MediaTypeHeaderValue.Parse(contentType);
        }

        SigV4.Sign(request, bytes, Example, "us-east-1", "service", At);

        Assert.Equal("20150830T123600Z", request.Headers.GetValues("X-Amz-Date").Single());
        Assert.Equal($"AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders={signedHeaders}, Signature={signature}",
            request.Headers.GetValues("Authorization").Single());
    }

    [Fact]
    public void Temporary_credentials_sign_the_session_token_too()
    {
        var request = new HttpRequestMessage(HttpMethod.Post, "https://email.eu-west-1.amazonaws.com/v2/email/outbound-emails");
        SigV4.Sign(request, Array.Empty<byte>(), new ImmutableCredentials("AKID", "secret", "the-token"), "eu-west-1", "ses", At);
        Assert.Equal("the-token", request.Headers.GetValues("X-Amz-Security-Token").Single());
        Assert.Contains("SignedHeaders=host;x-amz-date;x-amz-security-token,", request.Headers.GetValues("Authorization").Single());
    }
}

/// <summary>HTTP failure classes and provider wait hints.</summary>
public class HttpClassificationTests
{
    private static HttpResponseHeaders Headers(params (string, string)[] values)
    {
        var h = new HttpResponseMessage().Headers;
        foreach (var (k, v) in values) h.TryAddWithoutValidation(k, v);
        return h;
    }

    [Theory]
    [InlineData(429, FailureKind.Transient, FailureReason.Throttled)]
    [InlineData(408, FailureKind.Transient, FailureReason.Timeout)]
    [InlineData(500, FailureKind.Transient, FailureReason.ServerBusy)]
    [InlineData(503, FailureKind.Transient, FailureReason.ServerBusy)]
    [InlineData(400, FailureKind.Permanent, FailureReason.Rejected)]
    [InlineData(413, FailureKind.Permanent, FailureReason.MessageTooLarge)]
    [InlineData(307, FailureKind.Permanent, FailureReason.Protocol)]
    [InlineData(301, FailureKind.Permanent, FailureReason.Protocol)]
    [InlineData(401, FailureKind.Permanent, FailureReason.Authentication)]
    [InlineData(403, FailureKind.Permanent, FailureReason.Authentication)]
    public void Status_codes_map_to_the_design_classes(int status, FailureKind kind, FailureReason reason)
    {
        var f = HttpFailures.FromStatus("SendGrid", status, "detail", null);
        Assert.Equal(kind, f.Kind);
        Assert.Equal(reason, f.Reason);
        Assert.Equal(status, f.StatusCode);
        Assert.Equal(status == 401 || status == 403, f.StopsRun);
    }

    [Fact]
    public void Retry_after_reads_seconds_dates_and_SendGrids_reset_header()
    {
        var now = new DateTimeOffset(2026, 11, 29, 10, 0, 0, TimeSpan.Zero);
        Assert.Equal(TimeSpan.FromSeconds(7), HttpFailures.RetryAfter(Headers(("Retry-After", "7")), now));
        Assert.Equal(TimeSpan.FromSeconds(30), HttpFailures.RetryAfter(Headers(("Retry-After", now.AddSeconds(30).ToString("r"))), now));
        Assert.Equal(TimeSpan.FromSeconds(12), HttpFailures.RetryAfter(Headers(("X-RateLimit-Reset", now.AddSeconds(12).ToUnixTimeSeconds().ToString())), now));
        Assert.Equal(TimeSpan.Zero, HttpFailures.RetryAfter(Headers(("X-RateLimit-Reset", now.AddSeconds(-5).ToUnixTimeSeconds().ToString())), now));
        Assert.Null(HttpFailures.RetryAfter(Headers(), now));
    }

    [Theory]
    [InlineData(429, "TooManyRequestsException", FailureKind.Transient, FailureReason.Throttled)]
    [InlineData(400, "MessageRejected", FailureKind.Permanent, FailureReason.Rejected)]
    [InlineData(400, "MailFromDomainNotVerifiedException", FailureKind.Permanent, FailureReason.SenderRejected)]
    [InlineData(400, "AccountSuspendedException", FailureKind.Permanent, FailureReason.ProviderSuspended)]
    [InlineData(400, "SendingPausedException", FailureKind.Permanent, FailureReason.ProviderSuspended)]
    [InlineData(400, "BadRequestException", FailureKind.Permanent, FailureReason.Rejected)]
    [InlineData(403, "SignatureDoesNotMatch", FailureKind.Permanent, FailureReason.Authentication)]
    [InlineData(500, "InternalFailure", FailureKind.Transient, FailureReason.ServerBusy)]
    public void Ses_error_types_decide_before_the_status(int status, string type, FailureKind kind, FailureReason reason)
    {
        var f = SesTransport.Classify(status, Headers(("x-amzn-ErrorType", type + ":http://internal.amazon.com/coral/com.amazon.ses/")), "{\"message\":\"Email address is not verified.\"}", DateTimeOffset.UtcNow);
        Assert.Equal(kind, f.Kind);
        Assert.Equal(reason, f.Reason);
        Assert.Contains(type, f.ServerReply);
        Assert.Contains("Email address is not verified.", f.ServerReply);
        Assert.Equal(reason == FailureReason.ProviderSuspended || reason == FailureReason.Authentication, f.StopsRun);
    }

    [Fact]
    public void Ses_error_type_is_read_from_the_body_when_the_header_is_missing()
    {
        var f = SesTransport.Classify(400, Headers(), "{\"__type\":\"com.amazon.ses#SendingPausedException\",\"message\":\"paused\"}", DateTimeOffset.UtcNow);
        Assert.Equal(FailureReason.ProviderSuspended, f.Reason);
    }

    [Fact]
    public void SendGrid_errors_become_field_and_message()
    {
        var text = SendGridTransport.ErrorText("{\"errors\":[{\"message\":\"The from email does not contain a valid address.\",\"field\":\"from.email\",\"help\":\"x\"},{\"message\":\"bad\",\"field\":null}]}");
        Assert.Equal("from.email: The from email does not contain a valid address.; bad", text);
    }
}

/// <summary>The SendGrid transport through the engine against the fake SendGrid server on loopback (real time, short delays).</summary>
public class SendGridTransportTests
{
    private const string Key = "SG.test-key-1234567890";
    private static readonly RetryOptions FastRetry = new() { BaseDelay = TimeSpan.FromMilliseconds(20), MaxDelay = TimeSpan.FromMilliseconds(300) };

    internal static Courier Courier(IMailTransport transport, List<DeliveryEvent>? events = null, RetryOptions? retry = null) =>
        new(transport, new CourierOptions
        {
            Retry = retry ?? FastRetry,
            Pacing = PacingOptions.None,
            Connectivity = new ConnectivityOptions { CheckInterval = TimeSpan.FromMilliseconds(100), ProbeTimeout = TimeSpan.FromSeconds(1), WaitTimeout = TimeSpan.FromSeconds(10) },
        }, new TcpProbe(), TimeProvider.System, new Random(1), e => { if (events != null) lock (events) events.Add(e); });

    private static SendGridTransport Transport(FakeHttpServer server, string key = Key, TimeSpan? timeout = null) =>
        new(new SendGridOptions { ApiKey = new Secret(key), BaseUri = server.BaseUri, Timeout = timeout ?? TimeSpan.FromSeconds(5) });

    internal static MimeMessage RichMessage(string attachmentPath) => MessageBuilder.Build(new MessageSpec
    {
        From = "News Team <news@example.com>",
        To = new[] { "Ann <ann@example.com>", "bob@example.com" },
        Cc = new[] { "carol@example.com" },
        Bcc = new[] { "dave@example.com", "ANN@example.com" },
        ReplyTo = new[] { "replies@example.com" },
        Subject = "Hello Ann",
        TextBody = "plain text",
        HtmlBody = "<p>html</p>",
        Headers = new Dictionary<string, string> { ["List-Unsubscribe"] = "<https://example.com/u?e=ann>", ["X-Campaign"] = "nov" }.ToList(),
        Attachments = new[] { attachmentPath },
    });

    [Fact]
    public async Task A_message_maps_onto_SendGrid_json_and_the_message_id_comes_back()
    {
        await using var server = await FakeHttpServer.StartAsync(Role.SendGrid, apiKey: Key);
        var file = Path.Combine(Path.GetTempPath(), $"rm-{Guid.NewGuid():N}.txt");
        File.WriteAllText(file, "attached text");
        try
        {
            using var courier = Courier(Transport(server));
            var result = await courier.DeliverAsync(RichMessage(file), default);

            Assert.Equal(DeliveryStatus.Sent, result.Status);
            Assert.Matches("^fake\\d{6}sg$", result.MessageId);
            var request = Assert.Single(server.Requests);
            Assert.Equal("Bearer " + Key, request.Headers["Authorization"]);
            using var json = JsonDocument.Parse(request.Body);
            var root = json.RootElement;
            Assert.Equal("news@example.com", root.GetProperty("from").GetProperty("email").GetString());
            Assert.Equal("News Team", root.GetProperty("from").GetProperty("name").GetString());
            Assert.Equal("Hello Ann", root.GetProperty("subject").GetString());
            var p = root.GetProperty("personalizations")[0];
            Assert.Equal(new[] { "ann@example.com", "bob@example.com" }, p.GetProperty("to").EnumerateArray().Select(a => a.GetProperty("email").GetString()));
            Assert.Equal("Ann", p.GetProperty("to")[0].GetProperty("name").GetString());
            Assert.Equal("carol@example.com", p.GetProperty("cc")[0].GetProperty("email").GetString());
            // ANN@ is already a To: SendGrid refuses duplicates within a personalization, so it goes once.
            Assert.Equal(new[] { "dave@example.com" }, p.GetProperty("bcc").EnumerateArray().Select(a => a.GetProperty("email").GetString()));
            Assert.Equal("replies@example.com", root.GetProperty("reply_to").GetProperty("email").GetString());
            Assert.Equal(new[] { "text/plain", "text/html" }, root.GetProperty("content").EnumerateArray().Select(c => c.GetProperty("type").GetString()));
            var attachment = root.GetProperty("attachments")[0];
            Assert.Equal(Path.GetFileName(file), attachment.GetProperty("filename").GetString());
            Assert.Equal("attached text", Encoding.UTF8.GetString(Convert.FromBase64String(attachment.GetProperty("content").GetString()!)));
            Assert.Equal("attachment", attachment.GetProperty("disposition").GetString());
            var headers = root.GetProperty("headers");
            Assert.Equal("<https://example.com/u?e=ann>", headers.GetProperty("List-Unsubscribe").GetString());
            Assert.Equal("nov", headers.GetProperty("X-Campaign").GetString());
            Assert.False(headers.TryGetProperty("Message-Id", out _));
            Assert.False(headers.TryGetProperty("Subject", out _));
        }
        finally
        {
            File.Delete(file);
        }
    }

    [Fact]
    public async Task Rate_limited_429_waits_as_told_then_sends_once()
    {
        await using var server = await FakeHttpServer.StartAsync(Role.SendGrid, apiKey: Key);
        var reset = DateTimeOffset.UtcNow.AddSeconds(1).ToUnixTimeSeconds().ToString();
        server.AddFaults(new Fault { Status = 429, Headers = new() { ["X-RateLimit-Limit"] = "600", ["X-RateLimit-Remaining"] = "0", ["X-RateLimit-Reset"] = reset }, Body = "{\"errors\":[{\"field\":null,\"message\":\"too many requests\"}]}" });
        var events = new List<DeliveryEvent>();
        using var courier = Courier(Transport(server), events);

        var result = await courier.DeliverAsync(Clock.Message(), default);

        Assert.Equal(DeliveryStatus.Sent, result.Status);
        Assert.Equal(2, result.Attempts);
        Assert.Equal(2, server.Requests.Count);
        var retry = Assert.Single(events, e => e.Kind == DeliveryEventKind.Retry);
        Assert.Contains("rate limiting", retry.Text);
        Assert.Contains("too many requests", retry.Text);
    }

    [Fact]
    public async Task A_server_error_is_retried_and_the_package_itself_never_retries()
    {
        await using var server = await FakeHttpServer.StartAsync(Role.SendGrid, apiKey: Key);
        server.AddFaults(new Fault { Status = 500, Body = "{\"errors\":[{\"message\":\"internal error\"}]}" });
        using var courier = Courier(Transport(server));

        var result = await courier.DeliverAsync(Clock.Message(), default);

        Assert.Equal(DeliveryStatus.Sent, result.Status);
        Assert.Equal(2, result.Attempts);
        Assert.Equal(2, server.Requests.Count); // one request per attempt: no hidden retry layer

        server.Reset();
        server.AddFaults(new Fault { Status = 503, Times = 10 });
        var failed = await Courier(Transport(server), retry: FastRetry with { MaxRetries = 2 }).DeliverAsync(Clock.Message(), default);
        Assert.Equal(DeliveryStatus.Failed, failed.Status);
        Assert.Equal(3, server.Requests.Count);
    }

    [Fact]
    public async Task A_bad_request_is_permanent_and_carries_SendGrids_errors()
    {
        await using var server = await FakeHttpServer.StartAsync(Role.SendGrid, apiKey: Key);
        server.AddFaults(new Fault { Status = 400, Body = "{\"errors\":[{\"message\":\"The from email does not contain a valid address.\",\"field\":\"from.email\",\"help\":\"h\"}]}" });
        using var courier = Courier(Transport(server));

        var result = await courier.DeliverAsync(Clock.Message(), default);

        Assert.Equal(DeliveryStatus.Failed, result.Status);
        Assert.Equal(1, result.Attempts);
        Assert.Equal(FailureKind.Permanent, result.Failure!.Kind);
        Assert.Contains("from.email: The from email does not contain a valid address.", result.Error!.Message);
        Assert.Equal(400, result.Failure.StatusCode);
    }

    [Fact]
    public async Task A_wrong_key_is_an_authentication_failure_that_stops_a_run_and_never_shows_the_key()
    {
        await using var server = await FakeHttpServer.StartAsync(Role.SendGrid, apiKey: Key);
        const string wrong = "SG.wrong-key-abcdefghijkl";
        var events = new List<DeliveryEvent>();
        using var courier = Courier(Transport(server, wrong), events);

        var result = await courier.DeliverAsync(Clock.Message(), default);

        Assert.Equal(DeliveryStatus.Failed, result.Status);
        Assert.Equal(1, result.Attempts);
        Assert.Equal(FailureReason.Authentication, result.Failure!.Reason);
        Assert.True(result.Failure.StopsRun);
        Assert.Contains("authorization grant is invalid", result.Error!.Message);
        Assert.DoesNotContain(wrong, result.Error.ToString());
        Assert.DoesNotContain(events, e => e.Text.Contains(wrong));
        Assert.DoesNotContain(wrong, courier.Transport.Description);
    }

    [Fact]
    public async Task A_response_slower_than_the_timeout_is_uncertain_and_resent_only_when_asked()
    {
        await using var server = await FakeHttpServer.StartAsync(Role.SendGrid, apiKey: Key);
        server.AddFaults(new Fault { DelayMs = 3000 });
        var clock = Stopwatch.StartNew();
        using var courier = Courier(Transport(server, timeout: TimeSpan.FromMilliseconds(500)));

        var result = await courier.DeliverAsync(Clock.Message(), default);

        // The whole request had gone: SendGrid may have taken it, so it is not sent again on its own.
        Assert.Equal(DeliveryStatus.Uncertain, result.Status);
        Assert.Equal(FailureReason.Timeout, result.Failure!.Reason);
        Assert.InRange(clock.Elapsed.TotalSeconds, 0.45, 2.5);
        Assert.Single(server.Requests);

        server.Reset();
        server.AddFaults(new Fault { DelayMs = 3000 });
        using var retrying = Courier(Transport(server, timeout: TimeSpan.FromMilliseconds(500)), retry: FastRetry with { RetryAmbiguous = true });
        var second = await retrying.DeliverAsync(Clock.Message(), default);
        Assert.Equal(DeliveryStatus.Sent, second.Status);
        Assert.Equal(2, second.Attempts);
    }

    [Fact]
    public async Task Connection_refused_then_up_is_retried_after_the_network_comes_back()
    {
        using var hold = new RefusingPort();
        int port = hold.Port;
        var events = new List<DeliveryEvent>();
        using var courier = Courier(new SendGridTransport(new SendGridOptions { ApiKey = new Secret(Key), BaseUri = new Uri($"http://127.0.0.1:{port}") }), events);

        var sending = courier.DeliverAsync(Clock.Message(), default);
        // It has met the refused port and is now waiting (the retry or the connectivity wait), not finished.
        Assert.True(await Eventually.Until(() => { lock (events) return events.Any(e => e.Kind == DeliveryEventKind.Retry || e.Kind == DeliveryEventKind.WaitingForConnection); }));
        Assert.False(sending.IsCompleted);
        hold.Free();
        await using var server = await FakeHttpServer.StartAsync(Role.SendGrid, port, Key);
        var result = await sending.WaitAsync(TimeSpan.FromSeconds(15));

        Assert.Equal(DeliveryStatus.Sent, result.Status);
        Assert.Single(server.Requests);
        Assert.Contains(events, e => e.Text.Contains("Network error talking to SendGrid"));
    }
}

/// <summary>The SES transport against a recording server: SigV4 checked independently, raw MIME and Destination checked.</summary>
public class SesTransportTests
{
    private const string AccessKey = "AKIATESTEXAMPLE00001";
    private const string SecretKey = "test/secret+Key0123456789abcdefghijklmno";

    private static SesTransport Transport(FakeHttpServer server) => new(new SesOptions
    {
        Region = "eu-west-1",
        EndpointUrl = server.BaseUri,
        AccessKeyId = AccessKey,
        SecretAccessKey = new Secret(SecretKey),
        Timeout = TimeSpan.FromSeconds(5),
    });

    private static Fault Ok(int times = 100) => new() { Status = 200, Body = "{\"MessageId\":\"ses-message-1\"}", Times = times };

    [Fact]
    public async Task The_request_is_signed_correctly_and_carries_raw_mime_with_bcc_only_in_the_envelope()
    {
        await using var server = await FakeHttpServer.StartAsync(Role.Proxy, upstream: new Uri("http://127.0.0.1:9"));
        server.AddFaults(Ok());
        var file = Path.Combine(Path.GetTempPath(), $"rm-{Guid.NewGuid():N}.csv");
        File.WriteAllText(file, "a,b\n1,2\n");
        try
        {
            using var courier = SendGridTransportTests.Courier(Transport(server));
            var result = await courier.DeliverAsync(SendGridTransportTests.RichMessage(file), default);

            Assert.Equal(DeliveryStatus.Sent, result.Status);
            Assert.Equal("ses-message-1", result.MessageId);
            var r = Assert.Single(server.Requests);
            Assert.Equal("POST", r.Method);
            Assert.Equal("/v2/email/outbound-emails", r.Path);
            Assert.Equal(IndependentSignature(r, SecretKey), SignatureOf(r));
            Assert.Contains($"Credential={AccessKey}/", r.Headers["Authorization"]);
            Assert.Contains("/eu-west-1/ses/aws4_request", r.Headers["Authorization"]);
            Assert.DoesNotContain(SecretKey, r.Headers["Authorization"]);

            using var json = JsonDocument.Parse(r.Body);
            var destination = json.RootElement.GetProperty("Destination");
            Assert.Equal(new[] { "ann@example.com", "bob@example.com" }, destination.GetProperty("ToAddresses").EnumerateArray().Select(e => e.GetString()));
            Assert.Equal(new[] { "carol@example.com" }, destination.GetProperty("CcAddresses").EnumerateArray().Select(e => e.GetString()));
            Assert.Equal(new[] { "dave@example.com", "ANN@example.com" }, destination.GetProperty("BccAddresses").EnumerateArray().Select(e => e.GetString()));
            var raw = Convert.FromBase64String(json.RootElement.GetProperty("Content").GetProperty("Raw").GetProperty("Data").GetString()!);
            var parsed = MimeMessage.Load(new MemoryStream(raw));
            Assert.Empty(parsed.Bcc);
            Assert.DoesNotContain("dave@example.com", Encoding.ASCII.GetString(raw));
            Assert.Equal("carol@example.com", parsed.Cc.Mailboxes.Single().Address);
            Assert.Equal("Hello Ann", parsed.Subject);
            Assert.Equal("<p>html</p>", parsed.HtmlBody.Trim());
            Assert.Equal("<https://example.com/u?e=ann>", parsed.Headers["List-Unsubscribe"]);
            Assert.Equal(Path.GetFileName(file), parsed.Attachments.OfType<MimePart>().Single().FileName);
        }
        finally
        {
            File.Delete(file);
        }
    }

    [Fact]
    public async Task Throttling_is_retried_and_a_suspended_account_stops_at_once()
    {
        await using var server = await FakeHttpServer.StartAsync(Role.Proxy, upstream: new Uri("http://127.0.0.1:9"));
        server.AddFaults(
            new Fault { Status = 429, Headers = new() { ["x-amzn-ErrorType"] = "TooManyRequestsException:" }, Body = "{\"message\":\"Too many requests.\"}" },
            new Fault { Status = 500, Body = "{\"message\":\"Internal\"}" },
            Ok(1),
            new Fault { Status = 400, Headers = new() { ["x-amzn-ErrorType"] = "AccountSuspendedException" }, Body = "{\"message\":\"Account suspended.\"}", Times = 5 });
        using var courier = SendGridTransportTests.Courier(Transport(server));

        var first = await courier.DeliverAsync(Clock.Message(), default);
        Assert.Equal(DeliveryStatus.Sent, first.Status);
        Assert.Equal(3, first.Attempts);

        var second = await courier.DeliverAsync(Clock.Message(), default);
        Assert.Equal(DeliveryStatus.Failed, second.Status);
        Assert.Equal(1, second.Attempts);
        Assert.Equal(FailureReason.ProviderSuspended, second.Failure!.Reason);
        Assert.True(second.Failure.StopsRun);
        Assert.Contains("AccountSuspendedException", second.Error!.Message);
    }

    [Fact]
    public async Task A_dropped_connection_before_any_answer_after_the_request_is_uncertain()
    {
        await using var server = await FakeHttpServer.StartAsync(Role.Proxy, upstream: new Uri("http://127.0.0.1:9"));
        server.AddFaults(new Fault { Abort = true }, Ok());
        using var courier = SendGridTransportTests.Courier(Transport(server));

        var result = await courier.DeliverAsync(Clock.Message(), default);

        Assert.Equal(DeliveryStatus.Uncertain, result.Status);
        Assert.Equal(FailureKind.Ambiguous, result.Failure!.Kind);
        Assert.Single(server.Requests);
    }

    [Fact]
    public async Task A_slow_answer_times_out_as_uncertain_and_a_refused_connection_is_retried_until_the_endpoint_is_up()
    {
        await using (var slow = await FakeHttpServer.StartAsync(Role.Proxy, upstream: new Uri("http://127.0.0.1:9")))
        {
            slow.AddFaults(new Fault { DelayMs = 3000 }, Ok());
            var transport = new SesTransport(new SesOptions { Region = "eu-west-1", EndpointUrl = slow.BaseUri, AccessKeyId = AccessKey, SecretAccessKey = new Secret(SecretKey), Timeout = TimeSpan.FromMilliseconds(500) });
            using var courier = SendGridTransportTests.Courier(transport);
            var result = await courier.DeliverAsync(Clock.Message(), default);
            Assert.Equal(DeliveryStatus.Uncertain, result.Status);
            Assert.Equal(FailureReason.Timeout, result.Failure!.Reason);
        }

        using var hold = new RefusingPort();
        int port = hold.Port;
        var events = new List<DeliveryEvent>();
        using var later = SendGridTransportTests.Courier(new SesTransport(new SesOptions
        {
            Region = "eu-west-1", EndpointUrl = new Uri($"http://127.0.0.1:{port}"), AccessKeyId = AccessKey, SecretAccessKey = new Secret(SecretKey),
        }), events);
        var sending = later.DeliverAsync(Clock.Message(), default);
        // It has met the refused port and is now waiting (the retry or the connectivity wait), not finished.
        Assert.True(await Eventually.Until(() => { lock (events) return events.Any(e => e.Kind == DeliveryEventKind.Retry || e.Kind == DeliveryEventKind.WaitingForConnection); }));
        Assert.False(sending.IsCompleted);
        hold.Free();
        await using var server = await FakeHttpServer.StartAsync(Role.Proxy, port, upstream: new Uri("http://127.0.0.1:9"));
        server.AddFaults(Ok());
        var sent = await sending.WaitAsync(TimeSpan.FromSeconds(15));
        Assert.Equal(DeliveryStatus.Sent, sent.Status);
        Assert.Single(server.Requests);
        Assert.Contains(events, e => e.Text.Contains("Network error talking to Amazon SES"));
    }

    private static string SignatureOf(RecordedRequest r) => r.Headers["Authorization"].Split("Signature=")[1].Trim();

    /// <summary>SigV4 from the specification, written here without AWSSDK, over the request as the server saw it.</summary>
    private static string IndependentSignature(RecordedRequest r, string secret)
    {
        var auth = r.Headers["Authorization"];
        var scope = auth.Split("Credential=")[1].Split(',')[0].Split('/', 2)[1]; // date/region/service/aws4_request
        var signed = auth.Split("SignedHeaders=")[1].Split(',')[0];
        var canonical = new StringBuilder();
        canonical.Append(r.Method).Append('\n').Append(r.Path).Append('\n').Append("").Append('\n');
        foreach (var h in signed.Split(';')) canonical.Append(h).Append(':').Append(r.Headers[h].Trim()).Append('\n');
        canonical.Append('\n').Append(signed).Append('\n').Append(Hex(SHA256.HashData(Encoding.UTF8.GetBytes(r.Body))));
        var amzDate = r.Headers["X-Amz-Date"];
        var toSign = $"AWS4-HMAC-SHA256\n{amzDate}\n{scope}\n{Hex(SHA256.HashData(Encoding.UTF8.GetBytes(canonical.ToString())))}";
        var parts = scope.Split('/');
        var key = Encoding.UTF8.GetBytes("AWS4" + secret);
        foreach (var part in new[] { parts[0], parts[1], parts[2], "aws4_request" }) key = HMACSHA256.HashData(key, Encoding.UTF8.GetBytes(part));
        return Hex(HMACSHA256.HashData(key, Encoding.UTF8.GetBytes(toSign)));
    }

    private static string Hex(byte[] b) => Convert.ToHexString(b).ToLowerInvariant();
}
