using System;
using System.IO;
using System.Net;
using System.Net.Http;
using System.Threading;
using System.Threading.Tasks;
using MimeKit;
using ResilientMail.Core.Resilience;

namespace ResilientMail.Core.Transports.Http
{
    /// <summary>
    /// What the HTTP providers share: one HttpClient per transport (its pooled connection is reused like an
    /// SMTP connection), no timeout of its own (the engine's timeout cancels the call), a note of when the
    /// request body has been written (so a later network failure is ambiguous), and failure classification.
    /// </summary>
    public abstract class HttpMailTransport : IMailTransport
    {
        private readonly BodyTracker _tracker;

        /// <param name="handler">The HTTP stack (tests); it must not follow redirects (the default one does not).</param>
        protected HttpMailTransport(string provider, Uri baseUri, TimeSpan timeout, TimeProvider? time, HttpMessageHandler? handler)
        {
            if (baseUri == null) throw new ArgumentNullException(nameof(baseUri));
            if (!baseUri.IsAbsoluteUri || (baseUri.Scheme != Uri.UriSchemeHttps && baseUri.Scheme != Uri.UriSchemeHttp))
                throw new ArgumentException($"'{baseUri}' is not an http(s) address.", nameof(baseUri));
            if (timeout <= TimeSpan.Zero) throw new ArgumentOutOfRangeException(nameof(timeout), timeout, "The timeout must be greater than zero.");
            Provider = provider;
            BaseUri = baseUri;
            Timeout = timeout;
            Time = time ?? TimeProvider.System;
            Endpoint = new Endpoint(baseUri.IdnHost, baseUri.Port);
            _tracker = new BodyTracker(handler ?? new HttpClientHandler { AutomaticDecompression = DecompressionMethods.GZip | DecompressionMethods.Deflate, AllowAutoRedirect = false });
            Http = new HttpClient(_tracker) { Timeout = System.Threading.Timeout.InfiniteTimeSpan };
        }

        /// <summary>"SendGrid", "Amazon SES": the name used in messages.</summary>
        public string Provider { get; }
        public Uri BaseUri { get; }
        public Endpoint Endpoint { get; }
        public TimeSpan Timeout { get; }
        public abstract string Description { get; }
        protected TimeProvider Time { get; }
        protected HttpClient Http { get; }

        public async Task<Receipt> SendAsync(MimeMessage message, SendAttempt attempt, CancellationToken cancellationToken)
        {
            _tracker.Current = attempt;
            try
            {
                return await SendCoreAsync(message, attempt, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception ex) when (!(ex is OperationCanceledException) && !(ex is MailDeliveryException))
            {
                throw new MailDeliveryException(HttpFailures.FromException(Provider, Endpoint, ex, attempt.BodySent), ex);
            }
            finally
            {
                _tracker.Current = null;
            }
        }

        /// <summary>One request. Throw <see cref="MailDeliveryException"/> for a refusal; let network errors through.</summary>
        protected abstract Task<Receipt> SendCoreAsync(MimeMessage message, SendAttempt attempt, CancellationToken cancellationToken);

        private const string NotDeliveryKey = "ResilientMail.NotTheDelivery";

        /// <summary>
        /// A request that cannot deliver the message by itself (a draft, an upload): a network failure after its body was
        /// written leaves nothing sent, so it does not make the attempt ambiguous.
        /// </summary>
        protected static void NotTheDelivery(HttpRequestMessage request) => request.Properties[NotDeliveryKey] = true;

        /// <summary>HTTP keeps no conversation to end; pooled connections close when the transport is disposed.</summary>
        public Task CloseAsync(CancellationToken cancellationToken) => Task.CompletedTask;

        public void Dispose() => Http.Dispose();

        /// <summary>Marks the attempt once the request body has been written to the connection.</summary>
        private sealed class BodyTracker : DelegatingHandler
        {
            public BodyTracker(HttpMessageHandler inner) : base(inner) { }

            public SendAttempt? Current { get; set; }

            protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
            {
                var attempt = Current;
                if (attempt != null && request.Content != null && !request.Properties.ContainsKey(NotDeliveryKey)) request.Content = new TrackedContent(request.Content, attempt);
                return base.SendAsync(request, cancellationToken);
            }
        }

        private sealed class TrackedContent : HttpContent
        {
            private readonly HttpContent _inner;
            private readonly SendAttempt _attempt;

            public TrackedContent(HttpContent inner, SendAttempt attempt)
            {
                _inner = inner;
                _attempt = attempt;
                foreach (var header in inner.Headers) Headers.TryAddWithoutValidation(header.Key, header.Value);
            }

            protected override async Task SerializeToStreamAsync(Stream stream, TransportContext? context)
            {
                await _inner.CopyToAsync(stream).ConfigureAwait(false);
                await stream.FlushAsync().ConfigureAwait(false);
                _attempt.MarkBodySent();
            }

            protected override bool TryComputeLength(out long length)
            {
                var known = _inner.Headers.ContentLength;
                length = known ?? 0;
                return known.HasValue;
            }

            protected override void Dispose(bool disposing)
            {
                if (disposing) _inner.Dispose();
                base.Dispose(disposing);
            }
        }
    }
}
