using MimeKit;
using ResilientMail.Core.Messages;

namespace ResilientMail.Core.Tests;

public class MessageTests
{
    private static IReadOnlyDictionary<string, object?> Row(params (string, object?)[] cells) =>
        Template.Row(cells.Select(c => new KeyValuePair<string, object?>(c.Item1, c.Item2)));

    private static readonly MessageSpec Basic = new()
    {
        From = "IT <it@example.com>",
        To = new[] { "{{Email}}" },
        Subject = "Hello {{FirstName}}",
        TextBody = "Dear {{ firstname }}, your team is {{Department}}.",
    };

    [Fact]
    public void Every_message_has_a_current_date_and_a_message_id_in_the_senders_domain()
    {
        var before = DateTimeOffset.Now.AddSeconds(-2);
        var first = MessageBuilder.Build(Basic with { To = new[] { "a@example.com" } });
        var second = MessageBuilder.Build(Basic with { To = new[] { "b@example.com" } });
        Assert.InRange(first.Date, before, DateTimeOffset.Now.AddSeconds(2));
        Assert.Single(first.Headers, h => h.Id == HeaderId.Date);
        Assert.EndsWith("@example.com", first.MessageId);
        Assert.NotEqual(first.MessageId, second.MessageId);
    }

    [Fact]
    public void The_message_carries_exactly_one_date_and_one_message_id_and_an_idn_domain_in_its_ascii_form()
    {
        var msg = MessageBuilder.Build(Basic with { From = "ops@bücher.example", To = new[] { "a@example.com" } });
        Assert.Single(msg.Headers, h => h.Id == HeaderId.MessageId);
        Assert.Single(msg.Headers, h => h.Id == HeaderId.Date);
        Assert.Matches("^[0-9a-f]{32}@xn--bcher-kva\\.example$", msg.MessageId);
        // Two domains in turn: the kept encoding of the last domain is never used for another one.
        Assert.EndsWith("@example.com", MessageBuilder.Build(Basic with { From = "a@example.com", To = new[] { "b@example.com" } }).MessageId);
        Assert.EndsWith("@xn--bcher-kva.example", MessageBuilder.Build(Basic with { From = "ops@bücher.example", To = new[] { "b@example.com" } }).MessageId);
        var ids = Enumerable.Range(0, 1000).Select(i => MessageBuilder.Build(Basic with { To = new[] { $"r{i}@example.com" } }).MessageId).ToHashSet();
        Assert.Equal(1000, ids.Count);
    }

    [Fact]
    public void The_date_comes_from_the_clock_it_is_given()
    {
        var time = new Microsoft.Extensions.Time.Testing.FakeTimeProvider(new DateTimeOffset(2031, 3, 4, 5, 6, 7, TimeSpan.Zero));
        var msg = MessageBuilder.Build(Basic with { To = new[] { "a@example.com" } }, time);
        Assert.Equal(time.GetUtcNow(), msg.Date.ToUniversalTime());
    }

    [Fact]
    public void A_template_made_from_a_previous_one_renders_like_a_new_one_and_lists_the_columns_it_needs()
    {
        var first = new MessageTemplate(Basic);
        var next = new MessageTemplate(Basic with { To = new[] { "fixed@example.com" }, Subject = "Hi {{Nick}}" }, first);
        var fresh = new MessageTemplate(Basic with { To = new[] { "fixed@example.com" }, Subject = "Hi {{Nick}}" });
        var row = Row(("Nick", "Ada"), ("firstname", "Ada L"), ("Department", "R&D"), ("Email", "unused@example.com"));
        Assert.Equal(fresh.Render(row), next.Render(row), new SpecComparer());
        Assert.Equal("Hi Ada", next.Render(row).Subject);
        Assert.Equal(new[] { "fixed@example.com" }, next.Render(row).To);
        Assert.Equal(new[] { "Nick", "firstname", "Department" }, next.Columns);
        Assert.Equal(new[] { "FirstName", "Department", "Email" }, first.Columns);
    }

    [Fact]
    public void A_new_address_in_To_keeps_the_columns_and_a_new_placeholder_adds_its_own()
    {
        var first = new MessageTemplate(Basic with { To = new[] { "a@example.com" } });
        var second = new MessageTemplate(Basic with { To = new[] { "b@example.com" } }, first);
        Assert.Equal(new[] { "FirstName", "Department" }, second.Columns);
        var third = new MessageTemplate(Basic with { To = new[] { "{{Mail}}" } }, second);
        Assert.Equal(new[] { "FirstName", "Department", "Mail" }, third.Columns);
        var fourth = new MessageTemplate(Basic with { To = new[] { "c@example.com" }, Subject = "Hi {{Nick}}" }, third);
        Assert.Equal(new[] { "Nick", "firstname", "Department" }, fourth.Columns);
    }

    [Fact]
    public void On_the_system_clock_the_date_is_local_time_now()
    {
        var before = DateTimeOffset.Now;
        var msg = MessageBuilder.Build(Basic with { To = new[] { "a@example.com" } }, TimeProvider.System);
        Assert.InRange(msg.Date, before.AddSeconds(-1), DateTimeOffset.Now.AddSeconds(1)); // the header keeps whole seconds
        Assert.Equal(TimeZoneInfo.Local.GetUtcOffset(msg.Date.UtcDateTime), msg.Date.Offset);
    }

    private sealed class SpecComparer : IEqualityComparer<MessageSpec>
    {
        public bool Equals(MessageSpec? a, MessageSpec? b) => a!.Subject == b!.Subject && a.TextBody == b.TextBody && a.HtmlBody == b.HtmlBody &&
            a.From == b.From && a.To.SequenceEqual(b.To) && a.Cc.SequenceEqual(b.Cc) && a.Headers.SequenceEqual(b.Headers);
        public int GetHashCode(MessageSpec obj) => 0;
    }

    [Fact]
    public void Placeholders_are_filled_from_the_row_case_insensitively()
    {
        var msg = MessageBuilder.Build(new MessageTemplate(Basic), Row(("FirstName", "Ada"), ("Email", "ada@example.com"), ("Department", "R&D")));
        Assert.Equal("Hello Ada", msg.Subject);
        Assert.Equal("Dear Ada, your team is R&D.", msg.TextBody);
        Assert.Equal("ada@example.com", msg.To.Mailboxes.Single().Address);
        Assert.Equal("IT", msg.From.Mailboxes.Single().Name);
    }

    [Fact]
    public void A_missing_column_is_an_error_naming_it_before_anything_is_built()
    {
        var ex = Assert.Throws<MessageValidationException>(() =>
            MessageBuilder.Build(new MessageTemplate(Basic), Row(("FirstName", "Ada"), ("Email", "ada@example.com"))));
        Assert.Equal(ValidationProblem.MissingPlaceholder, ex.Problem);
        Assert.Contains("{{Department}}", ex.Message);
        Assert.Equal("Body", ex.Field);
    }

    [Fact]
    public void Template_lists_its_placeholders_once()
    {
        var t = new MessageTemplate(Basic);
        Assert.Equal(new[] { "FirstName", "firstname", "Department", "Email" }, t.Placeholders.Select(p => p.Name));
        Assert.Equal(new[] { "FirstName", "Department" }, new Template("{{FirstName}} {{Department}} {{firstname}}").Names);
    }

    [Theory]
    [InlineData("Hello\r\nBcc: victim@example.com")]
    [InlineData("Hello\nX-Evil: 1")]
    [InlineData("Hello\r")]
    public void A_line_break_in_the_subject_is_refused(string subject)
    {
        var ex = Assert.Throws<MessageValidationException>(() => MessageBuilder.Build(Basic with { To = new[] { "a@example.com" }, Subject = subject }));
        Assert.Equal(ValidationProblem.HeaderInjection, ex.Problem);
        Assert.Equal("Subject", ex.Field);
    }

    [Fact]
    public void A_line_break_coming_from_a_csv_cell_is_refused()
    {
        var ex = Assert.Throws<MessageValidationException>(() =>
            MessageBuilder.Build(new MessageTemplate(Basic), Row(("FirstName", "Ada\r\nBcc: x@example.com"), ("Email", "ada@example.com"), ("Department", "R"))));
        Assert.Equal(ValidationProblem.HeaderInjection, ex.Problem);
    }

    [Fact]
    public void Line_breaks_in_display_names_and_custom_headers_are_refused()
    {
        Assert.Equal(ValidationProblem.HeaderInjection, Assert.Throws<MessageValidationException>(() =>
            MessageBuilder.Build(Basic with { To = new[] { "\"Ada\r\nBcc: x@example.com\" <a@example.com>" }, Subject = "s" })).Problem);
        Assert.Equal(ValidationProblem.HeaderInjection, Assert.Throws<MessageValidationException>(() =>
            MessageBuilder.Build(Basic with { To = new[] { "a@example.com" }, Subject = "s", Headers = new[] { new KeyValuePair<string, string>("X-Tag", "a\r\nBcc: x@example.com") } })).Problem);
    }

    [Theory]
    [InlineData("not-an-address")]
    [InlineData("ada@")]
    [InlineData("@example.com")]
    [InlineData("ada example.com")]
    [InlineData("ada@example..com")]
    [InlineData("Doe, ada@example.com")]
    [InlineData("")]
    public void Bad_addresses_are_refused(string to)
    {
        var ex = Assert.Throws<MessageValidationException>(() => MessageBuilder.Build(Basic with { To = new[] { to }, Subject = "s" }));
        Assert.Equal(ValidationProblem.InvalidAddress, ex.Problem);
        Assert.Equal("To", ex.Field);
    }

    [Theory]
    [InlineData("Ada Lovelace <ada@example.com>", "ada@example.com")]
    [InlineData("\"Lovelace, Ada\" <ada@example.com>", "ada@example.com")]
    [InlineData("josé@exämple.com", "josé@exämple.com")]
    [InlineData("用户@例子.广告", "用户@例子.广告")]
    // What Send-MailMessage accepts: a single-label domain an internal relay delivers, a display name with a comma.
    [InlineData("backup@localhost", "backup@localhost")]
    [InlineData("it@intranet", "it@intranet")]
    [InlineData("Doe, Jane <jane@example.com>", "jane@example.com")]
    public void Display_names_and_international_addresses_are_accepted(string to, string address)
    {
        var msg = MessageBuilder.Build(Basic with { To = new[] { to }, Subject = "s" });
        Assert.Equal(address, msg.To.Mailboxes.Single().Address);
    }

    [Fact]
    public void Text_and_html_make_multipart_alternative_with_attachments_and_headers()
    {
        var file = Path.Combine(Path.GetTempPath(), $"rm-{Guid.NewGuid():n}.txt");
        File.WriteAllText(file, "report");
        try
        {
            var msg = MessageBuilder.Build(new MessageSpec
            {
                From = "it@example.com",
                To = new[] { "a@example.com, b@example.com" },
                Cc = new[] { "c@example.com" },
                Bcc = new[] { "d@example.com" },
                ReplyTo = new[] { "help@example.com" },
                Subject = "Report",
                TextBody = "plain",
                HtmlBody = "<p>html</p>",
                Attachments = new[] { file },
                Headers = new[] { new KeyValuePair<string, string>("X-Campaign", "nov") },
                Priority = ResilientMail.Core.Messages.MessagePriority.High,
            });
            Assert.Equal(2, msg.To.Count);
            Assert.Equal("c@example.com", msg.Cc.Mailboxes.Single().Address);
            Assert.Equal("d@example.com", msg.Bcc.Mailboxes.Single().Address);
            Assert.Equal("help@example.com", msg.ReplyTo.Mailboxes.Single().Address);
            Assert.Equal("nov", msg.Headers["X-Campaign"]);
            Assert.Equal(MimeKit.MessagePriority.Urgent, msg.Priority);
            var mixed = Assert.IsType<Multipart>(msg.Body);
            Assert.Equal("mixed", mixed.ContentType.MediaSubtype);
            var alternative = Assert.IsType<MultipartAlternative>(mixed[0]);
            Assert.Equal(new[] { "plain", "html" }, alternative.Select(p => p.ContentType.MediaSubtype));
            Assert.Equal(Path.GetFileName(file), msg.Attachments.Single().ContentDisposition.FileName);
            Assert.False(string.IsNullOrEmpty(msg.MessageId));
            Assert.EndsWith("example.com", msg.MessageId);
        }
        finally { File.Delete(file); }
    }

    [Fact]
    public void A_missing_attachment_is_refused()
    {
        var ex = Assert.Throws<MessageValidationException>(() => MessageBuilder.Build(Basic with { To = new[] { "a@example.com" }, Subject = "s", Attachments = new[] { "/no/such/file.pdf" } }));
        Assert.Equal(ValidationProblem.AttachmentNotFound, ex.Problem);
    }

    [Theory]
    [InlineData("Subject")]
    [InlineData("bcc")]
    [InlineData("Bad Name")]
    [InlineData("X:Y")]
    public void Reserved_or_malformed_header_names_are_refused(string name)
    {
        var ex = Assert.Throws<MessageValidationException>(() => MessageBuilder.Build(Basic with { To = new[] { "a@example.com" }, Subject = "s", Headers = new[] { new KeyValuePair<string, string>(name, "v") } }));
        Assert.Equal(ValidationProblem.InvalidHeader, ex.Problem);
    }

    [Fact]
    public void Each_message_gets_its_own_message_id()
    {
        var spec = Basic with { To = new[] { "a@example.com" }, Subject = "s" };
        Assert.NotEqual(MessageBuilder.Build(spec).MessageId, MessageBuilder.Build(spec).MessageId);
    }
}
