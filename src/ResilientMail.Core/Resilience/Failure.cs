using System;

namespace ResilientMail.Core.Resilience
{
    /// <summary>What a failure means for the next step.</summary>
    public enum FailureKind
    {
        /// <summary>Worth retrying: the server or the network may do better soon.</summary>
        Transient,
        /// <summary>Retrying will not help; the reason says why.</summary>
        Permanent,
        /// <summary>The connection died after the whole message was sent and before the reply: it may have been delivered.</summary>
        Ambiguous,
    }

    /// <summary>Why, in the mail domain. Cmdlets turn this into an ErrorId and category.</summary>
    public enum FailureReason
    {
        Network,
        Timeout,
        ServerBusy,
        Rejected,
        RecipientRejected,
        SenderRejected,
        Authentication,
        Certificate,
        Protocol,
        ConnectivityLost,
        ProviderSuspended,
        Throttled,
        /// <summary>The message is larger than the server or provider takes.</summary>
        MessageTooLarge,
    }

    /// <summary>
    /// What a person can change to fix a failure, named as a setting: the front end (the cmdlets) says which of its
    /// parameters that is. Core's messages say what happened and never name a parameter.
    /// </summary>
    [Flags]
    public enum Remedy
    {
        None = 0,
        /// <summary>The server's name or port.</summary>
        ServerAddress = 1,
        /// <summary>The TLS mode (TLS from the first byte, STARTTLS, none) and the port that goes with it.</summary>
        TlsMode = 2,
        /// <summary>Trust the server's certificate (or its CA) on this machine.</summary>
        TrustCertificate = 4,
        /// <summary>Accept any certificate: test servers, a relay on one's own network.</summary>
        SkipCertificateCheck = 8,
        /// <summary>Give credentials (a password, an OAuth2 token).</summary>
        Credentials = 16,
        /// <summary>Sign in after STARTTLS, or not at all.</summary>
        StartTlsForAuth = 32,
        /// <summary>Wait longer for the network.</summary>
        WaitLonger = 64,
        /// <summary>The provider API's address (an endpoint override), and any proxy in between.</summary>
        ProviderAddress = 128,
        /// <summary>An ASCII sender and Reply-To address.</summary>
        AsciiSender = 256,
        /// <summary>Skip only the revocation check (the CA's CRL or OCSP responder cannot be reached).</summary>
        SkipRevocationCheck = 512,
        /// <summary>The Microsoft 365 set-up: an app registration, its permission and consent, or a managed identity.</summary>
        Microsoft365 = 1024,
        /// <summary>The Google Workspace set-up: a service account with domain-wide delegation.</summary>
        GoogleWorkspace = 2048,
    }

    public sealed record Failure(FailureKind Kind, FailureReason Reason, string Message)
    {
        /// <summary>What can be changed to fix it; the cmdlets turn it into advice that names their parameters.</summary>
        public Remedy Remedy { get; init; }
        /// <summary>The server's own reply (code and text) where there was one.</summary>
        public string? ServerReply { get; init; }
        public int? StatusCode { get; init; }
        /// <summary>When the provider said how long to wait before trying again.</summary>
        public TimeSpan? RetryAfter { get; init; }
        /// <summary>The recipients the server refused, one by one, when that is what failed (RCPT TO).</summary>
        public System.Collections.Generic.IReadOnlyList<RecipientRefusal>? Refused { get; init; }
        /// <summary>
        /// The server refused a new connection at its greeting (421: too many connections from this client), which says
        /// nothing about the message: a campaign with other connections open hands the message to one of them.
        /// </summary>
        public bool RefusedConnection { get; init; }
        /// <summary>No later message can succeed either (bad credentials, suspended account).</summary>
        public bool StopsRun => Reason == FailureReason.Authentication || Reason == FailureReason.Certificate || Reason == FailureReason.ProviderSuspended || Reason == FailureReason.ConnectivityLost;
        /// <summary>The failure says the network path may be gone: check connectivity before the next attempt.</summary>
        public bool SuggestsOutage => Reason == FailureReason.Network || Reason == FailureReason.Timeout;
    }

    /// <summary>A setting that cannot work, named by its option (Region, ProfileName, Credentials): the front end names its parameter.</summary>
    public sealed class SettingException : ArgumentException
    {
        public SettingException(string setting, string message, Exception? inner = null) : base(message, inner) => Setting = setting;
        public string Setting { get; }
    }

    /// <summary>One envelope recipient the server (or the transport, for an address it cannot carry) would not take.</summary>
    public sealed record RecipientRefusal(string Address, Failure Failure);

    /// <summary>A classified failure of one delivery attempt; the original exception is kept as InnerException.</summary>
    public sealed class MailDeliveryException : Exception
    {
        public MailDeliveryException(Failure failure, Exception? inner = null) : base(failure.Message, inner)
        {
            Failure = failure;
        }

        public Failure Failure { get; }
    }
}
