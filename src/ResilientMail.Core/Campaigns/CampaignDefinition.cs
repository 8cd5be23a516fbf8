using System;
using System.Collections.Generic;

namespace ResilientMail.Core.Campaigns
{
    /// <summary>Where a campaign's mail goes, without any secret: enough to rebuild the transport on resume.</summary>
    public sealed record TransportSettings
    {
        /// <summary>"Smtp", "PickupDirectory", "SendGrid" or "Ses".</summary>
        public string Kind { get; init; } = "Smtp";
        public string? Host { get; init; }
        public int Port { get; init; }
        public string? Security { get; init; }
        public bool SkipCertificateCheck { get; init; }
        /// <summary>The user name only; the password is never written anywhere.</summary>
        public string? UserName { get; init; }
        public double TimeoutSeconds { get; init; } = Defaults.Timeout.TotalSeconds;
        public string? PickupDirectory { get; init; }
        /// <summary>SendGrid's API root.</summary>
        public string? BaseUri { get; init; }
        /// <summary>SES: the region, an endpoint override and the named profile.</summary>
        public string? Region { get; init; }
        public string? EndpointUrl { get; init; }
        public string? ProfileName { get; init; }
        /// <summary>
        /// Where the secret came from: "Parameter" (the caller must pass the transport again on resume),
        /// "Environment" (SENDGRID_API_KEY, read again), or null (none, or the AWS chain/profile, resolved again).
        /// </summary>
        public string? SecretFrom { get; init; }

        /// <summary>A resume must be handed the transport again, since its secret is never stored.</summary>
        public bool NeedsCallerSecret => SecretFrom == "Parameter" || Kind == "Smtp" && UserName != null;

        public override string ToString() => Kind switch
        {
            "PickupDirectory" => $"pickup directory {PickupDirectory}",
            "SendGrid" => $"SendGrid {BaseUri}",
            "Ses" => $"Amazon SES {Region}{(EndpointUrl != null ? " at " + EndpointUrl : "")}{(ProfileName != null ? ", profile " + ProfileName : "")}",
            _ => $"smtp://{Host}:{Port} ({Security}{(UserName != null ? ", user " + UserName : "")})",
        };
    }

    /// <summary>What a campaign sends: written as the first record of its journal so that a resume needs only the name.</summary>
    public sealed record CampaignDefinition
    {
        public string Name { get; init; } = "";
        public string From { get; init; } = "";
        public string Subject { get; init; } = "";
        public string? TextBody { get; init; }
        public string? HtmlBody { get; init; }
        public string[] ReplyTo { get; init; } = new string[0];
        public string[] Cc { get; init; } = new string[0];
        public string[] Bcc { get; init; } = new string[0];
        public Dictionary<string, string> Headers { get; init; } = new Dictionary<string, string>();
        public string[] Attachments { get; init; } = new string[0];
        public string? UnsubscribeUrl { get; init; }
        public string? UnsubscribeMailto { get; init; }
        /// <summary>The column whose value identifies a recipient; the normalised address when null.</summary>
        public string? KeyColumn { get; init; }
        /// <summary>The column that holds the address (Email, EmailAddress, To, ... when null).</summary>
        public string? AddressColumn { get; init; }
        /// <summary>The CSV the rows came from, when -Path was used.</summary>
        public string? SourcePath { get; init; }
        public TransportSettings Transport { get; init; } = new TransportSettings();
        public DateTimeOffset Created { get; init; }
    }
}
