using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Net;
using System.Net.Http;
using System.Threading;
using System.Threading.Tasks;
using Azure.Core;
using Microsoft.Extensions.Time.Testing;
using MimeKit;
using ResilientMail.Core.Campaigns;
using ResilientMail.Core.Identity;
using ResilientMail.Core.Resilience;
using ResilientMail.Core.Transports;
using ResilientMail.Core.Transports.Graph;
using ResilientMail.Core.Tests.Support;

namespace ResilientMail.Core.Tests;

/// <summary>Tokens renewed on fake time, and Graph's answers classified; the stand-in tests in Pester run the real libraries.</summary>
public class GraphAndTokenTests
{
    private static readonly OAuthSettings App = new() { Kind = TokenKind.ClientSecret, TenantId = "contoso.onmicrosoft.com", ClientId = "app" };

    /// <summary>An Entra credential on fake time: each token lives an hour from when it was issued.</summary>
    private sealed class HourTokens : TokenCredential
    {
        private readonly TimeProvider _time;
        public HourTokens(TimeProvider time) => _time = time;
        public List<(string Token, DateTimeOffset Expires)> Issued { get; } = new();

        public override AccessToken GetToken(TokenRequestContext requestContext, CancellationToken cancellationToken) => GetTokenAsync(requestContext, cancellationToken).AsTask().Result;

        public override ValueTask<AccessToken> GetTokenAsync(TokenRequestContext requestContext, CancellationToken cancellationToken)
        {
            var t = ($"tok{Issued.Count + 1}", _time.GetUtcNow().AddHours(1));
            lock (Issued) Issued.Add(t);
            return new ValueTask<AccessToken>(new AccessToken(t.Item1, t.Item2));
        }
    }

    /// <summary>Graph on fake time: 401 for a token past its expiry (or for the ones listed as revoked), else 202.</summary>
    private sealed class GraphOnFakeTime : HttpMessageHandler
    {
        private readonly FakeTimeProvider _time;
        private readonly HourTokens _tokens;
        public GraphOnFakeTime(FakeTimeProvider time, HourTokens tokens) { _time = time; _tokens = tokens; }
        public int Accepted, Expired;
        public HashSet<string> Revoked { get; } = new();

        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            var token = request.Headers.Authorization?.Parameter ?? "";
            var issued = _tokens.Issued.FirstOrDefault(t => t.Token == token);
            if (issued.Token == null || issued.Expires <= _time.GetUtcNow() || Revoked.Contains(token))
            {
                Expired++;
                return Task.FromResult(new HttpResponseMessage(HttpStatusCode.Unauthorized)
                    { Content = new StringContent("{\"error\":{\"code\":\"InvalidAuthenticationToken\",\"message\":\"Lifetime validation failed, the token is expired.\"}}") });
            }
            Accepted++;
            return Task.FromResult(new HttpResponseMessage(HttpStatusCode.Accepted) { Content = new StringContent("") });
        }
    }

    private static (GraphTransport Graph, GraphOnFakeTime Server, HourTokens Tokens, TokenSource Source) Make(FakeTimeProvider time)
    {
        var tokens = new HourTokens(time);
        var source = new EntraTokenSource(App, () => tokens, "https://graph.microsoft.com/.default", time);
        var server = new GraphOnFakeTime(time, tokens);
        var graph = new GraphTransport(new GraphOptions { Mailbox = "reports@contoso.com", Tokens = source }, time, server);
        return (graph, server, tokens, source);
    }

    [Fact]
    public async Task A_three_hour_run_renews_the_token_before_each_expiry_and_never_sends_an_expired_one()
    {
        var time = new FakeTimeProvider(new DateTimeOffset(2026, 12, 1, 8, 0, 0, TimeSpan.Zero));
        var (graph, server, tokens, source) = Make(time);
        for (int i = 0; i < 180; i++) // one message a minute for three hours: the token expires twice (three times, nearly) mid-run
        {
            var receipt = await graph.SendAsync(Clock.Message($"r{i}@example.com"), new SendAttempt(), CancellationToken.None);
            Assert.StartsWith("202", receipt.ServerReply);
            time.Advance(TimeSpan.FromMinutes(1));
        }
        Assert.Equal(180, server.Accepted);
        Assert.Equal(0, server.Expired);                 // renewed before expiry, never after a refusal
        Assert.Equal(4, tokens.Issued.Count);            // at 0, 55, 110 and 165 minutes: five minutes before each expiry
        Assert.Equal(4, source.Obtained);
        Assert.All(tokens.Issued.Skip(1).Zip(tokens.Issued), p => Assert.Equal(TimeSpan.FromMinutes(55), p.First.Expires - p.Second.Expires));
    }

    [Fact]
    public async Task A_token_refused_early_is_renewed_once_and_a_second_refusal_stops_the_run()
    {
        var time = new FakeTimeProvider(new DateTimeOffset(2026, 12, 1, 8, 0, 0, TimeSpan.Zero));
        var (graph, server, tokens, _) = Make(time);
        await graph.SendAsync(Clock.Message(), new SendAttempt(), CancellationToken.None);
        server.Revoked.Add("tok1");
        var receipt = await graph.SendAsync(Clock.Message(), new SendAttempt(), CancellationToken.None);
        Assert.StartsWith("202", receipt.ServerReply);
        Assert.Equal(2, tokens.Issued.Count);

        server.Revoked.Add("tok2");
        server.Revoked.Add("tok3"); // the renewed one is refused too: the app itself is the problem
        var error = await Assert.ThrowsAsync<MailDeliveryException>(() => graph.SendAsync(Clock.Message(), new SendAttempt(), CancellationToken.None));
        Assert.Equal(FailureReason.Authentication, error.Failure.Reason);
        Assert.True(error.Failure.StopsRun);
        Assert.Contains("even after renewing it", error.Failure.Message);
        Assert.Equal(3, tokens.Issued.Count);
    }

    [Fact]
    public void Graph_answers_are_classified_for_what_a_person_must_do()
    {
        var graph = new GraphTransport(new GraphOptions { Mailbox = "reports@contoso.com", Tokens = new GivenToken(new Secret("t")) });
        var policy = graph.Classify(403, "ErrorAccessDenied", "Access to OData is disabled: [RAOP] : Blocked by tenant configured AppOnly AccessPolicy settings.", null, null, "sendMail");
        Assert.True(policy.StopsRun);
        Assert.Equal(Remedy.Microsoft365, policy.Remedy);
        Assert.Contains("Test-ApplicationAccessPolicy -Identity reports@contoso.com", policy.Message);
        var permission = graph.Classify(403, "ErrorAccessDenied", "Access is denied. Check credentials and try again.", null, null, "sendMail");
        Assert.Contains("Mail.Send", permission.Message);
        var recipient = graph.Classify(400, "ErrorInvalidRecipients", "Recipient 'x' isn't resolved.", null, null, "sendMail");
        Assert.Equal((FailureKind.Permanent, FailureReason.RecipientRejected, false), (recipient.Kind, recipient.Reason, recipient.StopsRun));
        var throttled = graph.Classify(429, "ApplicationThrottled", "MailboxConcurrency", TimeSpan.FromSeconds(7), null, "sendMail");
        Assert.Equal((FailureKind.Transient, TimeSpan.FromSeconds(7)), (throttled.Kind, throttled.RetryAfter));
        Assert.Equal(FailureKind.Transient, graph.Classify(503, null, null, null, null, "sendMail").Kind);
        Assert.Equal(FailureKind.Transient, graph.Classify(504, null, null, null, null, "sendMail").Kind);
        var mailbox = graph.Classify(404, "MailboxNotEnabledForRESTAPI", "The mailbox is either inactive, soft-deleted, or is hosted on-premise.", null, null, "sendMail");
        Assert.True(mailbox.StopsRun);
        Assert.Contains("Exchange Online licence", mailbox.Message);
    }

    [Fact]
    public void A_message_over_the_request_limit_keeps_its_small_attachments_in_the_draft_and_moves_the_large_ones()
    {
        var builder = new BodyBuilder { TextBody = "see attached" };
        builder.Attachments.Add("big.bin", new byte[5 * 1024 * 1024]);
        builder.Attachments.Add("small.txt", new byte[100 * 1024]);
        var message = new MimeMessage(new[] { MailboxAddress.Parse("a@contoso.com") }, new[] { MailboxAddress.Parse("b@example.com") }, "s", builder.ToMessageBody());
        message.Headers.Add("List-Unsubscribe", "<mailto:u@contoso.com>");
        var (draft, moved) = GraphTransport.Split(message);
        Assert.Equal(new[] { "big.bin" }, moved.Select(m => m.Name));
        Assert.Equal(5 * 1024 * 1024, moved[0].Content.Length);
        Assert.Equal(new[] { "small.txt" }, draft.Attachments.OfType<MimePart>().Select(p => p.FileName));
        Assert.Equal("<mailto:u@contoso.com>", draft.Headers["List-Unsubscribe"]);
        Assert.Equal(message.MessageId, draft.MessageId);
        Assert.Equal(2, message.Attachments.Count()); // the original is untouched: a retry sends it whole
    }

    [Fact]
    public void Microsoft_365_limits_are_the_default_pace_and_the_cap_on_concurrency()
    {
        var graph = new GraphDescription { Mailbox = "reports@contoso.com" };
        var capped = ProviderLimits.Apply(graph, 8, null);
        Assert.Equal(4, capped.Concurrency);
        Assert.Contains("at most 4", capped.Warning);
        Assert.Equal(new RateLimit(30, TimeSpan.FromMinutes(1)), capped.Rate);
        Assert.True(capped.RateFromProvider);
        var asked = ProviderLimits.Apply(graph, 2, new RateLimit(10, TimeSpan.FromMinutes(1)));
        Assert.Equal((2, new RateLimit(10, TimeSpan.FromMinutes(1)), false, (string?)null), (asked.Concurrency, asked.Rate, asked.RateFromProvider, asked.Warning));
        Assert.Equal(new RateLimit(30, TimeSpan.FromMinutes(1)), ProviderLimits.Apply(new SmtpDescription { Host = "smtp.office365.com" }, 1, null).Rate);
        Assert.Null(ProviderLimits.Apply(new SmtpDescription { Host = "mail.example.com" }, 1, null).Rate);
    }

    [Fact]
    public void The_journal_keeps_how_tokens_are_obtained_and_never_a_secret()
    {
        var d = new GraphDescription { Mailbox = "reports@contoso.com", OAuth = App with { Kind = TokenKind.Certificate, CertificateThumbprint = "3A5C" }, Secret = SecretSource.Ambient };
        var json = System.Text.Json.JsonSerializer.Serialize<TransportDescription>(d);
        Assert.Contains("\"tokenKind\":\"Certificate\"", json);
        Assert.Contains("\"certificateThumbprint\":\"3A5C\"", json);
        var back = Assert.IsType<GraphDescription>(System.Text.Json.JsonSerializer.Deserialize<TransportDescription>(json));
        Assert.Equal(d.OAuth, back.OAuth);
        Assert.False(back.NeedsCallerSecret);                                   // the store's certificate is found again on resume
        Assert.True((d with { OAuth = App }).NeedsCallerSecret);                 // a client secret is not stored: the caller must give it again
        var smtp = new SmtpDescription { Host = "smtp.office365.com", UserName = "r@contoso.com", UsesOAuth = true, OAuth = new OAuthSettings { Kind = TokenKind.ManagedIdentity } };
        Assert.False(smtp.NeedsCallerSecret);
        Assert.Equal("https://outlook.office365.com/.default", smtp.OAuthScope);
    }

    [Theory]
    [InlineData("AADSTS7000222: The provided client secret keys for app 'app' are expired.", "has expired: add a new secret")]
    [InlineData("AADSTS65001: The user or administrator has not consented to use the application.", "admin consent")]
    [InlineData("AADSTS700027: Client assertion failed signature validation.", "upload the certificate's public part")]
    [InlineData("AADSTS700016: Application with identifier 'app' was not found in the directory.", "No application app is registered")]
    public void Entra_refusals_say_what_to_fix_and_stop_the_run(string said, string advice)
    {
        var failure = TokenFailures.FromEntra(new Azure.Identity.AuthenticationFailedException("ClientSecretCredential authentication failed: " + said), App, "https://graph.microsoft.com/.default");
        Assert.Contains(advice, failure.Message);
        Assert.Equal(FailureReason.Authentication, failure.Reason);
        Assert.True(failure.StopsRun);
        Assert.Equal(Remedy.Microsoft365, failure.Remedy);
    }

    [Fact]
    public void An_unreachable_token_endpoint_is_a_network_failure_and_no_managed_identity_is_a_setting()
    {
        var down = TokenFailures.FromEntra(new Azure.Identity.AuthenticationFailedException("failed", new HttpRequestException("Connection refused", new System.Net.Sockets.SocketException(111))), App, "s");
        Assert.Equal((FailureKind.Transient, FailureReason.Network), (down.Kind, down.Reason));
        var slow = TokenFailures.FromEntra(new Azure.Identity.AuthenticationFailedException("failed", new TaskCanceledException("The request was canceled due to the configured HttpClient.Timeout")), App, "s");
        Assert.Equal((FailureKind.Transient, FailureReason.Timeout), (slow.Kind, slow.Reason));
        var none = TokenFailures.FromEntra(new Azure.Identity.CredentialUnavailableException("ManagedIdentityCredential authentication unavailable."), App with { Kind = TokenKind.ManagedIdentity }, "s");
        Assert.True(none.StopsRun);
        Assert.Contains("Automation account", none.Message);
    }

    [Fact]
    public void An_accounts_published_quota_is_the_pace_and_the_cap_unless_the_user_set_them()
    {
        var ses = new SesDescription { Region = "eu-west-1" };
        var quota = new ProviderQuota(14.5, 50000, 1200, true) { Source = "SES" };
        var fromAccount = ProviderLimits.Apply(ses, 2, null, null, quota);
        Assert.Equal(new RateLimit(14, TimeSpan.FromSeconds(1)), fromAccount.Rate);
        Assert.Equal((50000, 1200, true), (fromAccount.RecipientsPerDay!.Value, fromAccount.SentLast24Hours, fromAccount.RateFromProvider));
        var slow = ProviderLimits.Apply(ses, 1, null, null, quota with { MaxPerSecond = 0.5 });
        Assert.Equal(new RateLimit(1, TimeSpan.FromSeconds(2)), slow.Rate);
        var own = ProviderLimits.Apply(ses, 1, new RateLimit(5, TimeSpan.FromSeconds(1)), 0, quota);
        Assert.Equal((new RateLimit(5, TimeSpan.FromSeconds(1)), (int?)null, false), (own.Rate, own.RecipientsPerDay, own.RateFromProvider));
    }

    [Fact]
    public async Task A_provider_rate_paces_single_sends_too()
    {
        var time = new FakeTimeProvider(new DateTimeOffset(2026, 12, 1, 9, 0, 0, TimeSpan.Zero));
        var transport = new ScriptedTransport(time, _ => null);
        using var courier = new Delivery.Courier(transport, new Delivery.CourierOptions { Pacing = PacingOptions.None, RateLimit = new RateLimit(2, TimeSpan.FromMinutes(1)) },
            new ClockProbe(time, _ => true), time, new Random(1), null);
        var start = time.GetUtcNow();
        var three = Task.Run(async () => { for (int i = 0; i < 3; i++) await courier.DeliverAsync(Clock.Message($"p{i}@example.com"), default); });
        await Clock.RunWorkers(time, three.ContinueWith(t => { t.GetAwaiter().GetResult(); return true; }));
        Assert.Equal(3, transport.AttemptTimes.Count);
        Assert.True(transport.AttemptTimes[1] - start < TimeSpan.FromMinutes(1));
        Assert.True(transport.AttemptTimes[2] - start >= TimeSpan.FromMinutes(1)); // the third waits for the window
    }
}
