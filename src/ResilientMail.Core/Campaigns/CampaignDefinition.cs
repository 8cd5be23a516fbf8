using System;
using System.Collections.Generic;

namespace ResilientMail.Core.Campaigns
{
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
        /// <summary>Where its mail goes, without any secret (the journal's "transport", in the same shape as every earlier version).</summary>
        public Transports.TransportDescription Transport { get; init; } = new Transports.SmtpDescription();
        public DateTimeOffset Created { get; init; }
        /// <summary>The part of the recipients this journal's runs take ("k/N"), when the campaign is split among workers.</summary>
        public string? Shard { get; init; }
    }
}
