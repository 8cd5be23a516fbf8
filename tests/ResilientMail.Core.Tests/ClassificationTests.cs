using System.Net.Sockets;
using MailKit.Net.Smtp;
using ResilientMail.Core.Resilience;

namespace ResilientMail.Core.Tests;

public class ClassificationTests
{
    [Fact]
    public void Setup_mistakes_are_named_with_what_to_do()
    {
        var noStartTls = SmtpFailureClassifier.Classify(new NotSupportedException("The SMTP server does not support the STARTTLS extension."), false);
        Assert.Equal((FailureKind.Permanent, FailureReason.Certificate), (noStartTls.Kind, noStartTls.Reason));
        Assert.Contains("does not offer STARTTLS", noStartTls.Message);
        Assert.True(noStartTls.StopsRun);

        var noAuth = SmtpFailureClassifier.Classify(new NotSupportedException("The SMTP server does not support authentication."), false);
        Assert.Equal(FailureReason.Authentication, noAuth.Reason);
        Assert.Contains("after STARTTLS", noAuth.Message);

        var needsAuth = SmtpFailureClassifier.Classify(new MailKit.ServiceNotAuthenticatedException("Authentication is required"), false);
        Assert.Equal((FailureKind.Permanent, FailureReason.Authentication), (needsAuth.Kind, needsAuth.Reason));
        Assert.Equal(Remedy.Credentials, needsAuth.Remedy);

        var refused = SmtpFailureClassifier.Classify(new SocketException((int)SocketError.ConnectionRefused), false);
        Assert.Equal((FailureKind.Transient, FailureReason.Network), (refused.Kind, refused.Reason));
        Assert.Contains("Check the server's name and port", refused.Message);
        Assert.Equal(Remedy.ServerAddress, refused.Remedy);
    }

    [Theory]
    [InlineData(421, "4.3.2 Service shutting down", FailureKind.Transient, FailureReason.ServerBusy)]
    [InlineData(450, "4.2.1 Mailbox busy", FailureKind.Transient, FailureReason.ServerBusy)]
    [InlineData(451, "Local error in processing", FailureKind.Transient, FailureReason.ServerBusy)]
    [InlineData(452, "4.5.3 Too many recipients", FailureKind.Transient, FailureReason.ServerBusy)]
    [InlineData(454, "4.7.0 TLS not available", FailureKind.Transient, FailureReason.ServerBusy)]
    [InlineData(550, "5.1.1 No such user", FailureKind.Permanent, FailureReason.Rejected)]
    [InlineData(553, "Mailbox name not allowed", FailureKind.Permanent, FailureReason.Rejected)]
    [InlineData(554, "5.7.1 Message refused", FailureKind.Permanent, FailureReason.Rejected)]
    [InlineData(535, "5.7.8 Authentication credentials invalid", FailureKind.Permanent, FailureReason.Authentication)]
    // The basic code decides the class; the enhanced code never overrides it (RFC 5321 4.2.1, RFC 3463).
    [InlineData(451, "5.7.1 Greylisted, please try again later", FailureKind.Transient, FailureReason.ServerBusy)]
    [InlineData(451, "4.7.1 Greylisted for 300 seconds", FailureKind.Transient, FailureReason.ServerBusy)]
    [InlineData(550, "4.7.1 Client host rejected", FailureKind.Permanent, FailureReason.Rejected)]
    [InlineData(550, "4.2.2 Mailbox full, try later", FailureKind.Permanent, FailureReason.Rejected)]
    [InlineData(452, "5.3.4 Message too big", FailureKind.Transient, FailureReason.ServerBusy)]
    // Size is named as such, whichever command it answers.
    [InlineData(552, "5.3.4 Message size exceeds fixed limit", FailureKind.Permanent, FailureReason.MessageTooLarge)]
    [InlineData(552, "Message size exceeds maximum permitted", FailureKind.Permanent, FailureReason.MessageTooLarge)]
    [InlineData(554, "5.3.4 Message too big for system", FailureKind.Permanent, FailureReason.MessageTooLarge)]
    public void Smtp_replies_are_classified_by_their_codes(int code, string text, FailureKind kind, FailureReason reason)
    {
        var failure = SmtpFailureClassifier.FromReply(code, text);
        Assert.Equal(kind, failure.Kind);
        Assert.Equal(reason, failure.Reason);
        Assert.Contains(code.ToString(), failure.ServerReply);
        Assert.Contains(text, failure.Message);
    }

    [Fact]
    public void A_rejected_recipient_is_permanent_and_named_as_such()
    {
        var ex = new SmtpCommandException(SmtpErrorCode.RecipientNotAccepted, SmtpStatusCode.MailboxUnavailable, "5.1.1 User unknown");
        var failure = SmtpFailureClassifier.Classify(ex, bodySent: false);
        Assert.Equal(FailureKind.Permanent, failure.Kind);
        Assert.Equal(FailureReason.RecipientRejected, failure.Reason);
        Assert.Equal("550 5.1.1 User unknown", failure.ServerReply);
    }

    [Theory]
    [InlineData(false, FailureKind.Transient)]
    [InlineData(true, FailureKind.Ambiguous)]
    public void Network_errors_are_transient_before_the_body_is_sent_and_ambiguous_after(bool bodySent, FailureKind expected)
    {
        Assert.Equal(expected, SmtpFailureClassifier.Classify(new IOException("reset", new SocketException((int)SocketError.ConnectionReset)), bodySent).Kind);
        Assert.Equal(expected, SmtpFailureClassifier.Classify(new SocketException((int)SocketError.ConnectionRefused), bodySent).Kind);
        Assert.Equal(expected, SmtpFailureClassifier.Classify(new SmtpProtocolException("unexpected disconnect"), bodySent).Kind);
        Assert.Equal(expected, SmtpFailureClassifier.Classify(new TimeoutException(), bodySent).Kind);
    }

    [Fact]
    public void Authentication_and_tls_failures_stop_the_run()
    {
        var auth = SmtpFailureClassifier.Classify(new MailKit.Security.AuthenticationException("535: bad"), false);
        Assert.Equal(FailureReason.Authentication, auth.Reason);
        Assert.True(auth.StopsRun);
        var tls = SmtpFailureClassifier.Classify(new System.Security.Authentication.AuthenticationException("remote certificate invalid"), false);
        Assert.Equal(FailureReason.Certificate, tls.Reason);
        Assert.True(tls.StopsRun);
        Assert.True(tls.Remedy.HasFlag(Remedy.SkipCertificateCheck));
    }

    [Fact]
    public void Outage_hints_come_only_from_network_and_timeout_failures()
    {
        Assert.True(SmtpFailureClassifier.Classify(new SocketException((int)SocketError.ConnectionRefused), false).SuggestsOutage);
        Assert.False(SmtpFailureClassifier.FromReply(451, "try later").SuggestsOutage);
        Assert.False(SmtpFailureClassifier.FromReply(550, "no").SuggestsOutage);
    }

    [Fact]
    public void Core_messages_name_no_PowerShell_parameter()
    {
        // Core says what happened; the cmdlets say which of their parameters changes it (Remedy).
        var failures = new[]
        {
            SmtpFailureClassifier.Classify(new NotSupportedException("The SMTP server does not support the STARTTLS extension."), false),
            SmtpFailureClassifier.Classify(new NotSupportedException("The SMTP server does not support authentication."), false),
            SmtpFailureClassifier.Classify(new MailKit.ServiceNotAuthenticatedException("Authentication is required"), false),
            SmtpFailureClassifier.Classify(new SocketException((int)SocketError.ConnectionRefused), false),
            SmtpFailureClassifier.Classify(new SocketException((int)SocketError.HostNotFound), false),
            SmtpFailureClassifier.Classify(new System.Security.Authentication.AuthenticationException("remote certificate invalid"), false),
            Core.Transports.Http.HttpFailures.FromStatus("SendGrid", 307, null, null, new Uri("https://elsewhere.example.com/")),
        };
        foreach (var f in failures)
        {
            Assert.DoesNotMatch(@"(^|\s|\()-[A-Z][A-Za-z]+", f.Message);
            Assert.NotEqual(Remedy.None, f.Remedy);
        }
    }
}
