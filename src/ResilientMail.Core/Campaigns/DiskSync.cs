using System;
using System.IO;
using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace ResilientMail.Core.Campaigns
{
    /// <summary>
    /// Forces a file's written data to disk through its OS handle, so that one thread can wait for the disk
    /// while others keep appending (FileStream.Flush(true) would need the stream, and so the lock, for the
    /// whole wait). Falls back to the caller's own flush where the native call is not available.
    /// </summary>
    internal static class DiskSync
    {
        [DllImport("libc", EntryPoint = "fsync", SetLastError = true)]
        private static extern int Fsync(int fd);

        [DllImport("kernel32.dll", SetLastError = true)]
        [return: MarshalAs(UnmanagedType.Bool)]
        private static extern bool FlushFileBuffers(SafeFileHandle handle);

        private static volatile bool _unavailable;

        /// <summary>True when the data reached the disk; false when the caller must flush another way.</summary>
        public static bool TrySync(SafeFileHandle handle)
        {
            if (_unavailable) return false;
            try
            {
                bool added = false;
                handle.DangerousAddRef(ref added);
                try
                {
                    if (RuntimeInformation.IsOSPlatform(OSPlatform.Windows))
                    {
                        if (!FlushFileBuffers(handle)) throw new IOException($"Could not force the journal to disk (error {Marshal.GetLastWin32Error()}).");
                    }
                    else if (Fsync((int)handle.DangerousGetHandle()) != 0)
                    {
                        throw new IOException($"Could not force the journal to disk (errno {Marshal.GetLastWin32Error()}).");
                    }
                    return true;
                }
                finally
                {
                    if (added) handle.DangerousRelease();
                }
            }
            catch (Exception ex) when (ex is DllNotFoundException || ex is EntryPointNotFoundException)
            {
                _unavailable = true;
                return false;
            }
        }
    }

    /// <summary>
    /// Which boot of the operating system this is. A record written but not forced to disk survives the
    /// death of the process (the OS still holds it) but not the death of the OS: a journal read in the same
    /// boot can trust such records; one read after a restart cannot. Null when it cannot be told.
    /// </summary>
    internal static class BootId
    {
        [DllImport("kernel32.dll")]
        private static extern ulong GetTickCount64();

        private static readonly Lazy<string?> Value = new Lazy<string?>(Read);

        public static string? Current => Value.Value;

        private static string? Read()
        {
            try
            {
                if (RuntimeInformation.IsOSPlatform(OSPlatform.Linux))
                {
                    var id = File.ReadAllText("/proc/sys/kernel/random/boot_id").Trim();
                    return id.Length > 0 ? "linux:" + id : null;
                }
                if (RuntimeInformation.IsOSPlatform(OSPlatform.Windows))
                {
                    // The boot time, to the minute (both readings are taken in the same call, so they agree within it).
                    var boot = TimeProvider.System.GetUtcNow() - TimeSpan.FromMilliseconds(GetTickCount64()); // the OS boot is on the real clock, always
                    return "windows:" + boot.ToString("yyyyMMddHHmm", System.Globalization.CultureInfo.InvariantCulture);
                }
            }
            catch (Exception ex) when (ex is IOException || ex is UnauthorizedAccessException || ex is DllNotFoundException || ex is EntryPointNotFoundException)
            {
                // Unknown: treated as another boot, which is the safe side.
            }
            return null;
        }
    }
}
