using System;
using System.IO;
using System.Threading;
using System.Threading.Tasks;
using MimeKit;
using ResilientMail.Core.Resilience;

namespace ResilientMail.Core.Transports
{
    /// <summary>
    /// Writes each message as an .eml file into a folder (for dry runs, demos, or a mail server's pickup
    /// folder). A file appears whole or not at all: it is written under a temporary name and then renamed.
    /// </summary>
    public sealed class PickupDirectoryTransport : IMailTransport
    {
        private readonly string _directory;
        // Pickup folders are read by mail servers, which expect the wire format's CRLF line ends.
        private static readonly FormatOptions Crlf = CrlfOptions();

        private static FormatOptions CrlfOptions()
        {
            var options = FormatOptions.Default.Clone();
            options.NewLineFormat = NewLineFormat.Dos;
            return options;
        }

        /// <summary>On the system clock. (The cmdlets use this one: no third-party type crosses into the cmdlet assembly.)</summary>
        public PickupDirectoryTransport(string directory) : this(directory, TimeProvider.System) { }

        public PickupDirectoryTransport(string directory, TimeProvider time)
        {
            _time = time ?? TimeProvider.System;
            if (string.IsNullOrWhiteSpace(directory)) throw new ArgumentException("A pickup directory is required.", nameof(directory));
            _directory = Path.GetFullPath(directory);
            System.IO.Directory.CreateDirectory(_directory);
        }

        private readonly TimeProvider _time;

        public string Directory => _directory;
        public string Description => $"pickup directory {_directory}";
        /// <summary>No network: nothing to probe.</summary>
        public Endpoint? Endpoint => null;
        public TimeSpan Timeout { get; init; } = Defaults.Timeout;

        public Task<Receipt> SendAsync(MimeMessage message, SendAttempt attempt, CancellationToken cancellationToken)
        {
            var name = $"{_time.GetUtcNow():yyyyMMddTHHmmssfff}-{Guid.NewGuid():N}.eml";
            var final = Path.Combine(_directory, name);
            var temp = Path.Combine(_directory, "." + name + ".tmp");
            try
            {
                // Local disk: a synchronous write is several times cheaper than the thread-pool emulation of async file I/O.
                cancellationToken.ThrowIfCancellationRequested();
                using (var stream = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16, useAsync: false))
                {
                    message.WriteTo(Crlf, stream, cancellationToken);
                }
                File.Move(temp, final);
                attempt.MarkBodySent();
                return Task.FromResult(new Receipt(message.MessageId ?? "", $"Written to {final}"));
            }
            catch (OperationCanceledException)
            {
                TryDelete(temp);
                throw;
            }
            catch (Exception ex) when (ex is IOException || ex is UnauthorizedAccessException)
            {
                TryDelete(temp);
                var full = ex is IOException io && (io.HResult & 0xFFFF) == 112 || ex.Message.IndexOf("space", StringComparison.OrdinalIgnoreCase) >= 0;
                throw new MailDeliveryException(new Failure(full ? FailureKind.Transient : FailureKind.Permanent, FailureReason.Rejected,
                    $"Could not write to the pickup directory {_directory}: {ex.Message}"), ex);
            }
        }

        private static void TryDelete(string path)
        {
            try { File.Delete(path); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        }

        public Task CloseAsync(CancellationToken cancellationToken) => Task.CompletedTask;
        public void Dispose() { }
    }
}
