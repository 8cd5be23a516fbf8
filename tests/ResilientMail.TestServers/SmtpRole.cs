using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Text.Json;
using System.Threading;
using System.Threading.Tasks;

namespace ResilientMail.TestServers
{
    /// <summary>The scripted SMTP server as a process the Pester tests start: rules from the command line, a record in a file.</summary>
    public static class SmtpRole
    {
        private sealed class Rule
        {
            public Phase Phase;
            public string Match = "";
            public string Reply = "";
            public int Left; // < 0: always
        }

        public static async Task<int> RunAsync(string[] args)
        {
            string? record = null, ehlo = null, auth = null;
            Uri? oauthCheck = null;
            int maxConnections = 0; // > 0: a connection over this many open at once gets 421 at its greeting (Postfix's smtpd_client_connection_count_limit)
            int rateCount = 0; TimeSpan rateWindow = TimeSpan.Zero; // --rate N/S: at most N MAIL FROM taken in any S seconds (a sliding window), 450 4.7.1 beyond
            var taken = new Queue<DateTime>();
            ScriptedSmtpServer? self = null;
            int port = 0;
            var rules = new List<Rule>();
            for (int i = 1; i + 1 < args.Length; i += 2)
            {
                switch (args[i])
                {
                    case "--record": record = args[i + 1]; break;
                    case "--ehlo": ehlo = args[i + 1]; break;
                    case "--auth": auth = args[i + 1]; break;
                    case "--oauth-check": oauthCheck = new Uri(args[i + 1]); break;
                    case "--max-connections": maxConnections = int.Parse(args[i + 1]); break;
                    case "--rate":
                        var rate = args[i + 1].Split('/');
                        rateCount = int.Parse(rate[0]);
                        rateWindow = TimeSpan.FromSeconds(double.Parse(rate[1], System.Globalization.CultureInfo.InvariantCulture));
                        break;
                    case "--port": port = int.Parse(args[i + 1]); break;
                    case "--rule":
                        var parts = args[i + 1].Split('|');
                        if (parts.Length != 4) { Console.Error.WriteLine($"a rule is Phase|match|reply|times: {args[i + 1]}"); return 2; }
                        rules.Add(new Rule { Phase = Enum.Parse<Phase>(parts[0], true), Match = parts[1], Reply = parts[2].Replace("\\r\\n", "\r\n"), Left = int.Parse(parts[3]) == 0 ? -1 : int.Parse(parts[3]) });
                        break;
                }
            }
            if (record == null) { Console.Error.WriteLine("smtp needs --record FILE"); return 2; }
            if (port != 0) Console.Error.WriteLine("the smtp role takes a free port of its own; --port is ignored");
            var writer = new StreamWriter(new FileStream(record, FileMode.Create, FileAccess.Write, FileShare.ReadWrite)) { AutoFlush = true };
            var gate = new object();
            string ehloReply = "250-scripted" + (ehlo != null ? string.Concat(ehlo.Split(' ', StringSplitOptions.RemoveEmptyEntries).Select(e => "\r\n250-" + e)) : "") + "\r\n250 " + (auth != null ? "AUTH " + auth : "HELP");

            Reaction Script(Step step)
            {
                if (step.Phase == Phase.Greeting && maxConnections > 0 && self != null && self.Open > maxConnections)
                    return Reaction.Say("421 4.7.0 scripted Error: too many connections from 127.0.0.1");
                if (step.Phase == Phase.Mail && rateCount > 0)
                {
                    var now = DateTime.UtcNow;
                    lock (taken)
                    {
                        while (taken.Count > 0 && now - taken.Peek() >= rateWindow) taken.Dequeue();
                        if (taken.Count >= rateCount) return Reaction.Say("450 4.7.1 Error: too much mail from 127.0.0.1");
                        taken.Enqueue(now);
                    }
                }
                lock (gate)
                {
                    foreach (var r in rules)
                    {
                        if (r.Phase != step.Phase || r.Left == 0 || step.Argument.IndexOf(r.Match, StringComparison.OrdinalIgnoreCase) < 0) continue;
                        if (r.Left > 0) r.Left--;
                        return r.Reply == "(reset)" ? Reaction.Drop : r.Reply == "(silent)" ? Reaction.Hang : Reaction.Say(r.Reply);
                    }
                }
                return step.Phase == Phase.Ehlo ? Reaction.Say(ehloReply) : Reaction.Default;
            }

            await using var server = self = new ScriptedSmtpServer(Script, auth: auth);
            if (oauthCheck != null)
            {
                if (!oauthCheck.IsLoopback) { Console.Error.WriteLine("--oauth-check must be a loopback address"); return 2; }
                // The stand-in's own test certificate: this client is test code talking to test code on loopback.
                var http = new System.Net.Http.HttpClient(new System.Net.Http.HttpClientHandler { ServerCertificateCustomValidationCallback = (_, _, _, _) => true });
                server.TokenCheck = async t => await (await http.PostAsync(oauthCheck, new System.Net.Http.StringContent(t))).Content.ReadAsStringAsync();
            }
            server.OnRecord = (kind, connection, text) =>
            {
                var line = JsonSerializer.Serialize(new Dictionary<string, object> { ["kind"] = kind, ["connection"] = connection, ["text"] = text });
                lock (gate) writer.WriteLine(line);
            };
            Console.WriteLine($"listening smtp://127.0.0.1:{server.Port}");
            Console.Out.Flush();
            var stop = new TaskCompletionSource();
            Console.CancelKeyPress += (_, e) => { e.Cancel = true; stop.TrySetResult(); };
            AppDomain.CurrentDomain.ProcessExit += (_, _) => stop.TrySetResult();
            await stop.Task;
            lock (gate) writer.Dispose();
            return 0;
        }
    }
}
