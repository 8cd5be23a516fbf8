using System;
using System.Collections.Generic;
using System.IO;
using System.Threading.Tasks;
using Microsoft.Win32.SafeHandles;

namespace ResilientMail.Core.Campaigns
{
    /// <summary>
    /// A journal file held by one run: a record lock between processes (and a set of paths within this one), each line
    /// to the OS when written, and <see cref="ForceAsync"/> forcing it to disk on a pool thread without holding the
    /// writer's lock while the disk works. A reader in the same boot of the OS sees every line the OS was given, so an
    /// intent forced to disk is enough before a send: its "sending" record, once written, cannot be lost to a crash.
    /// </summary>
    internal sealed class FileJournalAppender : JournalAppender
    {
        private readonly FileStream _file;
        private readonly object _lock = new object();
        private bool _disposed;

        private FileJournalAppender(string path, FileStream file)
        {
            Path = path;
            _file = file;
        }

        public string Path { get; }
        public override bool DurableHandOver => false;

        public static FileJournalAppender Open(string path)
        {
            var full = System.IO.Path.GetFullPath(path);
            var dir = System.IO.Path.GetDirectoryName(full);
            if (!string.IsNullOrEmpty(dir)) Directory.CreateDirectory(dir);
            lock (OpenHere)
            {
                if (!OpenHere.Add(full)) throw new JournalLockedException(path, new IOException("Open in this process."));
            }
            FileStream file;
            try
            {
                file = new FileStream(full, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.Read, 4096, FileOptions.None);
            }
            catch (IOException ex) when (File.Exists(full))
            {
                Forget(full);
                throw new JournalLockedException(path, ex);
            }
            try
            {
                // FileShare.Read is not a lock between processes on every platform; a record lock is.
                LockRegion(file);
            }
            catch (IOException ex)
            {
                file.Dispose();
                Forget(full);
                throw new JournalLockedException(path, ex);
            }
            // A torn last record (the process died mid-write) is ignored by readers; start on a fresh line.
            if (file.Length > 0)
            {
                file.Seek(-1, SeekOrigin.End);
                bool endsWithNewline = file.ReadByte() == '\n';
                file.Seek(0, SeekOrigin.End);
                if (!endsWithNewline) { file.WriteByte((byte)'\n'); file.Flush(); }
            }
            return new FileJournalAppender(full, file);
        }

        private static void Forget(string full)
        {
            lock (OpenHere) OpenHere.Remove(full);
        }

        private static void LockRegion(FileStream file)
        {
            try { file.Lock(long.MaxValue - 1, 1); }
            catch (PlatformNotSupportedException) { /* macOS: FileShare is all there is */ }
        }

        // Record locks belong to a process, so two runs inside one PowerShell session would not see each other's.
        private static readonly HashSet<string> OpenHere = new HashSet<string>(StringComparer.Ordinal);

        public override void Write(byte[] buffer, int count)
        {
            lock (_lock)
            {
                if (_disposed) throw new ObjectDisposedException(nameof(CampaignJournal));
                _file.Write(buffer, 0, count);
            }
        }

        public override void Flush(bool durable)
        {
            lock (_lock)
            {
                if (_disposed) throw new ObjectDisposedException(nameof(CampaignJournal));
                _file.Flush(durable);
            }
        }

        /// <summary>Everything written so far to the OS in one write, then to disk on a pool thread.</summary>
        public override Task ForceAsync()
        {
            lock (_lock)
            {
                if (_disposed) throw new ObjectDisposedException(nameof(CampaignJournal));
                _file.Flush(false);
            }
            return Task.Run(Sync);
        }

        private void Sync()
        {
            SafeFileHandle handle;
            lock (_lock)
            {
                if (_disposed) throw new ObjectDisposedException(nameof(CampaignJournal));
                handle = _file.SafeFileHandle; // the buffer was written to the OS by Write
            }
            if (DiskSync.TrySync(handle)) return;
            lock (_lock) _file.Flush(true);
        }

        public override void Dispose()
        {
            lock (_lock)
            {
                if (_disposed) return;
                _disposed = true;
                try { _file.Flush(true); } catch (IOException) { }
                _file.Dispose();
                Forget(Path);
            }
        }
    }
}
