using System.Net;
using Microsoft.Extensions.Time.Testing;
using MimeKit;
using ResilientMail.Core.Delivery;
using ResilientMail.Core.Resilience;
using ResilientMail.Core.Tests.Support;
using ResilientMail.TestServers;
using ResilientMail.Core.Transports;
using ResilientMail.Core.Messages;

namespace ResilientMail.Core.Tests;

/// <summary>Each recipient has its own fate, as a mail server relays it; the real SMTP transport against a scripted server.</summary>
public class RecipientFateTests
{
    private static readonly RetryOptions FastRetry = new() { BaseDelay = TimeSpan.FromMilliseconds(10), MaxDelay = TimeSpan.FromMilliseconds(50) };

    private static Courier Courier(int port, NetworkCredential? credential = null)
    {
        var transport = new SmtpTransport(new SmtpOptions { Host = "127.0.0.1", Port = port, Security = SmtpSecurity.None, Timeout = TimeSpan.FromSeconds(5), Credential = credential });
        return new Courier(transport, new CourierOptions { Retry = FastRetry, Pacing = PacingOptions.None }, new TcpProbe(), TimeProvider.System, new Random(1), null);
    }

    private static MimeMessage To(params string[] addresses) => new(
        new[] { MailboxAddress.Parse("sender@example.com") }, addresses.Select(MailboxAddress.Parse), "Hello", new TextPart("plain") { Text = "Body" });

    private static List<string> Rcpts(ScriptedSmtpServer server) { lock (server.Commands) return server.Commands.Where(c => c.Contains("RCPT TO")).ToList(); }

    [Fact]
    public async Task One_refused_recipient_does_not_sink_the_message_to_the_others()
    {
        await using var server = new ScriptedSmtpServer(s => s.Phase == Phase.Rcpt && s.Argument.Contains("b@example.com") ? Reaction.Say("550 5.1.1 <b@example.com>: Recipient address rejected: User unknown") : Reaction.Default);
        using var courier = Courier(server.Port);

        var result = await courier.DeliverAsync(To("a@example.com", "b@example.com", "c@example.com"), default);

        Assert.Equal(DeliveryStatus.PartiallySent, result.Status);
        Assert.Equal(new[] { "a@example.com", "c@example.com" }, result.Delivered);
        var refused = Assert.Single(result.Refused);
        Assert.Equal("b@example.com", refused.Address);
        Assert.Equal(FailureKind.Permanent, refused.Failure.Kind);
        Assert.Contains("550 5.1.1", refused.Failure.ServerReply);
        Assert.Contains("Delivered to 2 of 3", result.Failure!.Message);
        Assert.Equal(1, result.Attempts); // a permanent refusal is not retried
        Assert.Single(server.Accepted);
    }

    [Fact]
    public async Task A_cap_on_recipients_per_transaction_sends_the_rest_in_further_transactions_at_once()
    {
        // Like Postfix's smtpd_recipient_limit: the server takes two RCPT TO per transaction.
        int inTransaction = 0;
        await using var server = new ScriptedSmtpServer(s =>
        {
            if (s.Phase == Phase.Mail) Interlocked.Exchange(ref inTransaction, 0);
            if (s.Phase == Phase.Rcpt && Interlocked.Increment(ref inTransaction) > 2) return Reaction.Say("452 4.5.3 Error: too many recipients");
            return Reaction.Default;
        });
        using var courier = Courier(server.Port);
        var all = Enumerable.Range(1, 5).Select(i => $"r{i}@example.com").ToArray();

        var result = await courier.DeliverAsync(To(all), default);

        Assert.Equal(DeliveryStatus.Sent, result.Status);
        Assert.Equal(1, result.Attempts); // no retry was spent on the cap
        Assert.Equal(all, result.Delivered);
        Assert.Equal(3, server.Accepted.Count); // 2 + 2 + 1
        // Every address was accepted exactly once.
        var accepted = server.Log.Count(l => l.EndsWith("250 2.1.5 OK"));
        Assert.Equal(5, accepted);
    }

    [Fact]
    public async Task A_recipient_deferred_alone_is_retried_alone()
    {
        int deferrals = 0;
        await using var server = new ScriptedSmtpServer(s => s.Phase == Phase.Rcpt && s.Argument.Contains("b@example.com") && Interlocked.Increment(ref deferrals) == 1
            ? Reaction.Say("450 4.2.1 Mailbox busy, try again later") : Reaction.Default);
        using var courier = Courier(server.Port);

        var result = await courier.DeliverAsync(To("a@example.com", "b@example.com"), default);

        Assert.Equal(DeliveryStatus.Sent, result.Status);
        Assert.Equal(2, result.Attempts);
        Assert.Equal(2, server.Accepted.Count);
        var rcpts = Rcpts(server);
        Assert.Equal(1, rcpts.Count(r => r.Contains("a@example.com"))); // a got it once: the retry went to b only
        Assert.Equal(2, rcpts.Count(r => r.Contains("b@example.com")));
    }

    [Fact]
    public async Task Greylisting_with_a_5xx_enhanced_code_is_retried_by_its_4xx_basic_code()
    {
        int tries = 0;
        await using var server = new ScriptedSmtpServer(s => s.Phase == Phase.Rcpt && Interlocked.Increment(ref tries) == 1 ? Reaction.Say("451 5.7.1 Greylisted, please try again later") : Reaction.Default);
        using var courier = Courier(server.Port);

        var result = await courier.DeliverAsync(To("a@example.com"), default);

        Assert.Equal(DeliveryStatus.Sent, result.Status);
        Assert.Equal(2, result.Attempts);
        Assert.Single(server.Accepted);
    }

    [Fact]
    public async Task An_international_address_goes_with_SMTPUTF8_when_the_server_offers_it()
    {
        await using var server = new ScriptedSmtpServer(s => s.Phase == Phase.Ehlo ? Reaction.Say("250-scripted\r\n250-8BITMIME\r\n250 SMTPUTF8") : Reaction.Default);
        using var courier = Courier(server.Port);

        var result = await courier.DeliverAsync(To("jörg@example.com"), default);

        Assert.Equal(DeliveryStatus.Sent, result.Status);
        lock (server.Commands) Assert.Contains(server.Commands, c => c.StartsWith("1:MAIL FROM:") && c.Contains(" SMTPUTF8"));
    }

    [Fact]
    public async Task An_international_address_fails_clearly_without_SMTPUTF8_and_the_others_are_delivered()
    {
        await using var server = new ScriptedSmtpServer();
        using var courier = Courier(server.Port);

        var result = await courier.DeliverAsync(To("jörg@example.com", "ann@example.com"), default);

        Assert.Equal(DeliveryStatus.PartiallySent, result.Status);
        Assert.Equal(new[] { "ann@example.com" }, result.Delivered);
        var refused = Assert.Single(result.Refused);
        Assert.Equal("jörg@example.com", refused.Address);
        Assert.Contains("does not offer SMTPUTF8", refused.Failure.Message);
        Assert.DoesNotContain(Rcpts(server), r => r.Contains("example.com") && !r.Contains("ann@"));

        var alone = await courier.DeliverAsync(To("jörg@example.com"), default);
        Assert.Equal(DeliveryStatus.Failed, alone.Status);
        Assert.Equal(FailureKind.Permanent, alone.Failure!.Kind);
        Assert.Contains("SMTPUTF8", alone.Failure.Message);
        Assert.Single(server.Accepted); // only ann's message
    }

    [Fact]
    public async Task One_wrong_password_is_one_failed_login()
    {
        await using var server = new ScriptedSmtpServer(s => s.Phase == Phase.Auth ? Reaction.Say("535 5.7.8 Error: authentication failed") : Reaction.Default, auth: "PLAIN LOGIN");
        using var courier = Courier(server.Port, new NetworkCredential("alice", "wrong-password"));

        var result = await courier.DeliverAsync(To("a@example.com"), default);

        Assert.Equal(DeliveryStatus.Failed, result.Status);
        Assert.Equal(FailureReason.Authentication, result.Failure!.Reason);
        Assert.True(result.Failure.StopsRun);
        lock (server.Commands) Assert.Single(server.Commands, c => c.Contains(":AUTH "));
        Assert.Contains("AUTH PLAIN", result.Failure.Message);
        Assert.DoesNotContain("wrong-password", result.Failure.Message);
    }

    [Fact]
    public async Task A_send_that_may_have_been_delivered_stays_Uncertain_when_later_retries_fail()
    {
        var time = new FakeTimeProvider();
        var transport = new ScriptedTransport(time, n => n == 1
            ? new MailDeliveryException(new Failure(FailureKind.Ambiguous, FailureReason.Network, "The connection dropped after the whole message was sent."))
            : ScriptedTransport.Transient("503 5.5.1 Service unavailable"));
        using var courier = new Courier(transport, new CourierOptions { Retry = new RetryOptions { RetryAmbiguous = true }, Pacing = PacingOptions.None },
            new ClockProbe(time, _ => true), time, new FixedRandom(0.5), null);

        var result = await Clock.Drive(time, courier.DeliverAsync(Clock.Message(), default), TimeSpan.FromMinutes(2));

        Assert.Equal(4, result.Attempts);
        Assert.Equal(DeliveryStatus.Uncertain, result.Status);
        Assert.Equal(FailureKind.Ambiguous, result.Failure!.Kind);
        Assert.Contains("may have delivered", result.Failure.Message);
    }
}

public class MailMergeAndCertificateTests
{
    [Fact]
    public void An_attachment_path_can_name_a_file_per_recipient_and_a_missing_one_fails_only_its_row()
    {
        var dir = Path.Combine(Path.GetTempPath(), "rm-merge-" + Guid.NewGuid().ToString("n"));
        Directory.CreateDirectory(dir);
        try
        {
            File.WriteAllText(Path.Combine(dir, "E1.txt"), "payslip of E1");
            var template = new MessageTemplate(new MessageSpec
            {
                From = "hr@example.com", To = new[] { "{{Email}}" }, Subject = "Payslip", TextBody = "Attached.",
                Attachments = new[] { Path.Combine(dir, "{{Id}}.txt") },
            });
            template.CheckFixedParts(); // a per-row file is not a setup error
            Assert.Contains(("Attachments", "Id"), template.Placeholders);

            var ok = MessageBuilder.Build(template.Render(new Dictionary<string, object?> { ["Email"] = "a@example.com", ["Id"] = "E1" }));
            Assert.Equal("E1.txt", Assert.Single(ok.Attachments.OfType<MimePart>()).FileName);

            var missing = Assert.Throws<MessageValidationException>(() =>
                MessageBuilder.Build(template.Render(new Dictionary<string, object?> { ["Email"] = "b@example.com", ["Id"] = "E2" })));
            Assert.Equal(ValidationProblem.AttachmentNotFound, missing.Problem);
            Assert.Contains("E2.txt", missing.Message);
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void An_unknown_revocation_status_says_so_and_offers_to_skip_only_that_check()
    {
        var problem = new CertificateProblem(System.Net.Security.SslPolicyErrors.RemoteCertificateChainErrors,
            System.Security.Cryptography.X509Certificates.X509ChainStatusFlags.RevocationStatusUnknown | System.Security.Cryptography.X509Certificates.X509ChainStatusFlags.OfflineRevocation)
        { Host = "relay.corp.example", Subject = "CN=relay.corp.example", Issuer = "CN=Corp CA" };
        var failure = SmtpFailureClassifier.Classify(new MailKit.Security.SslHandshakeException("handshake failed"), false, problem);

        Assert.True(problem.RevocationUnknown);
        Assert.Equal(FailureReason.Certificate, failure.Reason);
        Assert.Contains("revocation status", failure.Message);
        Assert.Equal(Remedy.SkipRevocationCheck, failure.Remedy);
    }

    [Fact]
    public void A_description_keeps_its_revocation_setting_in_the_journal()
    {
        var json = System.Text.Json.JsonSerializer.Serialize<TransportDescription>(new SmtpDescription { Host = "relay", Port = 25, SkipRevocationCheck = true });
        Assert.Contains("\"skipRevocationCheck\":true", json);
        var back = Assert.IsType<SmtpDescription>(System.Text.Json.JsonSerializer.Deserialize<TransportDescription>(json));
        Assert.True(back.SkipRevocationCheck);
        Assert.False(Assert.IsType<SmtpDescription>(System.Text.Json.JsonSerializer.Deserialize<TransportDescription>("{\"kind\":\"Smtp\",\"host\":\"h\",\"port\":25}")).SkipRevocationCheck);
    }
}

public class BccTests
{
    [Fact]
    public async Task Bcc_recipients_get_the_message_but_no_recipient_sees_a_Bcc_header()
    {
        await using var server = new ScriptedSmtpServer();
        using var courier = new Courier(new SmtpTransport(new SmtpOptions { Host = "127.0.0.1", Port = server.Port, Security = SmtpSecurity.None }),
            new CourierOptions { Pacing = PacingOptions.None }, new TcpProbe(), TimeProvider.System, new Random(1), null);
        var message = new MimeMessage(new[] { MailboxAddress.Parse("it@example.com") }, new[] { MailboxAddress.Parse("to@example.com") }, "s", new TextPart("plain") { Text = "b" });
        message.Bcc.Add(MailboxAddress.Parse("hidden@example.com"));

        var result = await courier.DeliverAsync(message, default);

        Assert.Equal(DeliveryStatus.Sent, result.Status);
        lock (server.Commands) Assert.Contains(server.Commands, c => c.Contains("RCPT TO:<hidden@example.com>"));
        var sent = Assert.Single(server.Accepted);
        Assert.DoesNotContain("hidden@example.com", sent);
        Assert.DoesNotContain("Bcc:", sent);
    }
}
