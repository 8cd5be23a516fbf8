using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using Azure;
using Azure.Core;
using Azure.Identity;
using Azure.Storage.Blobs;
using Azure.Storage.Blobs.Models;
using Azure.Storage.Blobs.Specialized;

namespace ResilientMail.Core.Campaigns
{
    /// <summary>
    /// Journals in an Azure Blob Storage container, for runs whose own disk does not outlive them (an Azure Automation
    /// sandbox) or that move between machines (a Hybrid Worker group). A journal is an append blob of JSON lines named as
    /// the file would be ("payroll-dec.journal.jsonl"), continued in numbered blobs beside it ("….000002") when it nears
    /// the 50,000 blocks an append blob may hold. The run's lock is a lease on the first blob, renewed while the run
    /// lives. Credentials: a SAS in the address or given as a secret, a connection string given as a secret, or else
    /// Microsoft Entra through DefaultAzureCredential (a managed identity in Azure, the signed-in user elsewhere).
    /// </summary>
    public sealed class BlobJournalStore : JournalStore
    {
        private readonly Uri _address;

        private BlobJournalStore(BlobContainerClient container, Uri address)
        {
            Container = container;
            _address = address;
        }

        internal BlobContainerClient Container { get; }

        /// <summary>
        /// The store at a container's address (https://account.blob.core.windows.net/container, or an emulator's
        /// http://127.0.0.1:10000/account/container). <paramref name="secret"/>: a connection string or a SAS token; without
        /// one, a SAS in the address's query, else Microsoft Entra (DefaultAzureCredential).
        /// </summary>
        public static BlobJournalStore Connect(string address, string? secret = null, TimeSpan? timeout = null)
        {
            if (!Uri.TryCreate(address, UriKind.Absolute, out var uri) || uri.Scheme != Uri.UriSchemeHttps && uri.Scheme != Uri.UriSchemeHttp)
                throw new ArgumentException($"'{Redact(address)}' is not the address of a blob container: give it as https://<account>.blob.core.windows.net/<container>.");
            var plain = new UriBuilder(uri) { Query = "" }.Uri;
            var options = new BlobClientOptions();
            // The spec's retries (1, 2, 4 s) and a timeout on every call; a longer outage is waited for by the journal.
            options.Retry.MaxRetries = 3;
            options.Retry.Mode = RetryMode.Exponential;
            options.Retry.Delay = TimeSpan.FromSeconds(1);
            options.Retry.MaxDelay = TimeSpan.FromSeconds(4);
            options.Retry.NetworkTimeout = timeout ?? Defaults.Timeout;
            options.Diagnostics.ApplicationId = "ResilientMail";
            options.Diagnostics.IsDistributedTracingEnabled = false;
            var name = new BlobUriBuilder(plain).BlobContainerName;
            if (string.IsNullOrEmpty(name))
                throw new ArgumentException($"'{Redact(address)}' names no container: add it to the address (…/campaigns).");
            if (!System.Text.RegularExpressions.Regex.IsMatch(name, "^[a-z0-9](?!.*--)[a-z0-9-]{1,61}[a-z0-9]$"))
                throw new ArgumentException($"'{name}' is not a container name Azure accepts: 3 to 63 lowercase letters, digits and single hyphens, starting and ending with a letter or digit.");
            BlobContainerClient container;
            if (!string.IsNullOrEmpty(secret) && IsConnectionString(secret!))
                container = FromConnectionString(secret!, plain, name, options);
            else if (!string.IsNullOrEmpty(secret))
                container = new BlobContainerClient(plain, new AzureSasCredential(secret!.TrimStart('?')), options);
            else if (!string.IsNullOrEmpty(uri.Query) && uri.Query.IndexOf("sig=", StringComparison.OrdinalIgnoreCase) >= 0)
                container = new BlobContainerClient(uri, options);
            else
                container = new BlobContainerClient(plain, new DefaultAzureCredential(new DefaultAzureCredentialOptions { ExcludeInteractiveBrowserCredential = true }), options);
            return new BlobJournalStore(container, plain);
        }

        /// <summary>The address names the container; the connection string gives only the credential (an account key or a SAS), so the two cannot disagree.</summary>
        private static BlobContainerClient FromConnectionString(string connectionString, Uri address, string name, BlobClientOptions options)
        {
            var parts = connectionString.Split(new[] { ';' }, StringSplitOptions.RemoveEmptyEntries)
                .Select(p => p.Split(new[] { '=' }, 2)).Where(p => p.Length == 2)
                .GroupBy(p => p[0].Trim(), StringComparer.OrdinalIgnoreCase).ToDictionary(g => g.Key, g => g.Last()[1].Trim(), StringComparer.OrdinalIgnoreCase);
            if (parts.TryGetValue("AccountName", out var account) && parts.TryGetValue("AccountKey", out var key))
                return new BlobContainerClient(address, new Azure.Storage.StorageSharedKeyCredential(account, key), options);
            if (parts.TryGetValue("SharedAccessSignature", out var sas))
                return new BlobContainerClient(address, new AzureSasCredential(sas.TrimStart('?')), options);
            return new BlobContainerClient(connectionString, name, options);
        }

        private static bool IsConnectionString(string s) =>
            s.IndexOf("AccountName=", StringComparison.OrdinalIgnoreCase) >= 0 || s.IndexOf("BlobEndpoint=", StringComparison.OrdinalIgnoreCase) >= 0 ||
            s.IndexOf("UseDevelopmentStorage=", StringComparison.OrdinalIgnoreCase) >= 0;

        /// <summary>An address as it may be shown: without its query (a SAS is a secret).</summary>
        public static string Redact(string address)
        {
            int q = address.IndexOf('?');
            return q < 0 ? address : address.Substring(0, q) + "?<SAS removed>";
        }

        public override string Location => _address.ToString().TrimEnd('/');
        public override bool SharesBoot => false;

        public override string IdFor(string campaignName, Shard? shard = null) => SafeName(campaignName) + (shard?.Suffix ?? "") + Extension;

        public override IReadOnlyList<string> List()
        {
            try
            {
                return Container.GetBlobs().Select(b => b.Name).Where(n => n.EndsWith(Extension, StringComparison.Ordinal)).ToList();
            }
            catch (RequestFailedException ex) when (ex.Status == 404) { return new string[0]; }
            catch (Exception ex) when (Failed(ex)) { throw Unreadable(ex); }
        }

        public override bool Exists(string id)
        {
            try { return Container.GetAppendBlobClient(id).GetProperties().Value.ContentLength > 0; }
            catch (RequestFailedException ex) when (ex.Status == 404) { return false; }
            catch (Exception ex) when (Failed(ex)) { throw Unreadable(ex); }
        }

        public override Stream? OpenRead(string id)
        {
            var segments = Segments(id);
            if (segments.Count == 0) return null;
            return new SegmentStream(segments.Select(s => (Func<Stream>)(() => Container.GetBlobClient(s).DownloadStreaming().Value.Content)).ToList());
        }

        public override string Where(string id) => Location + "/" + id;
        public override string NameOf(string id) => Stem(id);

        /// <summary>The blobs of one journal, in order: the first, then its continuations.</summary>
        internal List<string> Segments(string id)
        {
            try
            {
                return Container.GetBlobs(BlobTraits.None, BlobStates.None, id, CancellationToken.None).Select(b => b.Name).Where(n => n == id || IsSegment(id, n, out _))
                    .OrderBy(n => n == id ? 1 : SegmentNumber(id, n)).ToList();
            }
            catch (RequestFailedException ex) when (ex.Status == 404) { return new List<string>(); }
            catch (Exception ex) when (Failed(ex)) { throw Unreadable(ex); }
        }

        internal static string SegmentName(string id, int n) => n <= 1 ? id : $"{id}.{n:000000}";

        internal static int SegmentNumber(string id, string name) => IsSegment(id, name, out int n) ? n : 1;

        private static bool IsSegment(string id, string name, out int n)
        {
            n = 1;
            return name.Length == id.Length + 7 && name.StartsWith(id + ".", StringComparison.Ordinal) &&
                   int.TryParse(name.Substring(id.Length + 1), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out n) && n > 1;
        }

        /// <summary>What the storage client throws when a call failed: its own error, retries exhausted (an AggregateException), the transport's, a credential's.</summary>
        internal static bool Failed(Exception ex) =>
            ex is RequestFailedException || ex is AggregateException || ex is System.Net.Http.HttpRequestException || ex is AuthenticationFailedException || ex is IOException;

        internal Exception Unreadable(Exception ex) =>
            new IOException($"The journal store {Location} cannot be read: {Describe(ex)}", ex);

        /// <summary>A storage failure in one line, without the request's headers (and so without any secret).</summary>
        internal static string Describe(Exception ex) => ex switch
        {
            RequestFailedException r when r.Status == 0 => FirstLine(r.InnerException?.Message ?? r.Message),
            RequestFailedException r when r.Status == 403 => $"403 {r.ErrorCode}: the credential is not allowed to use this container (a managed identity needs the Storage Blob Data Contributor role on it; a SAS needs read, add, create, write, delete and list).",
            RequestFailedException r => $"{r.Status} {r.ErrorCode}",
            AuthenticationFailedException a => "no Microsoft Entra token for the store: " + FirstLine(a.Message),
            AggregateException a => a.InnerExceptions.Count > 0 ? Describe(a.InnerExceptions[a.InnerExceptions.Count - 1]) : FirstLine(a.Message),
            _ => FirstLine(ex.Message),
        };

        private static string FirstLine(string s)
        {
            int nl = s.IndexOfAny(new[] { '\r', '\n' });
            return (nl < 0 ? s : s.Substring(0, nl)).Trim();
        }

        internal override JournalAppender OpenAppend(string id, TimeProvider time) => BlobJournalAppender.Open(this, id);

        internal override void Delete(string id, JournalAppender held)
        {
            var lease = (held as BlobJournalAppender)?.LeaseId;
            try
            {
                foreach (var segment in Segments(id).Where(s => s != id)) Container.GetBlobClient(segment).DeleteIfExists();
                Container.GetBlobClient(id).DeleteIfExists(DeleteSnapshotsOption.IncludeSnapshots, new BlobRequestConditions { LeaseId = lease });
            }
            catch (Exception ex) when (Failed(ex)) { throw new IOException($"The journal {Where(id)} cannot be deleted: {Describe(ex)}", ex); }
            finally { held.Dispose(); }
        }

        /// <summary>Several blobs read one after another as one stream.</summary>
        private sealed class SegmentStream : Stream
        {
            private readonly List<Func<Stream>> _parts;
            private int _next;
            private Stream? _current;

            public SegmentStream(List<Func<Stream>> parts) => _parts = parts;

            public override int Read(byte[] buffer, int offset, int count)
            {
                while (true)
                {
                    if (_current == null)
                    {
                        if (_next >= _parts.Count) return 0;
                        _current = _parts[_next++]();
                    }
                    int n = _current.Read(buffer, offset, count);
                    if (n > 0) return n;
                    _current.Dispose();
                    _current = null;
                }
            }

            protected override void Dispose(bool disposing)
            {
                if (disposing) _current?.Dispose();
                base.Dispose(disposing);
            }

            public override bool CanRead => true;
            public override bool CanSeek => false;
            public override bool CanWrite => false;
            public override long Length => throw new NotSupportedException();
            public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
            public override void Flush() { }
            public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
            public override void SetLength(long value) => throw new NotSupportedException();
            public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        }
    }
}
