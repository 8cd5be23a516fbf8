using System;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using Azure;
using Azure.Storage.Blobs.Models;
using Azure.Storage.Blobs.Specialized;
using ResilientMail.Core.Resilience;
using ResilientMail.Core.Transports;

namespace ResilientMail.Core.Campaigns
{
    /// <summary>
    /// A journal blob held by one run. Records are kept in memory until something must be durable; then everything
    /// written so far goes in one append (a group commit: what the workers write while one append is on its way goes in
    /// the next). Each append names the position it expects, so an append whose answer was lost and that is sent again
    /// is recognised as already there, and a write by anyone else is seen. While the store cannot be written, the caller
    /// waits with the network's rules (checked every 10 s, for up to 5 min) and nothing it holds is sent; then the run
    /// stops. The lease is renewed every third of its time; a lease lost to another run ends this one.
    /// </summary>
    internal sealed class BlobJournalAppender : JournalAppender
    {
        /// <summary>The blocks an append blob may hold (Azure's limit is 50,000); a journal continues in the next blob.</summary>
        internal static int MaxBlocksPerBlob = 49_000;
        /// <summary>The largest block an append takes (4 MiB, the limit of every service version).</summary>
        internal const int MaxBlockBytes = 4 * 1024 * 1024;

        /// <summary>How long a lease lasts without renewal (15-60 s; RESILIENTMAIL_LEASE_SECONDS sets it).</summary>
        internal static TimeSpan LeaseDuration
        {
            get
            {
                var text = Environment.GetEnvironmentVariable("RESILIENTMAIL_LEASE_SECONDS");
                return int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out int s) && s >= 15 && s <= 60 ? TimeSpan.FromSeconds(s) : TimeSpan.FromSeconds(60);
            }
        }

        private readonly BlobJournalStore _store;
        private readonly string _id;
        private readonly AppendBlobClient _head;
        private readonly BlobLeaseClient _lease;
        private readonly TimeSpan _leaseDuration;
        private readonly object _lock = new object();
        private readonly SemaphoreSlim _commit = new SemaphoreSlim(1, 1);
        private readonly MemoryStream _pending = new MemoryStream();
        private readonly Timer _renewal;
        private AppendBlobClient _current;
        private int _segment, _blocks;
        private long _length, _written, _durable;
        private string? _broken;
        private volatile bool _closing, _mustRenew;
        private bool _disposed;
        private ConnectivityGate? _gate;

        private BlobJournalAppender(BlobJournalStore store, string id, BlobLeaseClient lease, TimeSpan leaseDuration)
        {
            _store = store;
            _id = id;
            _head = store.Container.GetAppendBlobClient(id);
            _lease = lease;
            _leaseDuration = leaseDuration;
            _current = _head;
            _segment = 1;
            _renewal = new Timer(_ => Renew(), null, Timeout.Infinite, Timeout.Infinite);
        }

        public override bool DurableHandOver => true;
        public string LeaseId => _lease.LeaseId;

        public static BlobJournalAppender Open(BlobJournalStore store, string id)
        {
            var head = store.Container.GetAppendBlobClient(id);
            try
            {
                try { head.CreateIfNotExists(); }
                catch (RequestFailedException ex) when (ex.Status == 404)
                {
                    store.Container.CreateIfNotExists(); // the container is made on first use, when the credential may
                    head.CreateIfNotExists();
                }
                var duration = LeaseDuration;
                var lease = head.GetBlobLeaseClient(Guid.NewGuid().ToString());
                try { lease.Acquire(duration); }
                catch (RequestFailedException ex) when (ex.Status == 409)
                {
                    throw InUse(store, id, head, duration, ex);
                }
                var appender = new BlobJournalAppender(store, id, lease, duration);
                appender.Stamp();
                appender.FindEnd();
                var period = TimeSpan.FromTicks(duration.Ticks / 3);
                appender._renewal.Change(period, period);
                return appender;
            }
            catch (Exception ex) when (ex is not JournalLockedException && BlobJournalStore.Failed(ex))
            {
                throw new JournalStoreException($"The journal {store.Where(id)} cannot be opened: {BlobJournalStore.Describe(ex)}", ex);
            }
        }

        /// <summary>"In use by another run", with who holds it and when its lease expires if that run is gone.</summary>
        private static JournalLockedException InUse(BlobJournalStore store, string id, AppendBlobClient head, TimeSpan duration, Exception inner)
        {
            string holder = "another run", when = "";
            try
            {
                var meta = head.GetProperties().Value.Metadata;
                if (meta.TryGetValue("holder", out var h)) holder = $"another run ({h})";
                if (meta.TryGetValue("renewed", out var r) && DateTimeOffset.TryParse(r, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var renewed))
                    when = $" Its lease was last renewed at {renewed.UtcDateTime:HH:mm:ss} UTC and expires by {(renewed + duration).UtcDateTime:HH:mm:ss} UTC if that run is gone;" +
                           " after that a run may take the journal over.";
            }
            catch (RequestFailedException) { }
            if (when.Length == 0) when = $" If that run is gone, its lease expires within {duration.TotalSeconds:0} s and then a run may take the journal over.";
            return new JournalLockedException($"The journal {store.Where(id)} is in use by {holder}.{when}");
        }

        /// <summary>Who holds the lease and when it was last renewed, for a run that finds the journal in use.</summary>
        private void Stamp()
        {
            var holder = new string($"{Environment.MachineName} pid {System.Diagnostics.Process.GetCurrentProcess().Id}".Select(c => c >= 32 && c < 127 ? c : '_').ToArray());
            _head.SetMetadata(new Dictionary<string, string>
            {
                ["holder"] = holder,
                ["renewed"] = DateTimeOffset.UtcNow.ToString("o", CultureInfo.InvariantCulture),
            }, new Azure.Storage.Blobs.Models.BlobRequestConditions { LeaseId = _lease.LeaseId });
        }

        /// <summary>The last blob of the journal, its length and its blocks: where the next append goes.</summary>
        private void FindEnd()
        {
            var last = _store.Segments(_id).LastOrDefault() ?? _id;
            _segment = BlobJournalStore.SegmentNumber(_id, last);
            _current = _store.Container.GetAppendBlobClient(last);
            var props = _current.GetProperties().Value;
            _length = props.ContentLength;
            _blocks = props.BlobCommittedBlockCount;
            // A journal torn mid-record cannot be: each append is whole. Still, a last line is always ended.
        }

        private void Renew()
        {
            if (_closing || _broken != null) return;
            try
            {
                _lease.Renew();
                Stamp();
                _mustRenew = false;
            }
            catch (RequestFailedException ex) when (LeaseLost(ex)) { Break(TakenOver()); }
            catch (Exception) { _mustRenew = true; /* the store is out: appends wait for it, and renew before they go on */ }
        }

        // LeaseLost, LeaseIdMismatchWith…, LeaseNotPresentWith…, LeaseIsBroken…: 409 or 412 with a lease code. (Another 409,
        // such as BlockCountExceedsLimit, is not a lost lease.)
        private static bool LeaseLost(RequestFailedException ex) =>
            (ex.Status == 409 || ex.Status == 412) && (ex.ErrorCode ?? "").StartsWith("Lease", StringComparison.Ordinal);

        private string TakenOver() =>
            $"Another run took over the journal {_store.Where(_id)} (this run's lease had expired while the store could not be reached). This run stops; nothing more is sent by it.";

        private void Break(string reason)
        {
            lock (_lock) _broken ??= reason;
        }

        public override void Write(byte[] buffer, int count)
        {
            lock (_lock)
            {
                if (_disposed) throw new ObjectDisposedException(nameof(CampaignJournal));
                _pending.Write(buffer, 0, count);
                _written += count;
            }
        }

        public override void Flush(bool durable)
        {
            if (durable) ForceAsync().GetAwaiter().GetResult();
        }

        public override Task ForceAsync()
        {
            long target;
            lock (_lock)
            {
                if (_disposed) throw new ObjectDisposedException(nameof(CampaignJournal));
                target = _written;
                if (_durable >= target) return Task.CompletedTask;
            }
            return CommitAsync(target);
        }

        private async Task CommitAsync(long target)
        {
            await _commit.WaitAsync().ConfigureAwait(false);
            try
            {
                while (true)
                {
                    byte[] chunk;
                    lock (_lock)
                    {
                        if (_durable >= target) return;
                        if (_broken != null) throw new JournalStoreException(_broken);
                        chunk = TakeChunk();
                    }
                    await AppendAsync(chunk).ConfigureAwait(false);
                    lock (_lock)
                    {
                        // Drop what was appended from the front of what is kept; what came meanwhile stays.
                        var rest = _pending.Length - chunk.Length;
                        var buffer = _pending.GetBuffer();
                        Buffer.BlockCopy(buffer, chunk.Length, buffer, 0, (int)rest);
                        _pending.SetLength(rest);
                        _durable += chunk.Length;
                    }
                }
            }
            finally
            {
                _commit.Release();
            }
        }

        /// <summary>Everything kept, or its first 4 MiB ending at a line's end where one is.</summary>
        private byte[] TakeChunk()
        {
            int length = (int)Math.Min(_pending.Length, MaxBlockBytes);
            var buffer = _pending.GetBuffer();
            if (length < _pending.Length)
            {
                int end = Array.LastIndexOf(buffer, (byte)'\n', length - 1, length);
                if (end > 0) length = end + 1;
            }
            var chunk = new byte[length];
            Buffer.BlockCopy(buffer, 0, chunk, 0, length);
            return chunk;
        }

        /// <summary>One append, waited for while the store is out (the network's rules), exactly once however often it is sent.</summary>
        private async Task AppendAsync(byte[] chunk)
        {
            while (true)
            {
                try
                {
                    if (_mustRenew) await RenewBeforeWritingAsync().ConfigureAwait(false);
                    await AppendOnceAsync(chunk).ConfigureAwait(false);
                    _gate?.ReportSuccess();
                    return;
                }
                catch (JournalStoreException) { throw; }
                catch (RequestFailedException ex) when (LeaseLost(ex))
                {
                    Break(TakenOver());
                    throw new JournalStoreException(_broken!, ex);
                }
                catch (Exception ex) when (Transient(ex) && !_closing)
                {
                    _mustRenew = true;
                    await WaitForStoreAsync(ex).ConfigureAwait(false);
                }
                catch (Exception ex) when (ex is RequestFailedException || Transient(ex))
                {
                    var reason = $"The journal store {_store.Location} cannot be written: {BlobJournalStore.Describe(ex)}. Nothing was sent without its record.";
                    if (!_closing) Break(reason);
                    throw new JournalStoreException(reason, ex);
                }
            }
        }

        private async Task AppendOnceAsync(byte[] chunk)
        {
            if (_blocks >= MaxBlocksPerBlob) await NextSegmentAsync().ConfigureAwait(false);
            var conditions = new AppendBlobRequestConditions
            {
                IfAppendPositionEqual = _length,
                LeaseId = _segment == 1 ? _lease.LeaseId : null, // the lease is on the first blob; every write to it must name it
            };
            try
            {
                using var content = new MemoryStream(chunk, writable: false);
                await _current.AppendBlockAsync(content, new AppendBlobAppendBlockOptions { Conditions = conditions }).ConfigureAwait(false);
            }
            catch (RequestFailedException ex) when (ex.Status == 412 && ex.ErrorCode == "AppendPositionConditionNotMet")
            {
                // An append whose answer was lost, sent again: it is there if the blob grew by exactly this much.
                var props = (await _current.GetPropertiesAsync().ConfigureAwait(false)).Value;
                if (props.ContentLength != _length + chunk.Length)
                {
                    Break($"The journal {_store.Where(_id)} was written by another run meanwhile; this run stops and sends nothing more.");
                    throw new JournalStoreException(_broken!, ex);
                }
            }
            _length += chunk.Length;
            _blocks++;
        }

        private async Task NextSegmentAsync()
        {
            var next = _store.Container.GetAppendBlobClient(BlobJournalStore.SegmentName(_id, _segment + 1));
            await next.CreateIfNotExistsAsync().ConfigureAwait(false);
            _current = next;
            _segment++;
            _length = 0;
            _blocks = 0;
        }

        private async Task RenewBeforeWritingAsync()
        {
            // After the store was out, the lease may have lapsed and been taken: find out before writing anything.
            try { await _lease.RenewAsync().ConfigureAwait(false); }
            catch (RequestFailedException ex) when (LeaseLost(ex))
            {
                Break(TakenOver());
                throw new JournalStoreException(_broken!, ex);
            }
            _mustRenew = false;
        }

        private static bool Transient(Exception ex) => ex switch
        {
            RequestFailedException r => r.Status == 0 || r.Status == 408 || r.Status == 429 || r.Status >= 500,
            AggregateException a => a.InnerExceptions.All(Transient),
            IOException _ => true,
            System.Net.Http.HttpRequestException _ => true,
            OperationCanceledException _ => true, // the SDK's own timeout
            _ => false,
        };

        /// <summary>As an outage of the network: "waiting", checks at the interval, "back"; at the limit the run stops.</summary>
        private async Task WaitForStoreAsync(Exception failure)
        {
            _gate ??= new ConnectivityGate(new StoreProbe(this), new[] { StoreEndpoint() }, Connectivity, TimeProvider.System, Events);
            try
            {
                await _gate.WaitAsync(new ProbeResult(StoreEndpoint(), false, TimeSpan.Zero, "the journal store: " + BlobJournalStore.Describe(failure)), CancellationToken.None).ConfigureAwait(false);
            }
            catch (ConnectivityLostException lost)
            {
                Break($"The journal store {_store.Location} could not be written for {Waits(lost.Waited)} ({lost.LastError}). Nothing was sent without its record.");
                throw new JournalStoreException(_broken!, lost);
            }
        }

        private static string Waits(TimeSpan t) => t.TotalMinutes >= 1 ? $"{t.TotalMinutes:0.#} min" : $"{t.TotalSeconds:0} s";

        private Endpoint StoreEndpoint()
        {
            var uri = _store.Container.Uri;
            return new Endpoint(uri.Host, uri.Port);
        }

        /// <summary>"Is the store back?": a read of the blob being written, which needs what an append needs.</summary>
        private sealed class StoreProbe : IConnectivityProbe
        {
            private readonly BlobJournalAppender _owner;
            public StoreProbe(BlobJournalAppender owner) => _owner = owner;

            public async Task<ProbeResult> ProbeAsync(Endpoint target, TimeSpan timeout, CancellationToken cancellationToken)
            {
                var started = DateTimeOffset.UtcNow;
                using var limit = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
                limit.CancelAfter(timeout);
                try
                {
                    await _owner._current.GetPropertiesAsync(cancellationToken: limit.Token).ConfigureAwait(false);
                    return new ProbeResult(target, true, DateTimeOffset.UtcNow - started, null);
                }
                catch (Exception ex) when (!cancellationToken.IsCancellationRequested)
                {
                    return new ProbeResult(target, false, DateTimeOffset.UtcNow - started, "the journal store: " + BlobJournalStore.Describe(ex));
                }
            }
        }

        public override void Dispose()
        {
            lock (_lock)
            {
                if (_disposed) return;
            }
            _closing = true; // no more waiting: what is left gets one try
            _renewal.Dispose();
            try
            {
                long target;
                lock (_lock) target = _written;
                if (_broken == null) CommitAsync(target).Wait(TimeSpan.FromSeconds(30));
            }
            catch (Exception) { /* a record not stored: read back as the rules say (a "sending" without outcome is Uncertain) */ }
            lock (_lock) _disposed = true;
            if (_broken == null)
            {
                try { _lease.Release(); }
                catch (Exception) { /* it expires by itself */ }
            }
        }
    }
}
