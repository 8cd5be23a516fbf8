using System;
using System.IO;
using System.Text.Json;
using ResilientMail.Core.Delivery;

namespace ResilientMail.Core.Logging
{
    /// <summary>
    /// A JSON-lines log of one run (-LogPath) for unattended runbooks: one object per line for the start, every
    /// engine event (attempt, retry with its wait, probe, connectivity wait, pacing pause, connect) and every
    /// result, and the end. Appended, written to the OS line by line, safe from any thread. Its text comes from
    /// the engine's events and results, which never carry a secret.
    /// Fields: at (UTC, ms), run (an id per command run), cmdlet, event, text; for waits elapsedMs/waitMs; for
    /// retries reason; for results to, status, attempts, messageId, reply, error, failure, durationMs, campaign, row.
    /// </summary>
    public sealed class RunLog : IDisposable
    {
        private readonly JsonLinesWriter _lines;
        private readonly string _run = Guid.NewGuid().ToString("n").Substring(0, 12);
        private readonly string _cmdlet;

        /// <summary>On the system clock. (The cmdlets use this one: no third-party type, TimeProvider included, crosses into the cmdlet assembly.)</summary>
        public RunLog(string path, string cmdlet) : this(path, cmdlet, TimeProvider.System) { }

        public RunLog(string path, string cmdlet, TimeProvider time)
        {
            var full = System.IO.Path.GetFullPath(path);
            var dir = System.IO.Path.GetDirectoryName(full);
            if (!string.IsNullOrEmpty(dir)) Directory.CreateDirectory(dir);
            _lines = new JsonLinesWriter(new FileStream(full, FileMode.Append, FileAccess.Write, FileShare.ReadWrite | FileShare.Delete, 4096), time);
            _cmdlet = cmdlet;
            Path = full;
        }

        public string Path { get; }

        public void Start(string text) => Write("start", text, null);

        public void End(string text) => Write("end", text, null);

        public void Event(DeliveryEvent e) => Write(Name(e.Kind), e.Text, w =>
        {
            if (e.Elapsed is TimeSpan elapsed) w.WriteNumber("elapsedMs", (long)elapsed.TotalMilliseconds);
            if (e.Limit is TimeSpan limit) w.WriteNumber("waitMs", (long)limit.TotalMilliseconds);
            if (e.Reason is Resilience.FailureReason reason) w.WriteString("reason", reason.ToString());
        });

        /// <summary>The fate of one message.</summary>
        public void Result(string to, string status, int attempts, string? messageId, string? reply, string? error, string? failure, TimeSpan duration, string? campaign = null, long? row = null) =>
            Write("result", $"{status}: {to}", w =>
            {
                w.WriteString("to", to);
                w.WriteString("status", status);
                w.WriteNumber("attempts", attempts);
                if (messageId != null) w.WriteString("messageId", messageId);
                if (reply != null) w.WriteString("reply", reply);
                if (error != null) w.WriteString("error", error);
                if (failure != null) w.WriteString("failure", failure);
                w.WriteNumber("durationMs", (long)duration.TotalMilliseconds);
                if (campaign != null) w.WriteString("campaign", campaign);
                if (row != null) w.WriteNumber("row", row.Value);
            });

        private static string Name(DeliveryEventKind kind) => kind switch
        {
            DeliveryEventKind.WaitingForConnection => "waiting-for-connection",
            DeliveryEventKind.StillWaiting => "still-waiting",
            DeliveryEventKind.ConnectionRestored => "connection-restored",
            DeliveryEventKind.RateLimit => "rate-limit",
            DeliveryEventKind.Warning => "warning",
            _ => kind.ToString().ToLowerInvariant(),
        };

        private void Write(string name, string text, Action<Utf8JsonWriter>? body) => _lines.Write(w =>
        {
            w.WriteString("run", _run);
            w.WriteString("cmdlet", _cmdlet);
            w.WriteString("event", name);
            w.WriteString("text", text);
            body?.Invoke(w);
        });

        public void Dispose() => _lines.Dispose();
    }
}
