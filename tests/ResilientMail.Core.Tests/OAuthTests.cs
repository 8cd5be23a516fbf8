using System.Text;
using ResilientMail.Core.Delivery;
using ResilientMail.Core.Resilience;
using ResilientMail.Core.Tests.Support;
using ResilientMail.TestServers;
using ResilientMail.Core.Transports;

namespace ResilientMail.Core.Tests;

/// <summary>SMTP sign-in with an OAuth2 access token (SASL XOAUTH2), against a server that checks the exchange.</summary>
public class OAuthTests
{
    private const string User = "alice@example.com";
    private const string Token = "ya29.test-access-token-0123456789";

    private static string Expected(string user, string token) =>
        "AUTH XOAUTH2 " + Convert.ToBase64String(Encoding.ASCII.GetBytes($"user={user}\u0001auth=Bearer {token}\u0001\u0001"));

    /// <summary>Accepts exactly the XOAUTH2 initial response for (User, Token); refuses anything else the way Gmail does.</summary>
    private static Reaction CheckXoauth2(Step s) => s.Phase == Phase.Auth
        ? (s.Argument == Expected(User, Token) ? Reaction.Say("235 2.7.0 Accepted") : Reaction.Say("535 5.7.8 Username and Password not accepted"))
        : Reaction.Default;

    private static Courier Courier(int port, string token, List<DeliveryEvent> events) =>
        new(new SmtpTransport(new SmtpOptions
        {
            Host = "127.0.0.1", Port = port, Security = SmtpSecurity.None, OAuthUser = User, OAuthToken = new Secret(token), Timeout = TimeSpan.FromSeconds(5),
        }, e => { lock (events) events.Add(e); }), new CourierOptions { Pacing = PacingOptions.None, Retry = new RetryOptions { BaseDelay = TimeSpan.FromMilliseconds(10) } },
            new TcpProbe(), e => { lock (events) events.Add(e); });

    [Fact]
    public async Task A_valid_token_signs_in_with_XOAUTH2_and_the_message_is_sent()
    {
        await using var server = new ScriptedSmtpServer(CheckXoauth2, auth: "LOGIN PLAIN XOAUTH2");
        var events = new List<DeliveryEvent>();
        using var courier = Courier(server.Port, Token, events);

        var result = await courier.DeliverAsync(Clock.Message(), default);

        Assert.Equal(DeliveryStatus.Sent, result.Status);
        Assert.Single(server.Accepted);
        Assert.Contains(server.Log, l => l.Contains(":Auth:235"));
        Assert.Contains(events, e => e.Text.Contains("authenticated as alice@example.com (OAuth2)"));
        Assert.DoesNotContain(events, e => e.Text.Contains(Token));
        Assert.DoesNotContain(Token, courier.Transport.Description);
    }

    [Fact]
    public async Task A_refused_token_is_an_authentication_failure_that_says_to_get_a_new_token_and_never_shows_it()
    {
        const string stale = "ya29.expired-token-9876543210";
        await using var server = new ScriptedSmtpServer(CheckXoauth2, auth: "XOAUTH2");
        var events = new List<DeliveryEvent>();
        using var courier = Courier(server.Port, stale, events);

        var result = await courier.DeliverAsync(Clock.Message(), default);

        Assert.Equal(DeliveryStatus.Failed, result.Status);
        Assert.Equal(1, result.Attempts);
        Assert.Equal(FailureReason.Authentication, result.Failure!.Reason);
        Assert.True(result.Failure.StopsRun);
        Assert.Contains("refused the OAuth2 token for alice@example.com", result.Error!.Message);
        Assert.Contains("get a new one", result.Error.Message);
        Assert.Contains("Username and Password not accepted", result.Error.Message); // the server's own words
        Assert.DoesNotContain(stale, result.Error.ToString());
        Assert.DoesNotContain(events, e => e.Text.Contains(stale));
        Assert.Empty(server.Accepted);
    }

    [Fact]
    public void A_token_without_its_mailbox_or_beside_a_password_is_refused_up_front()
    {
        Assert.Throws<ArgumentException>(() => new SmtpOptions { Host = "h", OAuthToken = new Secret(Token) }.Validate());
        Assert.Throws<ArgumentException>(() => new SmtpOptions { Host = "h", OAuthUser = User, OAuthToken = new Secret(Token), Credential = new System.Net.NetworkCredential("u", "p") }.Validate());
        Assert.DoesNotContain(Token, new SmtpOptions { Host = "h", OAuthUser = User, OAuthToken = new Secret(Token) }.ToString());
    }
}
