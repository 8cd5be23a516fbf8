using System;
using System.Diagnostics;
using System.IO;
using System.Linq;
using System.Net;
using System.Net.Sockets;
using Azure.Storage;
using Azure.Storage.Blobs;
using Azure.Storage.Blobs.Specialized;
using Azure.Storage.Sas;
using ResilientMail.Core.Campaigns;
using ResilientMail.Core.Tests.Support;
using Xunit;

namespace ResilientMail.Core.Tests
{
    /// <summary>Azurite (tests/azurite, installed by build.ps1 -Task Test) on a free loopback port, telemetry off, for the class.</summary>
    public sealed class AzuriteFixture : IDisposable
    {
        public const string Account = "devstoreaccount1";
        public const string Key = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
        private readonly Process _node;
        private readonly string _dir = Path.Combine(Path.GetTempPath(), "rm-azurite-x-" + Guid.NewGuid().ToString("n").Substring(0, 8));

        public AzuriteFixture()
        {
            var root = AppContext.BaseDirectory;
            while (root != null && !File.Exists(Path.Combine(root, "ResilientMail.sln"))) root = Path.GetDirectoryName(root);
            var main = Path.Combine(root ?? ".", "tests/azurite/node_modules/azurite/dist/src/blob/main.js");
            if (!File.Exists(main)) throw new InvalidOperationException($"Azurite is not installed at {main}: run build.ps1 -Task Test (npm ci in tests/azurite).");
            var listener = new TcpListener(IPAddress.Loopback, 0);
            listener.Start();
            Port = ((IPEndPoint)listener.LocalEndpoint).Port;
            listener.Stop();
            Directory.CreateDirectory(_dir);
            var psi = new ProcessStartInfo("node") { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
            foreach (var a in new[] { main, "--blobHost", "127.0.0.1", "--blobPort", Port.ToString(), "--location", _dir, "--silent", "--skipApiVersionCheck", "--loose", "--disableTelemetry" })
                psi.ArgumentList.Add(a);
            _node = Process.Start(psi)!;
            _node.OutputDataReceived += (_, _) => { };
            _node.ErrorDataReceived += (_, _) => { };
            _node.BeginOutputReadLine();
            _node.BeginErrorReadLine();
            _ = Eventually.Until(() =>
            {
                try { using var c = new TcpClient(); c.Connect(IPAddress.Loopback, Port); return true; }
                catch (SocketException) { return false; }
            }, TimeSpan.FromSeconds(60)).GetAwaiter().GetResult();
        }

        public int Port { get; }
        public string Endpoint => $"http://127.0.0.1:{Port}/{Account}";
        public string ConnectionString => $"DefaultEndpointsProtocol=http;AccountName={Account};AccountKey={Key};BlobEndpoint={Endpoint};";
        public string NewContainer() => $"{Endpoint}/t{Guid.NewGuid():n}".Substring(0, Endpoint.Length + 1 + 12);

        public void Dispose()
        {
            try { if (!_node.HasExited) { _node.Kill(true); _node.WaitForExit(10000); } } catch (InvalidOperationException) { }
            try { Directory.Delete(_dir, true); } catch (IOException) { }
        }
    }

    public sealed class BlobJournalTests : IClassFixture<AzuriteFixture>
    {
        private readonly AzuriteFixture _azurite;
        public BlobJournalTests(AzuriteFixture azurite) => _azurite = azurite;

        [Fact]
        public void A_journal_past_an_append_blobs_block_limit_continues_in_the_next_blob_and_reads_back_whole()
        {
            var store = BlobJournalStore.Connect(_azurite.NewContainer(), _azurite.ConnectionString);
            var id = store.IdFor("rollover");
            int saved = BlobJournalAppender.MaxBlocksPerBlob;
            BlobJournalAppender.MaxBlocksPerBlob = 5;
            try
            {
                using (var journal = CampaignJournal.Open(store, id))
                {
                    journal.WriteDefinition(new CampaignDefinition { Name = "rollover", From = "a@example.com", Subject = "s" });
                    journal.Run(RecordKind.RunStarted, "start");
                    for (int i = 1; i <= 23; i++)
                    {
                        journal.Pending($"r{i}@example.com", i, null);
                        journal.SendingAsync($"r{i}@example.com", $"r{i}@example.com").Wait(); // one durable append each
                        if (i % 2 == 0) journal.Sent($"r{i}@example.com", $"<{i}@x>", "250 ok", 1, TimeSpan.Zero);
                    }
                }
                Assert.True(store.Segments(id).Count >= 5, $"{store.Segments(id).Count} blobs"); // 25+ appends at 5 a blob
                var snapshot = JournalSnapshot.Load(store, id);
                Assert.Equal("rollover", snapshot.Definition!.Name);
                Assert.Equal(23, snapshot.Rows);
                Assert.Equal(11, snapshot.Count(RecipientState.Sent));
                Assert.Equal(12, snapshot.Count(RecipientState.Sending)); // durable "sending", no outcome: Uncertain on resume
                Assert.Equal(new[] { id }, store.List().ToArray()); // the continuations are not journals of their own

                // A second run appends after the last blob, and the reader sees both runs.
                using (var again = CampaignJournal.Open(store, id)) again.Run(RecordKind.RunStarted, "again");
                Assert.Equal(2, JournalSnapshot.Load(store, id).Runs);
            }
            finally { BlobJournalAppender.MaxBlocksPerBlob = saved; }
        }

        [Fact]
        public void A_store_given_by_a_SAS_works_and_never_shows_it()
        {
            var container = _azurite.NewContainer();
            var name = new BlobUriBuilder(new Uri(container)).BlobContainerName;
            new BlobContainerClient(_azurite.ConnectionString, name).CreateIfNotExists();
            var sas = new BlobSasBuilder(BlobContainerSasPermissions.All, DateTimeOffset.UtcNow.AddHours(1)) { BlobContainerName = name }
                .ToSasQueryParameters(new StorageSharedKeyCredential(AzuriteFixture.Account, AzuriteFixture.Key)).ToString();
            foreach (var store in new[] { BlobJournalStore.Connect(container + "?" + sas), BlobJournalStore.Connect(container, sas) })
            {
                var id = store.IdFor("sas-" + Guid.NewGuid().ToString("n").Substring(0, 6));
                using (var journal = CampaignJournal.Open(store, id))
                {
                    journal.Run(RecordKind.RunStarted, "start");
                    Assert.DoesNotContain("sig=", journal.Path);
                }
                Assert.Equal(1, JournalSnapshot.Load(store, id).Runs);
                Assert.DoesNotContain("sig=", store.Location + store.Where(id));
            }
            Assert.DoesNotContain("sig=", BlobJournalStore.Redact(container + "?" + sas));
        }

        [Fact]
        public void A_run_whose_lease_was_taken_over_writes_nothing_more_and_says_so()
        {
            var store = BlobJournalStore.Connect(_azurite.NewContainer(), _azurite.ConnectionString);
            var id = store.IdFor("taken");
            var first = CampaignJournal.Open(store, id);
            first.Run(RecordKind.RunStarted, "first");
            // As after a long outage of the store: the lease lapsed (broken here) and another run took the journal.
            var head = store.Container.GetBlobClient(id);
            head.GetBlobLeaseClient().Break(TimeSpan.Zero);
            using var second = CampaignJournal.Open(store, id);
            second.Run(RecordKind.RunStarted, "second");
            first.Pending("a@example.com", 1, null);
            var stopped = Assert.Throws<JournalStoreException>(() => first.SendingAsync("a@example.com", "a@example.com").GetAwaiter().GetResult());
            Assert.Contains("Another run took over the journal", stopped.Message);
            first.Dispose();
            var snapshot = JournalSnapshot.Load(store, id);
            Assert.Equal(2, snapshot.Runs);
            Assert.Null(snapshot.StateOf("a@example.com")); // the first run's record after the takeover never reached the store
        }

        [Fact]
        public void A_second_run_is_refused_while_the_first_holds_the_lease_and_gets_it_once_released()
        {
            var store = BlobJournalStore.Connect(_azurite.NewContainer(), _azurite.ConnectionString);
            var id = store.IdFor("leased");
            var first = CampaignJournal.Open(store, id);
            var refused = Assert.Throws<JournalLockedException>(() => CampaignJournal.Open(store, id));
            Assert.Matches(@"in use by another run \(.+ pid \d+\)\. Its lease was last renewed at \d\d:\d\d:\d\d UTC and expires by", refused.Message);
            first.Dispose();
            using var second = CampaignJournal.Open(store, id);
        }
    }
}
