using System;
using System.Threading;
using System.Threading.Tasks;
using ResilientMail.TestServers;

// ResilientMail.TestServers sendgrid [--port N] [--api-key KEY]
// ResilientMail.TestServers proxy --upstream http://127.0.0.1:PORT [--port N]
// ResilientMail.TestServers smtp --record FILE [--ehlo "8BITMIME SMTPUTF8"] [--auth "PLAIN LOGIN"] [--rule "Phase|match|reply|times"]...
//   A scripted SMTP server (as in the xunit tests) for the Pester tests: each rule answers the first `times` commands of
//   that phase (Greeting, Ehlo, Auth, Mail, Rcpt, DataStart, DataEnd; times 0 = always) whose line contains `match`;
//   a reply of "(reset)" drops the connection, "(silent)" never answers.
//   Every command line (AUTH without its secret) and every accepted message go to FILE as JSON lines.
// Prints "listening <base uri>" once ready; stops on Ctrl+C or SIGTERM.
static string? Arg(string[] args, string name)
{
    int i = Array.IndexOf(args, name);
    return i >= 0 && i + 1 < args.Length ? args[i + 1] : null;
}

// ResilientMail.TestServers cloud --keys DIR --store DIR --client-secret S --identity-header H [--token-lifetime SECONDS] --mailbox M... [--denied-mailbox M]
//   Microsoft Entra, managed identity, Google token and Microsoft Graph stand-ins over HTTPS (CloudStandIn).
if (args.Length > 0 && args[0] == "cloud")
{
    var mailboxes = new System.Collections.Generic.List<string>();
    for (int i = 1; i + 1 < args.Length; i++) if (args[i] == "--mailbox") mailboxes.Add(args[i + 1]);
    var lifetime = TimeSpan.FromSeconds(int.TryParse(Arg(args, "--token-lifetime"), out var l) ? l : 3599);
    await using var cloud = await CloudStandIn.StartAsync(int.TryParse(Arg(args, "--port"), out var cp) ? cp : 0, Arg(args, "--keys") ?? "keys", Arg(args, "--client-secret") ?? "",
        Arg(args, "--identity-header") ?? "", lifetime, Arg(args, "--store") ?? "store", mailboxes, Arg(args, "--denied-mailbox"));
    Console.WriteLine($"listening {cloud.BaseUri} app-thumbprint {cloud.AppThumbprint}");
    Console.Out.Flush();
    var done = new TaskCompletionSource();
    Console.CancelKeyPress += (_, e) => { e.Cancel = true; done.TrySetResult(); };
    AppDomain.CurrentDomain.ProcessExit += (_, _) => done.TrySetResult();
    await done.Task;
    return 0;
}
// ResilientMail.TestServers greylist [--port N] [--delay SECONDS]
//   A greylisting policy service for Postfix (check_policy_service inet:127.0.0.1:N).
if (args.Length > 0 && args[0] == "greylist") return await GreylistPolicy.RunAsync(args);
if (args.Length == 0 || (args[0] != "sendgrid" && args[0] != "proxy" && args[0] != "smtp"))
{
    Console.Error.WriteLine("usage: ResilientMail.TestServers sendgrid|proxy|smtp [--port N] [--api-key KEY] [--upstream URI] [--record FILE] [--ehlo EXT] [--auth MECHS] [--rule R]...");
    return 2;
}
if (args[0] == "smtp") return await SmtpRole.RunAsync(args);
var role = args[0] == "proxy" ? Role.Proxy : Role.SendGrid;
int port = int.TryParse(Arg(args, "--port"), out var p) ? p : 0;
var upstream = Arg(args, "--upstream") is string u ? new Uri(u) : null;
if (role == Role.Proxy && upstream == null) { Console.Error.WriteLine("proxy needs --upstream"); return 2; }
if (upstream != null && !upstream.IsLoopback) { Console.Error.WriteLine("the upstream must be a loopback address"); return 2; }

await using var server = await FakeHttpServer.StartAsync(role, port, Arg(args, "--api-key"), upstream);
Console.WriteLine($"listening {server.BaseUri}");
Console.Out.Flush();
var stop = new TaskCompletionSource();
Console.CancelKeyPress += (_, e) => { e.Cancel = true; stop.TrySetResult(); };
AppDomain.CurrentDomain.ProcessExit += (_, _) => stop.TrySetResult();
await stop.Task;
return 0;
